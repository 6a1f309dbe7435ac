//! `cairn stats [JOURNEY]`: a daemon's funnels, as text with bar charts, JSON, Markdown,
//! and an SVG picture with `--svg FILE`.

use super::CommandResult;
use super::contacts::connect;
use crate::Outcome;
use crate::cli::{StatsArgs, StatsFormat};
use crate::render;
use cairn_runtime::stats::{JourneyStats, StatsReport, ratio};
use std::fmt::Write as _;

pub fn run(args: &StatsArgs) -> CommandResult {
    let (server, client) = connect(
        "cairn stats",
        args.daemon.server.as_deref(),
        args.daemon.token.as_deref(),
    )?;
    let report = client
        .stats(args.journey.as_deref())
        .map_err(|e| miette::miette!("{e}"))?;
    let text = match args.format {
        StatsFormat::Json => {
            serde_json::to_string_pretty(&report)
                .map_err(|e| miette::miette!("cannot print the statistics: {e}"))?
                + "\n"
        }
        StatsFormat::Human => human(&server, &report),
        StatsFormat::Markdown => markdown(&report),
    };
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&report))
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?;
    }
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?,
        None => render::out(&text),
    }
    Ok(Outcome::Ok)
}

/// Cells of the longest bar.
const BAR_WIDTH: usize = 32;

/// A bar of `part / whole` of [`BAR_WIDTH`] cells, in eighths of a cell.
fn bar(part: i64, whole: i64) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if whole <= 0 || part <= 0 {
        return String::new();
    }
    let eighths = (part.min(whole) as f64 / whole as f64 * (BAR_WIDTH * 8) as f64).round();
    // At least a sliver for anything above zero.
    let eighths = (eighths as usize).max(1);
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(EIGHTHS[eighths % 8]);
    }
    out
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn human(server: &str, report: &StatsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{server}: project `{}`",
        report.project.as_deref().unwrap_or("(none deployed)")
    );
    for journey in &report.journeys {
        out.push('\n');
        human_journey(&mut out, journey);
    }
    let c = &report.contacts;
    let _ = writeln!(
        out,
        "\ncontacts: {} ({} active, {} inactive: no event in {} days), {} erased",
        c.total, c.active, c.inactive, c.inactive_after_days, c.erased
    );
    if report.double_opt_in.is_empty() {
        let _ = writeln!(out, "double opt-in: n/a (no confirmation requested)");
    }
    for d in &report.double_opt_in {
        let _ = writeln!(
            out,
            "double opt-in `{}`: {} requested, {} activated ({})",
            d.consent,
            d.requested,
            d.activated,
            percent(d.activation_rate)
        );
    }
    out
}

