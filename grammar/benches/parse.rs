//! Parser figures on a generated 100k-line project (`synth::project`):
//!
//! - throughput of parsing with the syntax check (every file's tree and diagnostics),
//!   measured by criterion with `Throughput::Bytes`, and printed once more in MB/s, for
//!   `parse` (the hand-written fast path, pest only for items it leaves to pest) and for
//!   `parse_reference` (the pest grammar alone), with their ratio;
//! - peak memory while parsing, relative to the size of the source. It is read from
//!   the kernel (`VmHWM` in `/proc/self/status`) in a child process that does nothing
//!   else, since a counting allocator would need `unsafe`, which the workspace forbids.
//!
//! `cargo bench -p cairn-grammar --bench parse`. The targets: at least 50 MB/s on one
//! core, and peak memory under 10x the source, keeping every tree.

use cairn_grammar::parse::parse_reference;
use cairn_grammar::{Parsed, parse, synth};
use criterion::{Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

const LINES: usize = 100_000;
const SEED: u64 = 7;
/// Set in the child process that measures memory; its value says what to keep.
const MEMORY_CHILD: &str = "CAIRN_BENCH_PARSE_MEMORY";

fn main() {
    if let Ok(mode) = std::env::var(MEMORY_CHILD) {
        memory_child(&mode);
        return;
    }
    let files = synth::project(LINES, SEED);
    let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
    let lines: usize = files.iter().map(|(_, text)| text.lines().count()).sum();
    eprintln!(
        "project: {lines} lines, {:.2} MB in {} files",
        bytes as f64 / 1e6,
        files.len()
    );

    let fast = quick_throughput("parse (fast path)", parse, &files, bytes);
    let reference = quick_throughput("parse_reference (pest)", parse_reference, &files, bytes);
    eprintln!(
        "fast path: {:.1}x the pest grammar's throughput",
        fast / reference
    );
    memory_report(bytes);

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("parse");
    // A run takes a third of a second: flat sampling with few samples keeps the
    // whole measurement near half a minute.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("project_100k_lines", |b| {
        b.iter(|| black_box(parse_all(parse, &files)));
    });
    group.bench_function("project_100k_lines_pest_only", |b| {
        b.iter(|| black_box(parse_all(parse_reference, &files)));
    });
    group.finish();
    criterion.final_summary();
}

/// Parses every file and returns the number of diagnostics, so nothing is optimized away.
fn parse_all(parser: fn(&str) -> Parsed, files: &[(String, String)]) -> usize {
    files
        .iter()
        .map(|(_, text)| parser(text).diagnostics.len())
        .sum()
}

/// The best of a few timed runs, in decimal MB/s: the figure the target is stated in.
fn quick_throughput(
    what: &str,
    parser: fn(&str) -> Parsed,
    files: &[(String, String)],
    bytes: usize,
) -> f64 {
    let diagnostics = parse_all(parser, files);
    assert_eq!(diagnostics, 0, "a generated project parses cleanly");
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(parse_all(parser, files));
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    let throughput = bytes as f64 / 1e6 / best.as_secs_f64();
    eprintln!(
        "{what}: parse + syntax check: {throughput:.1} MB/s ({:.0} ms for {:.2} MB, best of 5)",
        best.as_secs_f64() * 1e3,
        bytes as f64 / 1e6
    );
    throughput
}

/// Runs the measurement in fresh child processes and prints the peaks.
fn memory_report(bytes: usize) {
    let source_mb = bytes as f64 / 1e6;
    for (mode, what) in [
        ("keep", "parse, keeping every tree, as the checker does"),
        ("drop", "parse, one file at a time"),
        ("keep-reference", "parse_reference, keeping every tree"),
    ] {
        match measure_in_child(mode) {
            Some(peak) => {
                let peak_mb = peak as f64 / 1e6;
                eprintln!(
                    "peak memory: {peak_mb:.1} MB for {source_mb:.1} MB of source ({:.1} x), {what}",
                    peak_mb / source_mb
                );
            }
            None => eprintln!("peak memory: not measured ({what}): /proc/self/status unreadable"),
        }
    }
}

fn measure_in_child(mode: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new(exe).env(MEMORY_CHILD, mode).output().ok()?;
    if !output.status.success() {
        eprintln!(
            "memory child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// In the child: generate the project, reset the peak, parse, print the growth of the
/// peak resident set over the resident set before parsing, in bytes.
fn memory_child(mode: &str) {
    let files = synth::project(LINES, SEED);
    // Writing 5 resets the peak (VmHWM) to the current resident set, so the peak of
    // generating the project is not counted.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let Some(before) = status_kb("VmRSS:") else {
        std::process::exit(1);
    };
    let kept: Vec<Parsed> = if mode == "keep" {
        files.iter().map(|(_, text)| parse(text)).collect()
    } else if mode == "keep-reference" {
        files
            .iter()
            .map(|(_, text)| parse_reference(text))
            .collect()
    } else {
        for (_, text) in &files {
            black_box(parse(text));
        }
        Vec::new()
    };
    let Some(peak) = status_kb("VmHWM:") else {
        std::process::exit(1);
    };
    black_box(&kept);
    if !reset {
        eprintln!("note: the peak could not be reset; it may include generating the project");
    }
    println!("{}", peak.saturating_sub(before) * 1024);
}

fn status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
