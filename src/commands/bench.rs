//! `cairn bench`: the daemon's figures, measured over loopback. Ingestion throughput
//! through `/v1/batch` with the project's events; then, on a fresh store with a small
//! journey of its own, engine transitions per second with timers firing, timer
//! lateness, and resident memory while a million timers are scheduled. Build in
//! release (`cargo run --release -- bench`) for figures worth comparing.

use super::CommandResult;
use super::deploy::project_plan;
use crate::Outcome;
use crate::cli::BenchArgs;
use cairn_runtime::bench::{
    BenchOptions, EngineOptions, Progress, run_blocking, run_engine_blocking,
};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The engine part's project: a journey moved by two timers, and one that holds its
/// contact on a 30-day timer.
const ENGINE_PROJECT: &str = r#"
event bench_start "Bench Start" { n number }
event bench_hold "Bench Hold" { n number }

tag bench_moved "moved by its first timer"

journey bench_flow {
  when bench_start
  audience true
  wait 5s
  tag add bench_moved
  wait 1s
  tag remove bench_moved
}

journey bench_hold {
  when bench_hold
  audience true
  wait 30d
  tag add bench_moved
}
"#;

pub fn run(args: &BenchArgs) -> CommandResult {
    let path = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let Some(plan) = project_plan(&path)? else {
        return Ok(Outcome::Failed);
    };
    let options = BenchOptions {
        events: args.events,
        batch: args.batch,
        connections: args.connections,
        contacts: args.contacts,
        database_url: args.database.clone(),
        server: args.server.clone(),
        write_key: args
            .write_key
            .clone()
            .or_else(|| std::env::var("CAIRN_WRITE_KEY").ok()),
        progress: progress_bars(),
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; `cargo run --release -- bench` gives figures worth comparing"
        );
    }
    let report = run_blocking(plan, &options).map_err(|e| miette::miette!("{e}"))?;
    println!("{report}");
    if args.server.is_some() || (args.runs == 0 && args.timers == 0) {
        return Ok(Outcome::Ok);
    }
    let engine = EngineOptions {
        runs: args.runs,
        rate: args.rate,
        timers: args.timers,
        database_url: args.database.clone(),
        connections: args.connections,
        batch: args.batch,
        progress: options.progress.clone(),
    };
    let report =
        run_engine_blocking(engine_plan()?, &engine).map_err(|e| miette::miette!("{e}"))?;
    println!("{report}");
    Ok(Outcome::Ok)
}

/// A progress bar on stderr for the phase under way, replaced when the next begins and
/// cleared when it is done; nothing when stderr is not a terminal.
fn progress_bars() -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress::default();
    }
    let current: Arc<Mutex<Option<(String, indicatif::ProgressBar)>>> = Arc::default();
    Progress::new(move |phase, done, total| {
        let Ok(mut current) = current.lock() else {
            return;
        };
        if current.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {human_pos}/{human_len} ({elapsed}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(phase.to_string());
            *current = Some((phase.to_string(), bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(done.max(bar.position()));
            if done >= total {
                bar.finish_and_clear();
            }
        }
    })
}

/// Builds the engine part's project in a scratch folder.
fn engine_plan() -> miette::Result<cairn_plan::Plan> {
    let dir = std::env::temp_dir().join(format!("cairn-bench-project-{}", std::process::id()));
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| miette::miette!("cannot write the bench project: {e}"))
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| miette::miette!("cannot create `{}`: {e}", dir.display()))?;
    write(
        "cairn.toml",
        "[project]\nname = \"bench\"\ncurrency = \"EUR\"\n",
    )?;
    write("bench.cairn", ENGINE_PROJECT)?;
    let plan = project_plan(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    plan?.ok_or_else(|| miette::miette!("the engine bench's own project does not build"))
}