fn human_journey(out: &mut String, journey: &JourneyStats) {
    let entered = journey.funnel.first().map_or(0, |s| s.runs);
    let ended: i64 = journey.ended.values().sum();
    let reasons: Vec<String> = journey
        .ended
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "journey `{}`: {entered} entered, {} in flight, {ended} ended{}",
        journey.journey,
        journey.in_flight,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    let label_width = journey
        .funnel
        .iter()
        .map(|s| s.stage.chars().count())
        .chain(journey.steps.iter().map(|s| s.step.chars().count()))
        .max()
        .unwrap_or(0);
    let count_width = entered.to_string().len();
    let row = |out: &mut String, label: &str, n: i64| {
        let _ = writeln!(
            out,
            "  {label:<label_width$}  {:<BAR_WIDTH$}  {n:>count_width$}  {:>6}",
            bar(n, entered),
            percent(ratio(n, entered)),
        );
    };
    let _ = writeln!(out, "\n  funnel (runs)");
    for stage in &journey.funnel {
        row(out, &stage.stage, stage.runs);
    }
    let _ = writeln!(
        out,
        "\n  open rate {} · click-through rate {} · conversion rate {}",
        percent(journey.open_rate),
        percent(journey.click_through_rate),
        percent(journey.conversion_rate)
    );
    if journey.steps.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n  runs reaching each step");
    for step in &journey.steps {
        row(out, &step.step, step.counts.reached);
    }
    let header = [
        "step",
        "kind",
        "reached",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "goal",
        "exited",
        "now",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_string()).collect()];
    for step in &journey.steps {
        let c = &step.counts;
        rows.push(vec![
            step.step.clone(),
            step.kind.clone().unwrap_or_else(|| "(old)".into()),
            c.reached.to_string(),
            c.sent.to_string(),
            c.delivered.to_string(),
            c.opened.to_string(),
            c.clicked.to_string(),
            c.goal.to_string(),
            c.exited.to_string(),
            c.in_flight.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    out.push('\n');
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            let w = widths[i];
            if i < 2 {
                let _ = write!(line, "  {cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn markdown(report: &StatsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Journey statistics{}\n",
        report
            .project
            .as_deref()
            .map(|p| format!(" of `{p}`"))
            .unwrap_or_default()
    );
    for journey in &report.journeys {
        let entered = journey.funnel.first().map_or(0, |s| s.runs);
        let _ = writeln!(out, "## `{}`\n", journey.journey);
        let _ = writeln!(out, "| stage | runs | of entered |\n|---|---:|---:|");
        for stage in &journey.funnel {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                stage.stage,
                stage.runs,
                percent(ratio(stage.runs, entered))
            );
        }
        let _ = writeln!(
            out,
            "\nOpen rate {}, click-through rate {}, conversion rate {}; {} in flight.\n",
            percent(journey.open_rate),
            percent(journey.click_through_rate),
            percent(journey.conversion_rate),
            journey.in_flight
        );
        if !journey.steps.is_empty() {
            let _ = writeln!(
                out,
                "| step | kind | reached | sent | delivered | opened | clicked | goal | exited | now |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for step in &journey.steps {
                let c = &step.counts;
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    step.step,
                    step.kind.as_deref().unwrap_or("(old)"),
                    c.reached,
                    c.sent,
                    c.delivered,
                    c.opened,
                    c.clicked,
                    c.goal,
                    c.exited,
                    c.in_flight
                );
            }
            out.push('\n');
        }
    }
    let c = &report.contacts;
    let _ = writeln!(
        out,
        "Contacts: {} ({} active, {} inactive: no event in {} days), {} erased.",
        c.total, c.active, c.inactive, c.inactive_after_days, c.erased
    );
    if report.double_opt_in.is_empty() {
        let _ = writeln!(out, "\nDouble opt-in: n/a.");
    }
    for d in &report.double_opt_in {
        let _ = writeln!(
            out,
            "\nDouble opt-in `{}`: {} requested, {} activated ({}).",
            d.consent,
            d.requested,
            d.activated,
            percent(d.activation_rate)
        );
    }
    out
}

/// `text` with XML's special characters escaped.
pub(super) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Each journey's funnel and its steps as horizontal bars, one SVG document.
fn svg(report: &StatsReport) -> String {
    const WIDTH: f64 = 760.0;
    const LABEL: f64 = 170.0;
    const BAR: f64 = 420.0;
    const ROW: f64 = 26.0;
    let mut body = String::new();
    let mut y = 20.0;
    for journey in &report.journeys {
        let entered = journey.funnel.first().map_or(0, |s| s.runs);
        y += 24.0;
        let _ = writeln!(
            body,
            r#"  <text x="16" y="{y}" class="title">Journey {}: {} entered, conversion {}</text>"#,
            xml(&journey.journey),
            entered,
            xml(&percent(journey.conversion_rate))
        );
        y += 12.0;
        let sections = [
            (
                "funnel",
                "stage",
                journey
                    .funnel
                    .iter()
                    .map(|s| (s.stage.clone(), s.runs))
                    .collect::<Vec<_>>(),
            ),
            (
                "steps",
                "step",
                journey
                    .steps
                    .iter()
                    .map(|s| (s.step.clone(), s.counts.reached))
                    .collect(),
            ),
        ];
        for (section, class, rows) in sections {
            if rows.is_empty() {
                continue;
            }
            y += 18.0;
            let _ = writeln!(
                body,
                r#"  <text x="16" y="{y}" class="section">{}</text>"#,
                if section == "funnel" {
                    "Funnel (runs)"
                } else {
                    "Runs reaching each step"
                }
            );
            y += 8.0;
            for (label, n) in rows {
                let width = ratio(n, entered).map_or(0.0, |r| (r.min(1.0) * BAR).max(1.0));
                let width = if n > 0 { width } else { 0.0 };
                let _ = writeln!(
                    body,
                    "  <g class=\"{class}\" data-name=\"{name}\" data-runs=\"{n}\">\n    \
                     <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{name}</text>\n    \
                     <rect x=\"{bx}\" y=\"{y}\" width=\"{width:.1}\" height=\"{h}\" rx=\"2\"/>\n    \
                     <text x=\"{vx:.1}\" y=\"{ty}\" class=\"value\">{n} ({pct})</text>\n  </g>",
                    name = xml(&label),
                    lx = LABEL - 8.0,
                    ty = y + 14.0,
                    bx = LABEL,
                    h = ROW - 8.0,
                    vx = LABEL + width + 6.0,
                    pct = xml(&percent(ratio(n, entered))),
                );
                y += ROW;
            }
        }
        y += 8.0;
    }
    let height = y + 16.0;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n  \
         <title>{title}</title>\n  \
         <style>\n    .title {{ font-size: 16px; font-weight: bold; }}\n    \
         .section {{ font-weight: bold; fill: #444; }}\n    \
         .stage rect {{ fill: #2f6db5; }}\n    .step rect {{ fill: #7fa4d1; }}\n    \
         .value {{ fill: #333; }}\n  </style>\n  \
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{body}</svg>\n",
        title = xml(&format!(
            "Cairn journey statistics{}",
            report
                .project
                .as_deref()
                .map(|p| format!(" of {p}"))
                .unwrap_or_default()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_runtime::stats::{Activity, DoubleOptIn, Stage, StepStats};
    use cairn_runtime::store::stats::StepTally;
    use std::collections::BTreeMap;

    fn report() -> StatsReport {
        let stage = |stage: &str, runs| Stage {
            stage: stage.into(),
            runs,
        };
        let step =
            |step: &str, kind: &str, reached, sent, opened, goal, exited, in_flight| StepStats {
                step: step.into(),
                kind: Some(kind.into()),
                counts: StepTally {
                    reached,
                    sent,
                    delivered: sent,
                    opened,
                    clicked: 0,
                    goal,
                    exited,
                    in_flight,
                },
            };
        StatsReport {
            generated_at: 0,
            project: Some("shop <&> co".into()),
            contacts: Activity {
                inactive_after_days: 30,
                total: 40,
                active: 31,
                inactive: 9,
                erased: 1,
            },
            double_opt_in: vec![DoubleOptIn {
                consent: "email_marketing".into(),
                requested: 20,
                activated: 15,
                activation_rate: Some(0.75),
            }],
            journeys: vec![JourneyStats {
                journey: "abandoned_cart".into(),
                funnel: vec![
                    stage("entered", 40),
                    stage("sent", 36),
                    stage("delivered", 35),
                    stage("opened", 17),
                    stage("clicked", 6),
                    stage("converted", 5),
                ],
                open_rate: Some(17.0 / 35.0),
                click_through_rate: Some(6.0 / 35.0),
                conversion_rate: Some(5.0 / 40.0),
                in_flight: 12,
                ended: BTreeMap::from([
                    ("completed".into(), 22),
                    ("erased".into(), 1),
                    ("goal".into(), 5),
                ]),
                steps: vec![
                    step("remind", "send", 40, 36, 17, 2, 1, 3),
                    step("wait_open", "wait_for", 37, 0, 0, 3, 0, 9),
                    step("nudge_sms", "send", 14, 11, 0, 0, 22, 0),
                ],
            }],
        }
    }

    #[test]
    fn the_terminal_chart_scales_bars_to_the_entered_runs() {
        let text = human("http://127.0.0.1:8080", &report());
        insta::assert_snapshot!(text);
    }

    #[test]
    fn markdown_has_a_table_per_journey() {
        let text = markdown(&report());
        insta::assert_snapshot!(text);
    }

    #[test]
    fn bars_round_to_eighths_and_show_a_sliver_for_small_counts() {
        assert_eq!(bar(0, 10), "");
        assert_eq!(bar(10, 10).chars().count(), BAR_WIDTH);
        assert_eq!(bar(5, 10), "█".repeat(BAR_WIDTH / 2));
        assert_eq!(bar(1, 1_000), "▏");
        assert_eq!(bar(3, 0), "");
    }

    #[test]
    fn the_svg_is_well_formed_and_draws_every_stage_and_step() {
        let text = svg(&report());
        let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let title = root
            .children()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("Cairn journey statistics of shop <&> co"));
        let drawn = |class: &str| -> Vec<(String, String)> {
            root.descendants()
                .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some(class))
                .map(|g| {
                    (
                        g.attribute("data-name").unwrap_or_default().to_string(),
                        g.attribute("data-runs").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(
            drawn("stage"),
            [
                ("entered", "40"),
                ("sent", "36"),
                ("delivered", "35"),
                ("opened", "17"),
                ("clicked", "6"),
                ("converted", "5")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(
            drawn("step"),
            [("remind", "40"), ("wait_open", "37"), ("nudge_sms", "14")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        // The bars are to scale: the entered bar is the full width, half as many runs
        // draw half as long.
        let widths: Vec<f64> = root
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("rx").is_some())
            .filter_map(|n| n.attribute("width")?.parse().ok())
            .collect();
        assert_eq!(widths.first().copied(), Some(420.0));
        assert_eq!(widths.get(1).copied(), Some(378.0));
    }
}
