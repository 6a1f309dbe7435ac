//! The diagnostics reference in `docs/` lists every code of the catalogue with its
//! exact title, so the docs cannot drift from the compiler.

use cairn_compiler::codes;

#[test]
fn every_code_is_documented_with_its_title() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/diagnostics.md");
    let doc = std::fs::read_to_string(path).expect("docs/diagnostics.md exists");
    let mut missing = Vec::new();
    for info in codes::ALL {
        let row = format!(
            "| [{}](#{}) | {} |",
            info.code,
            info.code.to_lowercase(),
            info.title
        );
        let heading = format!("### {}\n\n**{}**", info.code, info.title);
        if !doc.contains(&row) || !doc.contains(&heading) {
            missing.push(format!("{} {}", info.code, info.title));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/diagnostics.md is out of step with compiler/src/codes.rs for: {missing:#?}"
    );
}
