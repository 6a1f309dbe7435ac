//! `cairn diff` in temporary git repositories, and `cairn deploy`'s refusal of a dirty
//! work tree.

use crate::support::{Run, run_in};
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

const SCHEMA: &str = "contact {\n  email email?\n  city string?\n  tier enum { gold, silver }?\n}\n\
consent email_marketing for email\nevent cart_updated { cart_id string, coupon string? }\n";

const TEMPLATE: &str = "template cart_reminder email {\n  subject \"Your cart is waiting\"\n  html file \"templates/cart.html\"\n}\n";

const JOURNEY: &str = "journey cart {\n  when cart_updated\n  audience consented(email_marketing)\n  pause: wait 1d\n  remind: send email cart_reminder\n  wait 2d\n  tag add reminded\n}\ntag reminded\n";

/// A repository whose `main` holds the cart project under `shop/`, with a branch
/// `feature` checked out.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(root.join("shop/templates")).expect("mkdir");
    std::fs::write(root.join("shop/schema.cairn"), SCHEMA).expect("write");
    std::fs::write(
        root.join("shop/journeys.cairn"),
        format!("{TEMPLATE}{JOURNEY}"),
    )
    .expect("write");
    std::fs::write(
        root.join("shop/templates/cart.html"),
        "<p>Hello</p>\n<p>Your cart is waiting.</p>\n<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>\n",
    )
    .expect("write");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "cart"]);
    git(root, &["checkout", "-q", "-b", "feature"]);
    dir
}

fn diff(root: &Path, args: &[&str]) -> Run {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    run_in(root, &all)
}

