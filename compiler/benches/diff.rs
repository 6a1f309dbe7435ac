//! `cairn diff`'s work on a generated 10k-line project: build the base and the edited
//! version to plans (the edited one with its `migrate` lines checked against the base)
//! and compare them. What the command adds is reading the base from git (one
//! `git ls-tree` and one `git cat-file --batch`).
//!
//! `cargo bench -p cairn-compiler --bench diff`

use cairn_compiler::build::{build_plan, build_plan_after};
use cairn_compiler::project::from_files;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn diff_10k(c: &mut Criterion) {
    let files = cairn_grammar::synth::project(10_000, 11);
    let lines: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let base: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, t)| (p.clone(), t.clone().into_bytes()))
        .collect();
    // The change under review: one wait lengthened, in one journey.
    let mut edited = base.clone();
    if let Some(text) = edited
        .values_mut()
        .find(|t| String::from_utf8_lossy(t).contains("  wait 1d\n"))
    {
        *text = String::from_utf8_lossy(text)
            .replacen("  wait 1d\n", "  wait 2d\n", 1)
            .into_bytes();
    }
    let root = Path::new("bench");
    let old_project = from_files(root, &base).expect("the base loads");
    let new_project = from_files(root, &edited).expect("the edit loads");
    let changes = {
        let old = build_plan(&old_project, None)
            .map_err(|e| e.len())
            .expect("base builds");
        let new = build_plan_after(&new_project, None, Some(&old.plan))
            .map_err(|e| e.len())
            .expect("edit builds");
        cairn_plan::diff::diff(&old.plan, &new.plan)
    };
    eprintln!(
        "diff: {lines} lines, {:.1} MB in {} files; {} journey(s) changed",
        bytes as f64 / 1e6,
        files.len(),
        changes.journeys.len()
    );
    let mut group = c.benchmark_group("diff");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(2 * bytes as u64));
    group.bench_function("build_both_and_compare_10k_lines", |b| {
        b.iter(|| {
            let old = build_plan(&old_project, None)
                .map_err(|e| e.len())
                .expect("base builds");
            let new = build_plan_after(&new_project, None, Some(&old.plan))
                .map_err(|e| e.len())
                .expect("edit builds");
            black_box(cairn_plan::diff::diff(&old.plan, &new.plan))
        })
    });
    group.finish();
}

criterion_group!(benches, diff_10k);
criterion_main!(benches);
