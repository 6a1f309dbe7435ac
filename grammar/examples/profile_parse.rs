//! Parses a generated project once, for repeatable instruction counts of `parse` (the
//! benchmark's timings vary with the machine's load; these do not):
//!
//! ```text
//! cargo build --release -p cairn-grammar --example profile_parse
//! valgrind --tool=callgrind --toggle-collect='profile_parse::parse_all' \
//!     target/release/examples/profile_parse 20000
//! ```
//!
//! The argument is the project's size in lines (20 000 unless given).

use cairn_grammar::{parse, synth};
use std::hint::black_box;

fn main() {
    let lines = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let files = synth::project(lines, 7);
    let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
    println!("{bytes} bytes, {} diagnostics", parse_all(&files));
}

/// Parses and drops every file, as the benchmark does.
#[inline(never)]
fn parse_all(files: &[(String, String)]) -> usize {
    files
        .iter()
        .map(|(_, text)| black_box(parse(text)).diagnostics.len())
        .sum()
}