#[test]
fn diff_shows_what_changed_since_the_merge_base() {
    let repo = repository();
    let root = repo.path();
    let unchanged = diff(root, &["shop"]);
    assert_eq!(unchanged.code, 0, "{}", unchanged.stderr);
    assert!(
        unchanged.stdout.contains("no changes to the plan"),
        "{}",
        unchanged.stdout
    );

    // The feature branch lengthens the wait, removes the tag step, rewords the email,
    // drops a contact field and an enum value.
    let journey = JOURNEY
        .replace("pause: wait 1d", "pause: wait 2d")
        .replace("  tag add reminded\n", "");
    std::fs::write(
        root.join("shop/journeys.cairn"),
        format!("{TEMPLATE}{journey}"),
    )
    .expect("write");
    std::fs::write(
        root.join("shop/schema.cairn"),
        SCHEMA
            .replace("  city string?\n", "")
            .replace("gold, silver", "gold"),
    )
    .expect("write");
    std::fs::write(
        root.join("shop/templates/cart.html"),
        "<p>Hello</p>\n<p>Your cart misses you.</p>\n<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>\n",
    )
    .expect("write");
    git(root, &["commit", "-q", "-am", "change"]);

    let human = diff(root, &["shop"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let out = &human.stdout;
    assert!(out.contains("merge-base(HEAD, main)"), "{out}");
    assert!(out.contains("~ step `pause`: wait 2d"), "{out}");
    assert!(
        out.contains("wait duration: `wait 1d` → `wait 2d`"),
        "{out}"
    );
    assert!(
        out.contains("- step `remind.tag#1`: tag add reminded"),
        "{out}"
    );
    assert!(out.contains("-<p>Your cart is waiting.</p>"), "{out}");
    assert!(out.contains("+<p>Your cart misses you.</p>"), "{out}");
    assert!(out.contains("contact.city: removed"), "{out}");
    assert!(
        out.contains("contact.tier: enum value `silver` removed"),
        "{out}"
    );

    let markdown = diff(root, &["main", "shop", "--format", "markdown"]);
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    let md = &markdown.stdout;
    assert!(md.starts_with("## Cairn plan changes: `shop`"), "{md}");
    assert!(md.contains("#### `cart` (changed)"), "{md}");
    assert!(
        md.contains("| `remind.tag#1` | removed | `tag add reminded` |"),
        "{md}"
    );
    assert!(md.contains("```diff\n--- a/html"), "{md}");
    assert!(
        md.contains("### ⚠️ Breaking changes to stored data"),
        "{md}"
    );

    let json = diff(root, &["shop", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let report: Json = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(report["base"]["commit"].as_str().map(str::len), Some(40));
    assert_eq!(report["diff"]["journeys"][0]["name"], "cart");
    assert_eq!(report["diff"]["breaking"].as_array().map(Vec::len), Some(2));
}

#[test]
fn diff_explains_each_way_it_cannot_compare() {
    let repo = repository();
    let root = repo.path();

    let missing = diff(root, &["no-such-branch", "shop"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("revision `no-such-branch` does not exist"),
        "{}",
        missing.stderr
    );

    // A base that does not compile.
    std::fs::write(
        root.join("shop/broken.cairn"),
        "journey broken {\n  when nothing_like_this\n}\n",
    )
    .expect("write");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "broken"]);
    git(root, &["rm", "-q", "shop/broken.cairn"]);
    git(root, &["commit", "-q", "-m", "fixed"]);
    let broken = diff(root, &["HEAD~1", "shop"]);
    assert_eq!(broken.code, 2, "{}", broken.stderr);
    assert!(
        broken
            .stderr
            .contains("the project does not compile at `HEAD~1`"),
        "{}",
        broken.stderr
    );
    assert!(broken.stderr.contains("E0101"), "{}", broken.stderr);

    // The new version has errors.
    std::fs::write(
        root.join("shop/broken.cairn"),
        "journey broken {\n  when nothing_like_this\n}\n",
    )
    .expect("write");
    let new_errors = diff(root, &["shop"]);
    assert_eq!(new_errors.code, 1, "{}", new_errors.stderr);
    assert!(
        new_errors
            .stderr
            .contains("the new version of `shop` has errors"),
        "{}",
        new_errors.stderr
    );
    std::fs::remove_file(root.join("shop/broken.cairn")).expect("remove");

    // An unreachable daemon.
    let unreachable = diff(
        root,
        &["shop", "--server", "http://127.0.0.1:9", "--token", "t"],
    );
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach the daemon"),
        "{}",
        unreachable.stderr
    );

    // No `main` to compare with.
    git(root, &["branch", "-q", "-m", "main", "trunk"]);
    let no_main = diff(root, &["shop"]);
    assert_eq!(no_main.code, 2, "{}", no_main.stderr);
    assert!(
        no_main
            .stderr
            .contains("neither `main` nor `origin/main` exists"),
        "{}",
        no_main.stderr
    );
    git(root, &["branch", "-q", "-m", "trunk", "main"]);

    // A shallow clone of the branch, with `origin/main` but not their merge base.
    git(root, &["checkout", "-q", "main"]);
    std::fs::write(root.join("shop/more.cairn"), "tag later\n").expect("write");
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "main moves on"]);
    let clones = tempfile::tempdir().expect("a temporary directory");
    let url = format!("file://{}", root.display());
    git(
        clones.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            &url,
            "clone",
        ],
    );
    let clone = clones.path().join("clone");
    git(&clone, &["checkout", "-q", "feature"]);
    let shallow = diff(&clone, &["shop"]);
    assert_eq!(shallow.code, 2, "{}", shallow.stderr);
    assert!(
        shallow.stderr.contains("shallow clone"),
        "{}",
        shallow.stderr
    );
}

#[test]
fn deploy_refuses_a_dirty_work_tree_before_contacting_anyone() {
    let repo = repository();
    let root = repo.path();
    std::fs::write(root.join("shop/notes.cairn"), "tag noted\n").expect("write");
    // No daemon listens at port 9: the refusal comes first.
    let dirty = run_in(
        root,
        &[
            "deploy",
            "shop",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
    );
    assert_eq!(dirty.code, 1, "{}", dirty.stderr);
    assert!(
        dirty.stderr.contains("has uncommitted changes"),
        "{}",
        dirty.stderr
    );
    assert!(dirty.stderr.contains("--allow-dirty"), "{}", dirty.stderr);
    let allowed = run_in(
        root,
        &[
            "deploy",
            "shop",
            "--allow-dirty",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
    );
    assert_eq!(
        allowed.code, 2,
        "past the check, the daemon is unreachable: {}",
        allowed.stderr
    );
    assert!(
        allowed.stderr.contains("cannot reach the daemon"),
        "{}",
        allowed.stderr
    );
}
