//! `cairn status`: what a daemon runs: its plan versions, its journeys, and how many
//! runs wait at each step.

use super::CommandResult;
use super::deploy::{admin_token, read_manifest, server_url};
use crate::Outcome;
use crate::cli::{StatusArgs, StatusFormat};
use crate::render;
use cairn_runtime::admin::Status;
use cairn_runtime::client::AdminClient;
use std::fmt::Write as _;
use std::path::Path;

pub fn run(args: &StatusArgs) -> CommandResult {
    let here = Path::new(".");
    let manifest = read_manifest(here);
    let server = server_url(args.daemon.server.as_deref(), manifest.as_ref());
    let Some(token) = admin_token(args.daemon.token.as_deref(), Some(here)) else {
        return Err(miette::miette!(
            help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
            "`cairn status` needs the daemon's admin token"
        ));
    };
    let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
    let status = client.status().map_err(|e| miette::miette!("{e}"))?;
    match args.format {
        StatusFormat::Json => {
            let text = serde_json::to_string_pretty(&status)
                .map_err(|e| miette::miette!("cannot print the status: {e}"))?;
            render::out(&format!("{text}\n"));
        }
        StatusFormat::Human => {
            let mut text = human(&server, &status);
            if status.outbox.failed > 0 {
                let failed = client
                    .messages("failed", 5)
                    .map_err(|e| miette::miette!("{e}"))?;
                text.push_str(&failed_messages(&failed, status.outbox.failed));
            }
            render::out(&text);
        }
    }
    Ok(Outcome::Ok)
}

fn human(server: &str, status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{server}: project `{}`, active version {}",
        status.project.as_deref().unwrap_or("(none)"),
        status
            .active_version
            .map_or_else(|| "none".to_string(), |v| v.to_string())
    );
    let t = &status.totals;
    let o = &status.outbox;
    let _ = writeln!(
        out,
        "{} contacts, {} events, {} runs in flight, {} timers; outbox: {} pending, {} sent, {} failed",
        t.contacts, t.events, t.runs_in_flight, t.timers, o.pending, o.sent, o.failed
    );
    let _ = writeln!(out, "\nversions");
    for v in &status.versions {
        let deployed = cairn_runtime::time::timestamp(v.deployed_at)
            .strftime("%Y-%m-%d %H:%M:%SZ")
            .to_string();
        let _ = writeln!(
            out,
            "  v{:<4} {:<7} {deployed}  hash {}  commit {}",
            v.version,
            if v.active { "active" } else { "" },
            &v.content_hash[..12.min(v.content_hash.len())],
            v.git_commit.as_deref().unwrap_or("-")
        );
    }
    for journey in &status.journeys {
        match status.paused.iter().find(|p| p.journey == journey.name) {
            Some(paused) => {
                let since = cairn_runtime::time::timestamp(paused.paused_at)
                    .strftime("%Y-%m-%d %H:%M:%SZ")
                    .to_string();
                let _ = writeln!(
                    out,
                    "\njourney `{}`: PAUSED since {since}, its runs are held (`cairn resume {}`)",
                    journey.name, journey.name
                );
            }
            None => {
                let _ = writeln!(out, "\njourney `{}`", journey.name);
            }
        }
        let mut rows: Vec<[String; 4]> = vec![[
            "step".into(),
            "state".into(),
            "version".into(),
            "runs".into(),
        ]];
        for r in &journey.in_flight {
            rows.push([
                r.step.clone().unwrap_or_else(|| "-".into()),
                r.state.clone(),
                r.plan_version.to_string(),
                r.runs.to_string(),
            ]);
        }
        if rows.len() == 1 {
            let _ = writeln!(out, "  no runs in flight");
        } else {
            let widths: Vec<usize> = (0..4)
                .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
                .collect();
            for row in &rows {
                let _ = writeln!(
                    out,
                    "  {:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}",
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2],
                    w3 = widths[3]
                );
            }
        }
        if !journey.ended.is_empty() {
            let ended: Vec<String> = journey
                .ended
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            let _ = writeln!(out, "  ended: {}", ended.join(", "));
        }
    }
    out
}

/// The latest failed messages and why, so a failure is never silent.
fn failed_messages(failed: &[cairn_runtime::store::channels::MessageRow], total: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "
failed messages (latest {} of {total}; all: GET /admin/messages?state=failed)",
        failed.len()
    );
    for m in failed {
        let _ = writeln!(
            out,
            "  #{} {} to {} ({}/{}) after {} attempt(s): {}: {}",
            m.id,
            m.channel,
            m.address,
            m.run_id,
            m.step,
            m.attempts,
            m.error_kind.as_deref().unwrap_or("failed"),
            m.last_error.as_deref().unwrap_or("no reason recorded")
        );
    }
    out
}
