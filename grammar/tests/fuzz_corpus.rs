//! Replays the fuzzing corpus (`fuzz/corpus/parse/`) without fuzzing: every input goes
//! through `parse_bytes`, which must not panic, and every input that parses cleanly
//! must keep the formatter's contract (see `roundtrip`). So CI re-checks what the
//! fuzzer once found interesting, on the stable toolchain and in seconds.

mod roundtrip;

use cairn_grammar::parse_bytes;
use std::path::Path;

#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 50,
        "only {} corpus files in {}",
        entries.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    let mut clean = 0;
    for path in &entries {
        let bytes = std::fs::read(path).expect("a corpus file");
        let parsed = parse_bytes(&bytes);
        if parsed.has_errors() {
            continue;
        }
        clean += 1;
        let text = std::str::from_utf8(&bytes).expect("clean input is UTF-8");
        if let Err(report) = roundtrip::check(&path.display().to_string(), text) {
            failures.push(report);
        }
    }
    // Most fuzz inputs are broken on purpose; enough must parse for the formatter's
    // half of the replay to mean something.
    assert!(clean >= 10, "only {clean} corpus files parse cleanly");
    assert!(
        failures.is_empty(),
        "{} corpus files break the formatter's contract:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
