//! `cairn simulate`: what a project's plan would have done with recorded, exported or
//! synthetic traffic, replayed on a virtual clock with the same engine as the daemon.

use super::CommandResult;
use super::deploy::{admin_token, server_url};
use crate::Outcome;
use crate::cli::{SimulateArgs, SimulateFormat};
use crate::render;
use cairn_compiler::build::build_plan;
use cairn_compiler::project;
use cairn_runtime::client::AdminClient;
use cairn_runtime::ingest::schema::parse_instant;
use cairn_runtime::model::Millis;
use cairn_runtime::simulate::{self, Report};
use std::fmt::Write as _;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Invalid lines listed before the rest are only counted.
const LISTED_INVALID: usize = 20;

pub fn run(args: &SimulateArgs) -> CommandResult {
    let path = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let projects = project::discover(std::slice::from_ref(&path))?;
    let Some(project) = projects.first().filter(|_| projects.len() == 1) else {
        return Err(miette::miette!(
            help = "name one project directory or `.cairn` file",
            "`{}` holds {} projects; `cairn simulate` replays events through one",
            path.display(),
            projects.len()
        ));
    };
    let from = instant("--from", args.from.as_deref())?;
    let to = instant("--to", args.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(miette::miette!("`--to` must be later than `--from`"));
    }
    let plan = match build_plan(project, None) {
        Ok(built) => Arc::new(built.plan),
        Err(errors) => {
            for (file, d) in &errors {
                let source = &project.sources[*file];
                eprintln!("{}", render::diagnostic(d, &source.path, &source.text));
            }
            eprintln!("`{}` does not compile", project.name());
            return Ok(Outcome::Usage);
        }
    };

    let (text, origin) = if let Some(file) = &args.events {
        (read_events(file)?, file.display().to_string())
    } else if let Some(n) = args.synthetic {
        let contacts = args.contacts.unwrap_or(n / 10).max(1);
        let start = from.unwrap_or(SYNTHETIC_START);
        let text = simulate::synthetic(&plan, n, contacts, start, 0x5eed);
        if let Some(file) = &args.save_events {
            std::fs::write(file, &text)
                .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?;
        }
        (text, format!("{n} synthetic events"))
    } else if let Some(server) = &args.against_server {
        let (Some(from), Some(to)) = (from, to) else {
            return Err(miette::miette!(
                "`--against-server` needs `--from` and `--to`"
            ));
        };
        let server = server_url(Some(server), None);
        let Some(token) = admin_token(args.token.as_deref(), Some(&project.root)) else {
            return Err(miette::miette!(
                help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
                "`cairn simulate --against-server` needs the daemon's admin token"
            ));
        };
        let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
        let text = client
            .events(from, to)
            .map_err(|e| miette::miette!("{e}"))?;
        (text, format!("the events {server} stored"))
    } else {
        return Err(miette::miette!(
            "name the events: `--events FILE`, `--synthetic N` or `--against-server URL`"
        ));
    };

    let started = Instant::now();
    let schema = simulate::schema(&plan);
    let messages = simulate::read_messages(&schema, &text);
    if !messages.invalid.is_empty() && !args.skip_invalid {
        for invalid in messages.invalid.iter().take(LISTED_INVALID) {
            eprintln!("error: {origin}: {invalid}");
        }
        if messages.invalid.len() > LISTED_INVALID {
            eprintln!(
                "... and {} more invalid lines",
                messages.invalid.len() - LISTED_INVALID
            );
        }
        eprintln!(
            "{} of {} lines are not messages the plan accepts; nothing was replayed \
             (pass `--skip-invalid` to replay the rest and count them)",
            messages.invalid.len(),
            messages.invalid.len() + messages.inputs.len()
        );
        return Ok(Outcome::Failed);
    }
    let total = messages.inputs.len() as u64;
    let bar = progress_bar(total);
    let progress = |n| {
        if let Some(bar) = &bar {
            bar.inc(n);
        }
    };
    // Only the JSON lines format prints the timeline: the others need the counts.
    let (report, timeline) = match args.format {
        SimulateFormat::Jsonl => simulate::replay(&plan, messages, from, to, &progress),
        _ => (
            simulate::replay_report(&plan, messages, from, to, &progress),
            Vec::new(),
        ),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();

    let text = match args.format {
        SimulateFormat::Human => human(&report),
        SimulateFormat::Markdown => markdown(&report),
        SimulateFormat::Jsonl => jsonl(&timeline),
        SimulateFormat::Json => {
            let mut text = serde_json::to_string_pretty(&report)
                .map_err(|e| miette::miette!("cannot print the report: {e}"))?;
            text.push('\n');
            text
        }
    };
    match &args.output {
        Some(file) => std::fs::write(file, &text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?,
        None => render::out(&text),
    }
    eprintln!(
        "replayed {total} messages from {origin} in {:.3} s ({:.0} messages/s)",
        seconds,
        total as f64 / seconds.max(1e-9)
    );
    Ok(Outcome::Ok)
}

/// Synthetic traffic starts here unless `--from` says otherwise, so that runs are
/// reproducible.
const SYNTHETIC_START: Millis = 1_772_359_200_000; // 2026-03-01T10:00:00Z

pub(super) fn instant(flag: &str, text: Option<&str>) -> miette::Result<Option<Millis>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match parse_instant(text) {
        Some(t) => Ok(Some(t.as_millisecond())),
        None => Err(miette::miette!(
            help = "write an ISO 8601 date or instant, such as 2026-03-01 or 2026-03-01T10:00:00Z",
            "`{flag} {text}` is not a date or time"
        )),
    }
}

fn read_events(file: &Path) -> miette::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| miette::miette!("cannot read the events from standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file)
        .map_err(|e| miette::miette!("cannot read `{}`: {e}", file.display()))
}

/// A progress line on stderr, only when someone watches it.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 50_000 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "replaying {bar:30} {human_pos}/{human_len} messages ({per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// Every outcome, one JSON object per line, as `cairn test --format jsonl` prints them
/// (with the instant to the millisecond).
fn jsonl(timeline: &[cairn_runtime::model::Outcome]) -> String {
    let mut out = String::new();
    for o in timeline {
        let line = serde_json::json!({
            "at": cairn_runtime::time::timestamp(o.at).to_string(), "kind": o.kind,
            "contact": o.contact_id, "journey": o.journey, "run": o.run_id, "step": o.step,
            "detail": o.detail,
        });
        let _ = writeln!(out, "{line}");
    }
    out
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `before` `counts(map)` `after`, or nothing when `map` is empty.
fn listed(before: &str, map: &std::collections::BTreeMap<String, u64>, after: &str) -> String {
    if map.is_empty() {
        String::new()
    } else {
        format!("{before}{}{after}", counts(map))
    }
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} messages replayed from {} to {}: {} contacts, {} messages sent{}",
        report.messages,
        report.from,
        report.to,
        report.contacts,
        report.sent(),
        listed(" (", &report.sent_by_channel, ")")
    );
    if report.outside_window > 0 {
        let _ = writeln!(
            out,
            "{} messages outside the window were not replayed",
            report.outside_window
        );
    }
    if report.anonymous > 0 {
        let _ = writeln!(
            out,
            "{} events of anonymous visitors no contact claimed started nothing",
            report.anonymous
        );
    }
    if !report.invalid.is_empty() {
        let _ = writeln!(out, "{} invalid lines skipped:", report.invalid.len());
        for invalid in report.invalid.iter().take(LISTED_INVALID) {
            let _ = writeln!(out, "  {invalid}");
        }
    }
    for j in &report.journeys {
        let _ = writeln!(
            out,
            "\n{}: {} entered, {} reached the goal, {} in flight{}",
            j.journey,
            j.entered,
            j.goals,
            j.in_flight,
            listed("; ended: ", &j.ended, "")
        );
        let width = j.steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
        let does = j.steps.iter().map(|s| s.does.len()).max().unwrap_or(0);
        for s in &j.steps {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<does$}  {}",
                s.step,
                s.does,
                step_counts(s)
            );
        }
    }
    out
}

