//! `cairn bench`: ingestion throughput of a daemon over loopback, through `/v1/batch`.
//! Build in release (`cargo run --release -- bench`) for figures worth comparing.

use super::CommandResult;
use super::deploy::project_plan;
use crate::Outcome;
use crate::cli::BenchArgs;
use cairn_runtime::bench::{BenchOptions, run_blocking};
use std::path::PathBuf;

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
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; `cargo run --release -- bench` gives figures worth comparing"
        );
    }
    let report = run_blocking(plan, &options).map_err(|e| miette::miette!("{e}"))?;
    println!("{report}");
    Ok(Outcome::Ok)
}
