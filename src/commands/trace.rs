//! `cairn trace CONTACT`: what happened to a contact on a daemon, run by run, and why it
//! is not in the other journeys, as text, JSON, and an SVG timeline with `--svg FILE`.

use super::CommandResult;
use super::contacts::connect;
use super::simulate::instant;
use super::stats::xml;
use crate::Outcome;
use crate::cli::{TraceArgs, TraceFormat};
use crate::render;
use cairn_runtime::model::Millis;
use cairn_runtime::trace::{Trace, TraceLine, TracedRun, utc_text};
use std::fmt::Write as _;

pub fn run(args: &TraceArgs) -> CommandResult {
    let since = instant("--since", args.since.as_deref())?;
    let (_, client) = connect(
        "cairn trace",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let trace = client
        .trace(&args.contact, args.journey.as_deref(), since)
        .map_err(|e| miette::miette!("{e}"))?;
    let text = match args.format {
        TraceFormat::Json => {
            serde_json::to_string_pretty(&trace)
                .map_err(|e| miette::miette!("cannot print the trace: {e}"))?
                + "\n"
        }
        TraceFormat::Human => human(&trace),
    };
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&trace))
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?;
    }
    render::out(&text);
    Ok(Outcome::Ok)
}

fn line_text(line: &TraceLine) -> String {
    match &line.step {
        Some(step) => format!("{}  {step}: {}", utc_text(line.at), line.text),
        None => format!("{}  {}", utc_text(line.at), line.text),
    }
}

/// The timeline as people read it: a header, each run's lines, the contact's own
/// changes, then why the contact is not in the other journeys.
fn human(trace: &Trace) -> String {
    let mut out = String::new();
    let _ = write!(out, "contact `{}`", trace.contact_id);
    if trace.erased {
        let when = trace
            .erased_at
            .map(|t| format!(" {}", utc_text(t)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            " was erased{when}: only what is kept for statistics is shown"
        );
    } else {
        let zone = &trace.time_zone;
        let local = if zone == "UTC" {
            String::new()
        } else {
            format!("; local times in {zone}")
        };
        let _ = writeln!(out, " (times in UTC{local})");
    }
    if trace.runs.is_empty() {
        out.push_str("\nno runs\n");
    }
    for run in &trace.runs {
        let _ = writeln!(
            out,
            "\n{} (run {}, plan version {})",
            run.journey, run.run_id, run.plan_version
        );
        if let Some(trigger) = &run.trigger {
            let _ = writeln!(out, "  trigger: {trigger}");
        }
        for line in &run.lines {
            let _ = writeln!(out, "  {}", line_text(line));
        }
        // An ended run's last line says how it ended.
        if !run.ended {
            let _ = writeln!(out, "  now: {}", run.state);
        }
    }
    if !trace.contact.is_empty() {
        out.push_str("\noutside any journey\n");
        for line in &trace.contact {
            let _ = writeln!(out, "  {}", line_text(line));
        }
    }
    if !trace.why_not.is_empty() {
        out.push_str("\nwhy not\n");
        for why in &trace.why_not {
            let at = why
                .at
                .map(|t| format!("{}  ", utc_text(t)))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}: {at}{}", why.journey, why.text);
            let _ = writeln!(out, "    trigger: {}", why.trigger);
        }
    }
    out
}

/// The colour of a mark, by what happened.
fn colour(kind: &str) -> &'static str {
    match kind {
        "event" | "enter" => "#7a7a7a",
        "send" | "sent" | "delivered" | "webhook" => "#2f6db5",
        "opened" | "clicked" => "#2e9d4f",
        "skip" | "failed" | "bounced" | "complained" | "suppressed" => "#d1493f",
        "defer" => "#e0a030",
        "goal" => "#8a4fbf",
        "exit" => "#222",
        _ => "#9ab",
    }
}

