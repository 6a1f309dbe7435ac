//! `cairn pause JOURNEY` and `cairn resume JOURNEY`: the emergency stop of a journey on
//! a running daemon, through its admin API.

use super::CommandResult;
use super::contacts::connect;
use crate::Outcome;
use crate::cli::JourneyArgs;
use crate::render;

pub fn pause(args: &JourneyArgs) -> CommandResult {
    let (_, client) = connect(
        "cairn pause",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let report = client
        .pause_journey(&args.journey)
        .map_err(|e| miette::miette!("{e}"))?;
    let held = runs(report.runs_held);
    let text = if report.changed {
        let place = if report.runs_held == 1 {
            "where it is"
        } else {
            "where they are"
        };
        format!(
            "journey `{}` is paused: {held} held {place}; `cairn resume {}` lets them continue\n",
            report.journey, report.journey
        )
    } else {
        format!(
            "journey `{}` was already paused (since {}, {held} held); nothing changed\n",
            report.journey,
            instant(report.paused_at)
        )
    };
    render::out(&text);
    Ok(Outcome::Ok)
}

pub fn resume(args: &JourneyArgs) -> CommandResult {
    let (_, client) = connect(
        "cairn resume",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let report = client
        .resume_journey(&args.journey)
        .map_err(|e| miette::miette!("{e}"))?;
    let text = match report.paused_at {
        Some(since) if report.changed => format!(
            "journey `{}` resumed (paused since {}): {} {}; timers that came due during the pause, running now: {}; `wait for`s met by an event that came during the pause: {}\n",
            report.journey,
            instant(since),
            runs(report.runs_resumed),
            if report.runs_resumed == 1 {
                "continues"
            } else {
                "continue"
            },
            report.timers_due,
            report.waits_met,
        ),
        _ => format!(
            "journey `{}` is not paused; nothing changed\n",
            report.journey
        ),
    };
    render::out(&text);
    Ok(Outcome::Ok)
}

fn runs(n: i64) -> String {
    format!("{n} {}", if n == 1 { "run" } else { "runs" })
}

fn instant(at: i64) -> String {
    cairn_runtime::time::timestamp(at)
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}
