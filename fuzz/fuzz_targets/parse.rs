//! Any bytes: the parser never panics, and a file it accepts keeps the formatter's
//! contract (idempotent, same syntax tree, same comments; see `roundtrip`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../grammar/tests/roundtrip/mod.rs"]
mod roundtrip;

fuzz_target!(|data: &[u8]| {
    let parsed = cairn_grammar::parse_bytes(data);
    if parsed.has_errors() {
        return;
    }
    let text = std::str::from_utf8(data).expect("bytes that are not UTF-8 give an error");
    if let Err(report) = roundtrip::check("fuzz input", text) {
        panic!("{report}");
    }
});
