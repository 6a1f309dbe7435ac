//! `cairn graph`: a journey as a flow chart, in Mermaid (renders in GitHub pull requests
//! and Markdown), Graphviz DOT, or an SVG picture; with `--server`, each step shows the
//! runs waiting there now.

mod svg;

use super::CommandResult;
use super::deploy::{admin_token, server_url};
use crate::Outcome;
use crate::cli::{GraphArgs, GraphFormat};
use crate::render;
use cairn_plan::journey::{Journey, StepKind, Trigger};
use cairn_runtime::client::AdminClient;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

pub fn run(args: &GraphArgs) -> CommandResult {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let does = "`cairn graph` draws one journey of one project";
    let Some((project, plan)) = super::compiled_project(&path, does)? else {
        return Ok(Outcome::Failed);
    };
    let Some(journey) = plan.journeys.get(&args.journey) else {
        let names: Vec<&str> = plan.journeys.keys().map(String::as_str).collect();
        let hint = cairn_compiler::suggest::did_you_mean(&args.journey, names.iter().copied())
            .map_or_else(
                || format!("the journeys are {}", names.join(", ")),
                |s| format!("did you mean `{s}`?"),
            );
        return Err(miette::miette!(
            help = hint,
            "no journey `{}` in `{}`",
            args.journey,
            project.name()
        ));
    };
    let counts = match &args.server {
        Some(server) => waiting(server, args.token.as_deref(), &project.root, &journey.name)?,
        None => HashMap::new(),
    };
    let text = match args.format {
        GraphFormat::Mermaid => mermaid(journey, &counts),
        GraphFormat::Dot => dot(journey, &counts),
        GraphFormat::Svg => svg::render(&journey.name, &graph(journey), &counts),
    };
    match &args.output {
        Some(file) => std::fs::write(file, &text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?,
        None => render::out(&text),
    }
    Ok(Outcome::Ok)
}

/// The runs of `journey` waiting at each step now (every plan version), from the
/// daemon's status.
fn waiting(
    server: &str,
    token: Option<&str>,
    project_dir: &std::path::Path,
    journey: &str,
) -> miette::Result<HashMap<String, i64>> {
    let server = server_url(Some(server), None);
    let Some(token) = admin_token(token, Some(project_dir)) else {
        return Err(miette::miette!(
            help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
            "`cairn graph --server` needs the daemon's admin token"
        ));
    };
    let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
    let status = client.status().map_err(|e| miette::miette!("{e}"))?;
    let mut counts: HashMap<String, i64> = HashMap::new();
    for j in status.journeys.iter().filter(|j| j.name == journey) {
        for runs in &j.in_flight {
            if let Some(step) = &runs.step {
                *counts.entry(step.clone()).or_default() += runs.runs;
            }
        }
    }
    Ok(counts)
}

/// `N waiting`, for a step with runs at it.
fn count_text(counts: &HashMap<String, i64>, id: &str) -> Option<String> {
    counts
        .get(id)
        .filter(|n| **n > 0)
        .map(|n| format!("{n} waiting"))
}

/// One node per step, and the start and end of a run.
struct Graph {
    nodes: Vec<(String, String, Shape)>,
    edges: Vec<(String, String, String, bool)>,
}

#[derive(Clone, Copy)]
enum Shape {
    Step,
    Decision,
    Wait,
    Terminal,
}

const START: &str = "run_start";
const END: &str = "run_end";

fn graph(journey: &Journey) -> Graph {
    let mut g = Graph {
        nodes: vec![(
            START.into(),
            trigger_text(&journey.trigger),
            Shape::Terminal,
        )],
        edges: Vec::new(),
    };
    let target = |t: &Option<cairn_plan::StepId>| {
        t.as_ref().map_or_else(|| END.to_string(), |s| s.0.clone())
    };
    g.edges
        .push((START.into(), target(&journey.entry), String::new(), false));
    let mut ends = false;
    for (id, step) in &journey.steps {
        let label = step.source.as_ref().and_then(|s| s.label.clone());
        let (text, shape) = step_text(&step.kind);
        let text = match label {
            Some(l) => format!("{l}: {text}"),
            None => text,
        };
        g.nodes.push((id.0.clone(), text, shape));
        let mut edge = |to: &Option<cairn_plan::StepId>, label: &str, dashed: bool| {
            if to.is_none() {
                ends = true;
            }
            g.edges
                .push((id.0.clone(), target(to), label.to_string(), dashed));
        };
        match &step.kind {
            StepKind::WaitFor {
                on_event,
                on_timeout,
                event,
                ..
            } => {
                edge(on_event, event, false);
                edge(on_timeout, "timeout", false);
            }
            StepKind::Branch { then, else_, .. } => {
                edge(then, "yes", false);
                edge(else_, "no", false);
            }
            StepKind::Split { arms } => {
                for arm in arms {
                    edge(&arm.next, &format!("{} {}%", arm.name, arm.percent), false);
                }
            }
            StepKind::Retry { target: back, max } => {
                edge(&Some(back.clone()), &format!("at most {max}x"), true);
                edge(&step.next, "", false);
            }
            StepKind::Goal | StepKind::Exit => edge(&None, "", false),
            _ => edge(&step.next, "", false),
        }
    }
    if ends || journey.entry.is_none() {
        g.nodes.push((END.into(), "end".into(), Shape::Terminal));
    }
    g
}

fn trigger_text(t: &Trigger) -> String {
    match t {
        Trigger::Event {
            event,
            unless: Some(u),
            ..
        } => format!("when {event} unless {}", u.event),
        Trigger::Event { event, .. } => format!("when {event}"),
        Trigger::Anniversary { field, at } => format!("anniversary of {} at {at}", field.join(".")),
        Trigger::Inactive { event, .. } => format!("no {event}"),
        Trigger::Segment { segment, change } => {
            format!("{change:?} segment {segment}").to_lowercase()
        }
        Trigger::Tag { tag, change } => format!("tag {tag} {change:?}").to_lowercase(),
        Trigger::Page { pattern } => format!("page {pattern} visited"),
        Trigger::ContactCreated => "contact created".into(),
        Trigger::ConsentGranted { consent } => format!("consent {consent} granted"),
    }
}

fn step_text(kind: &StepKind) -> (String, Shape) {
    match kind {
        StepKind::Send {
            channel, template, ..
        } => (format!("send {} {template}", channel.as_str()), Shape::Step),
        StepKind::SendPreferred { templates, .. } => (
            format!("send preferred {}", templates.join(" / ")),
            Shape::Step,
        ),
        StepKind::Webhook { url, .. } => (format!("post {url}"), Shape::Step),
        StepKind::Wait { seconds } => (format!("wait {}", human_seconds(*seconds)), Shape::Wait),
        StepKind::WaitMonths { months } => (format!("wait {months} months"), Shape::Wait),
        StepKind::WaitUntil { from, to } => (
            match to {
                Some(to) => format!("wait until {from}..{to}"),
                None => format!("wait until {from}"),
            },
            Shape::Wait,
        ),
        StepKind::WaitFor { event, .. } => (format!("wait for {event}"), Shape::Wait),
        StepKind::Branch { .. } => ("if".into(), Shape::Decision),
        StepKind::Split { .. } => ("split".into(), Shape::Decision),
        StepKind::Tag { add, tag } => (
            format!("tag {} {tag}", if *add { "add" } else { "remove" }),
            Shape::Step,
        ),
        StepKind::Score { score, delta } => (format!("score {score} {delta}"), Shape::Step),
        StepKind::Set { path, .. } => (format!("set {}", path.join(".")), Shape::Step),
        StepKind::Retry { target, .. } => (format!("retry {}", target.0), Shape::Decision),
        StepKind::Goal => ("goal".into(), Shape::Terminal),
        StepKind::Exit => ("exit".into(), Shape::Terminal),
    }
}

fn human_seconds(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Mermaid node ids allow letters, digits and `_`.
fn node_id(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn quote(text: &str) -> String {
    text.replace('"', "#quot;")
}

fn mermaid(journey: &Journey, counts: &HashMap<String, i64>) -> String {
    let g = graph(journey);
    let mut out = format!("flowchart TD\n  %% journey {}\n", journey.name);
    for (id, text, shape) in &g.nodes {
        let n = node_id(id);
        let t = match count_text(counts, id) {
            Some(c) => format!("{}<br/>{c}", quote(text)),
            None => quote(text),
        };
        let _ = writeln!(
            out,
            "  {}",
            match shape {
                Shape::Step => format!("{n}[\"{t}\"]"),
                Shape::Decision => format!("{n}{{\"{t}\"}}"),
                Shape::Wait => format!("{n}([\"{t}\"])"),
                Shape::Terminal => format!("{n}((\"{t}\"))"),
            }
        );
    }
    for (from, to, label, dashed) in &g.edges {
        let arrow = if *dashed { "-.->" } else { "-->" };
        let label = if label.is_empty() {
            String::new()
        } else {
            format!("|\"{}\"|", quote(label))
        };
        let _ = writeln!(out, "  {} {arrow}{label} {}", node_id(from), node_id(to));
    }
    out
}

fn dot(journey: &Journey, counts: &HashMap<String, i64>) -> String {
    let g = graph(journey);
    let esc = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n",
        esc(&journey.name)
    );
    for (id, text, shape) in &g.nodes {
        let shape = match shape {
            Shape::Step => "box",
            Shape::Decision => "diamond",
            Shape::Wait => "box, style=rounded",
            Shape::Terminal => "ellipse",
        };
        let label = match count_text(counts, id) {
            Some(c) => format!("{}\\n{c}", esc(text)),
            None => esc(text),
        };
        let _ = writeln!(out, "  \"{}\" [label=\"{label}\", shape={shape}];", esc(id));
    }
    for (from, to, label, dashed) in &g.edges {
        let style = if *dashed { ", style=dashed" } else { "" };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"{style}];",
            esc(from),
            esc(to),
            esc(label)
        );
    }
    out.push_str("}\n");
    out
}
