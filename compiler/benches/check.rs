//! Checker figures: a cold check of a generated 100k-line project, and the re-check
//! after a one-line edit inside one journey of a 10k-line project.
//!
//! `cargo bench -p cairn-compiler --bench check`

use cairn_compiler::db::{self, Database, ProjectInput, SourceFile};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use salsa::Setter;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

fn load(db: &Database, files: &[(String, String)]) -> (ProjectInput, Vec<SourceFile>) {
    let inputs: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile::new(db, path.clone(), text.clone()))
        .collect();
    let project = ProjectInput::new(db, inputs.clone(), BTreeMap::new(), Some("EUR".into()));
    (project, inputs)
}

fn check_all(db: &Database, project: ProjectInput, files: &[SourceFile]) -> usize {
    files
        .iter()
        .map(|f| db::file_diagnostics(db, project, *f).len())
        .sum()
}

fn cold(c: &mut Criterion) {
    let files = cairn_grammar::synth::project(100_000, 7);
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let lines: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    eprintln!(
        "cold check: {lines} lines, {:.1} MB in {} files",
        bytes as f64 / 1e6,
        files.len()
    );
    let mut group = c.benchmark_group("check");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("cold_100k_lines", |b| {
        b.iter(|| {
            let db = Database::default();
            let (project, inputs) = load(&db, &files);
            black_box(check_all(&db, project, &inputs))
        })
    });
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let files = cairn_grammar::synth::project(10_000, 11);
    let mut db = Database::default();
    let (project, inputs) = load(&db, &files);
    let before = check_all(&db, project, &inputs);
    // Edit a wait inside one journey: flip between two durations.
    let (index, text) = files
        .iter()
        .enumerate()
        .find(|(_, (_, t))| t.contains("  wait 1d\n"))
        .map(|(i, (_, t))| (i, t.clone()))
        .expect("a journey with `wait 1d`");
    let edited = text.replacen("  wait 1d\n", "  wait 2d\n", 1);
    let mut flip = false;
    let mut group = c.benchmark_group("check");
    group.bench_function("recheck_after_one_line_edit_10k_lines", |b| {
        b.iter(|| {
            flip = !flip;
            inputs[index]
                .set_text(&mut db)
                .to(if flip { edited.clone() } else { text.clone() });
            black_box(check_all(&db, project, &inputs))
        })
    });
    group.finish();
    assert_eq!(before, check_all(&db, project, &inputs));
}

criterion_group!(benches, cold, incremental);
criterion_main!(benches);