/// The timeline as a picture: a time axis, one lane per run from its first line to its
/// last, a mark for each line (hover for its text), and a legend.
fn svg(trace: &Trace) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 220.0;
    const RIGHT: f64 = 30.0;
    const LANE: f64 = 34.0;
    const TOP: f64 = 56.0;
    let lanes: Vec<&TracedRun> = trace.runs.iter().filter(|r| !r.lines.is_empty()).collect();
    let times: Vec<Millis> = lanes
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| l.at))
        .collect();
    let first = times.iter().copied().min().unwrap_or_default();
    let last = times
        .iter()
        .copied()
        .max()
        .unwrap_or_default()
        .max(first + 1);
    let span = WIDTH - LABEL - RIGHT;
    let x = |at: Millis| LABEL + (at - first) as f64 / (last - first) as f64 * span;
    let mut body = String::new();
    let axis_y = TOP + lanes.len() as f64 * LANE + 8.0;
    let _ = writeln!(
        body,
        r##"  <line x1="{LABEL}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#444"/>"##,
        WIDTH - RIGHT
    );
    for tick in 0..=4 {
        let at = first + (last - first) * tick / 4;
        let tx = x(at);
        let _ = writeln!(
            body,
            "  <g class=\"tick\">\n    <line x1=\"{tx:.1}\" y1=\"{TOP}\" x2=\"{tx:.1}\" y2=\"{y2}\" \
             stroke=\"#ddd\"/>\n    <text x=\"{tx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>\n  </g>",
            xml(&utc_text(at)),
            y2 = axis_y,
            ty = axis_y + 16.0,
        );
    }
    for (i, run) in lanes.iter().enumerate() {
        let y = TOP + i as f64 * LANE + LANE / 2.0;
        let from = run.lines.first().map_or(first, |l| l.at);
        let to = run.lines.last().map_or(first, |l| l.at);
        let _ = writeln!(
            body,
            "  <g class=\"lane\" data-run=\"{id}\">\n    <text x=\"{lx}\" y=\"{ty}\" \
             text-anchor=\"end\">{journey}</text>\n    <line x1=\"{x1:.1}\" y1=\"{y}\" \
             x2=\"{x2:.1}\" y2=\"{y}\" stroke=\"#bbb\" stroke-width=\"4\"/>",
            id = xml(&run.run_id),
            lx = LABEL - 10.0,
            ty = y + 4.0,
            journey = xml(&format!("{} ({})", run.journey, run.run_id)),
            x1 = x(from),
            x2 = x(to),
        );
        for line in &run.lines {
            let title = match &line.step {
                Some(step) => format!("{}  {step}: {}", utc_text(line.at), line.text),
                None => format!("{}  {}", utc_text(line.at), line.text),
            };
            let _ = writeln!(
                body,
                "    <g class=\"mark\" data-kind=\"{kind}\"><circle cx=\"{cx:.1}\" cy=\"{y}\" \
                 r=\"6\" fill=\"{fill}\" fill-opacity=\"0.85\"/><title>{title}</title></g>",
                kind = xml(&line.kind),
                cx = x(line.at),
                fill = colour(&line.kind),
                title = xml(&title),
            );
        }
        body.push_str("  </g>\n");
    }
    let legend_y = axis_y + 44.0;
    let legend = [
        ("event", "event, entry"),
        ("send", "sent"),
        ("opened", "opened, clicked"),
        ("skip", "skipped, failed, bounced"),
        ("defer", "deferred"),
        ("goal", "goal"),
        ("exit", "end"),
    ];
    for (i, (kind, label)) in legend.iter().enumerate() {
        let lx = LABEL + i as f64 * 92.0;
        let _ = writeln!(
            body,
            "  <g class=\"legend\"><circle cx=\"{lx}\" cy=\"{legend_y}\" r=\"6\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{label}</text></g>",
            colour(kind),
            lx + 10.0,
            legend_y + 4.0,
        );
    }
    let height = legend_y + 24.0;
    let erased = if trace.erased { " (erased)" } else { "" };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n  \
         <title>{title}</title>\n  \
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n  \
         <text x=\"16\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{title}</text>\n{body}</svg>\n",
        title = xml(&format!(
            "Cairn trace of contact {}{erased}",
            trace.contact_id
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_runtime::trace::WhyNot;

    const T: Millis = 1_772_532_000_000; // 2026-03-03T10:00:00Z

    fn line(minutes: i64, kind: &str, step: Option<&str>, text: &str) -> TraceLine {
        TraceLine {
            at: T + minutes * 60_000,
            kind: kind.into(),
            step: step.map(str::to_string),
            text: text.into(),
        }
    }

    fn trace() -> Trace {
        Trace {
            contact_id: "ana <&>".into(),
            erased: false,
            erased_at: None,
            time_zone: "Europe/Oslo".into(),
            active_version: Some(1),
            runs: vec![TracedRun {
                run_id: "abandoned_cart/ana/1".into(),
                journey: "abandoned_cart".into(),
                plan_version: 1,
                entered_at: T + 120 * 60_000,
                trigger: Some("when cart_updated as cart".into()),
                state: "ended 2026-03-03 14:00:00Z: the goal was reached".into(),
                ended: true,
                lines: vec![
                    line(0, "event", None, "`cart_updated` started the run"),
                    line(120, "enter", None, "entered (plan version 1)"),
                    line(120, "send", Some("remind"), "email `cart_reminder` queued"),
                    line(121, "sent", Some("remind"), "email `cart_reminder` sent"),
                    line(
                        120,
                        "skip",
                        Some("nudge"),
                        "sms `cart_sms` skipped: no consent `sms_marketing`",
                    ),
                    line(240, "goal", None, "goal: `order_completed` arrived"),
                ],
            }],
            contact: Vec::new(),
            why_not: vec![WhyNot {
                journey: "welcome".into(),
                trigger: "when contact created".into(),
                reason: "not_triggered".into(),
                at: None,
                text: "nothing has triggered it for this contact".into(),
            }],
        }
    }

    #[test]
    fn the_text_groups_lines_by_run_and_ends_with_why_not() {
        let text = human(&trace());
        assert!(text.starts_with("contact `ana <&>` (times in UTC; local times in Europe/Oslo)\n"));
        assert!(text.contains(
            "\nabandoned_cart (run abandoned_cart/ana/1, plan version 1)\n  \
             trigger: when cart_updated as cart\n  \
             2026-03-03 10:00:00Z  `cart_updated` started the run\n"
        ));
        assert!(text.contains(
            "  2026-03-03 12:00:00Z  nudge: sms `cart_sms` skipped: no consent `sms_marketing`\n"
        ));
        assert!(text.ends_with(
            "why not\n  welcome: nothing has triggered it for this contact\n    \
             trigger: when contact created\n"
        ));
    }

    #[test]
    fn the_svg_draws_a_lane_per_run_and_a_mark_per_line() {
        let text = svg(&trace());
        let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let lanes = root
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
            .count();
        assert_eq!(lanes, 1);
        let marks: Vec<&str> = root
            .descendants()
            .filter(|n| n.attribute("class") == Some("mark"))
            .filter_map(|n| n.attribute("data-kind"))
            .collect();
        assert_eq!(marks, ["event", "enter", "send", "sent", "skip", "goal"]);
        // The first line is at the left end of the axis, the last at the right.
        let xs: Vec<f64> = root
            .descendants()
            .filter(|n| n.has_tag_name("circle") && n.attribute("r") == Some("6"))
            .filter_map(|n| n.attribute("cx")?.parse().ok())
            .collect();
        assert_eq!(xs.first().copied(), Some(220.0));
        assert_eq!(xs.get(5).copied(), Some(870.0));
    }
}
