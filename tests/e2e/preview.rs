//! `cairn preview` without a daemon: a template of an example rendered for generated
//! or given sample data, and the errors of sample data the template cannot use.

use crate::support::{cairn, project, repo_root};
use std::path::Path;

/// Runs `cairn preview` in `dir` with none of the daemon's settings from the
/// environment, so links and the sender are the defaults.
fn preview(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = cairn()
        .arg("preview")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CAIRN_PUBLIC_URL")
        .env_remove("CAIRN_LINK_SECRET")
        .env_remove("CAIRN_EMAIL_FROM")
        .env_remove("CAIRN_LISTEN")
        .output()
        .expect("the cairn binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cart_reminder_renders_with_generated_sample_data() {
    let (code, stdout, stderr) =
        preview(&repo_root(), &["cart_reminder", "examples/abandoned-cart"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("cart_reminder", stdout);

    // `--format html` is the HTML part alone; `--format json` every part and link.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let html = dir.path().join("cart.html");
    let html_arg = html.to_string_lossy().into_owned();
    let (code, _, stderr) = preview(
        &repo_root(),
        &[
            "cart_reminder",
            "examples/abandoned-cart",
            "--format",
            "html",
            "-o",
            &html_arg,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let page = std::fs::read_to_string(&html).expect("the HTML file");
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(
        page.contains("/o/"),
        "the open pixel closes the body: {page}"
    );
    let (code, stdout, stderr) = preview(
        &repo_root(),
        &["cart_sms", "examples/abandoned-cart", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["channel"], "sms");
    assert_eq!(json["step"], "nudge_sms");
    assert_eq!(json["to"], "+33612345678");
    assert!(
        json["parts"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Nordkit: your cart (129.29 EUR)"))
    );
}

#[test]
fn given_sample_data_is_checked_and_missing_values_are_located() {
    let example = repo_root().join("examples/abandoned-cart");
    let read = |name: &str| std::fs::read(example.join(name)).expect("an example file");
    let schema = read("schema.cairn");
    let journeys = read("journeys.cairn");
    let html = String::from_utf8(read("templates/cart_reminder.html"))
        .expect("UTF-8")
        .replace(
            "{{ contact.first_name | default('Hi') }}",
            "Hello {{ contact.first_name }}",
        );
    let templates = String::from_utf8(read("templates.cairn"))
        .expect("UTF-8")
        .replace(
            "Still thinking it over?",
            "Still thinking, {{ contact.first_name }}?",
        );
    let dir = project(&[
        (
            "cairn.toml",
            b"[project]\nname = \"shop\"\ncurrency = \"EUR\"\n",
        ),
        ("schema.cairn", &schema),
        ("journeys.cairn", &journeys),
        ("templates.cairn", templates.as_bytes()),
        ("templates/cart_reminder.html", html.as_bytes()),
        ("bob.json", br#"{"id": "bob", "email": "bob@example.com"}"#),
        (
            "cart.json",
            br#"{"cart_id": "c-7", "value": "12 EUR", "url": "https://shop.example/c-7",
                 "items": [{"sku": "CUP", "name": "Enamel cup"}]}"#,
        ),
    ]);

    // A value the contact lacks: located in the template's file.
    let (code, _, stderr) = preview(dir.path(), &["cart_reminder", "--contact", "bob.json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "template `cart_reminder`, part `html` (`templates/cart_reminder.html` line 9)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`contact.first_name` is not in the sample data"),
        "{stderr}"
    );
    assert!(stderr.contains("cart_reminder.html:9:"), "{stderr}");

    // In an inline part: located in the `.cairn` file declaring it.
    let (code, _, stderr) = preview(dir.path(), &["cart_push", "--trait", "push_token=t-1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("template `cart_push`, part `title`"),
        "{stderr}"
    );
    assert!(stderr.contains("templates.cairn:"), "{stderr}");

    // Event data that does not fit the event's schema, and a binding no journey has.
    let (code, _, stderr) = preview(
        dir.path(),
        &[
            "cart_reminder",
            "--trait",
            "first_name=Bob",
            "--event",
            "cart=cart.json",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("missing field `cart.items[0].price`"),
        "{stderr}"
    );
    let (code, _, stderr) = preview(dir.path(), &["cart_sms", "--event", "basket=cart.json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no binding `basket`"), "{stderr}");
    assert!(stderr.contains("its bindings are `cart`"), "{stderr}");

    // Given data that fits is what renders.
    let fixed = std::fs::read_to_string(dir.path().join("cart.json"))
        .expect("the cart")
        .replace(
            r#""name": "Enamel cup""#,
            r#""name": "Enamel cup", "price": 12"#,
        );
    std::fs::write(dir.path().join("cart.json"), fixed).expect("write the cart");
    let (code, stdout, stderr) = preview(
        dir.path(),
        &[
            "cart_reminder",
            "--contact",
            "bob.json",
            "--trait",
            "first_name=Bob",
            "--event",
            "cart=cart.json",
        ],
    );
    assert_ne!(
        code, 0,
        "`--contact` and `--trait` are one or the other: {stdout}"
    );
    assert!(stderr.contains("--trait"), "{stderr}");
    let (code, stdout, stderr) = preview(
        dir.path(),
        &[
            "cart_reminder",
            "--trait",
            "first_name=Bob",
            "--trait",
            "email=bob@example.com",
            "--event",
            "cart=cart.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Subject:  You left 12 EUR in your cart, Bob"),
        "{stdout}"
    );
    assert!(stdout.contains("To:       bob@example.com"), "{stdout}");
    assert!(stdout.contains("<td>Enamel cup</td>"), "{stdout}");
    assert!(
        stdout.contains("tracked      https://shop.example/c-7"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("generated"),
        "nothing was generated: {stdout}"
    );

    // An unknown template is named, with a suggestion.
    let (code, _, stderr) = preview(dir.path(), &["cart_remindr"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no template `cart_remindr` in `shop`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `cart_reminder`?"), "{stderr}");
}