fn step_counts(s: &simulate::StepReport) -> String {
    let mut parts = Vec::new();
    if s.sent > 0 {
        parts.push(format!("sent {}", s.sent));
    }
    if !s.skipped.is_empty() {
        parts.push(format!("skipped {}", counts(&s.skipped)));
    }
    if s.deferred > 0 {
        parts.push(format!("deferred {}", s.deferred));
    }
    if !s.arms.is_empty() {
        parts.push(format!("arms {}", counts(&s.arms)));
    }
    if s.waiting > 0 {
        parts.push(format!("waiting {}", s.waiting));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "**{}** messages replayed from {} to {}: **{}** contacts, **{}** messages sent{}\n",
        report.messages,
        report.from,
        report.to,
        report.contacts,
        report.sent(),
        listed(" (", &report.sent_by_channel, ")")
    );
    if !report.invalid.is_empty() {
        let _ = writeln!(out, "{} invalid lines skipped.\n", report.invalid.len());
    }
    for j in &report.journeys {
        let _ = writeln!(
            out,
            "### `{}`\n\n{} entered, {} reached the goal, {} in flight{}\n",
            j.journey,
            j.entered,
            j.goals,
            j.in_flight,
            listed("; ended: ", &j.ended, "")
        );
        let _ = writeln!(
            out,
            "| step | does | sent | skipped | deferred | waiting |\n|---|---|---:|---|---:|---:|"
        );
        for s in &j.steps {
            let does = if s.arms.is_empty() {
                s.does.clone()
            } else {
                format!("{} ({})", s.does, counts(&s.arms))
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                s.step,
                does.replace('|', "\\|"),
                s.sent,
                counts(&s.skipped),
                s.deferred,
                s.waiting
            );
        }
        out.push('\n');
    }
    out
}
