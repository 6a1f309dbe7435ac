//! `cairn preview`: one template rendered for sample data exactly as the daemon would
//! send it (the runtime's own rendering, links and tracking), without a daemon; with
//! `--send-to`, a running daemon renders it with its active plan and sends it to an
//! address as a test message.

use super::CommandResult;
use super::deploy::{DEFAULT_LISTEN, admin_token, server_url};
use crate::Outcome;
use crate::cli::{PreviewArgs, PreviewFormat};
use crate::render;
use cairn_compiler::project::Project;
use cairn_grammar::ast::ItemKind;
use cairn_plan::Plan;
use cairn_plan::schema::{Channel, Type};
use cairn_runtime::client::{AdminClient, ClientError};
use cairn_runtime::engine::Links;
use cairn_runtime::preview::{self, Preview, PreviewError, RenderError, SampleInput, TestSend};
use serde_json::{Map, Value as Json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The sender the daemon uses when neither `[email] from` nor CAIRN_EMAIL_FROM is set.
const DEFAULT_FROM: &str = "Cairn <cairn@localhost>";

pub fn run(args: &PreviewArgs) -> CommandResult {
    let path = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let does = "`cairn preview` renders a template of one";
    let Some((project, plan)) = super::compiled_project(&path, does)? else {
        return Ok(Outcome::Failed);
    };
    let project = &project;
    if let Err(e) = preview::template(&plan, &args.template) {
        let names: Vec<&str> = plan.templates.keys().map(String::as_str).collect();
        let hint = cairn_compiler::suggest::did_you_mean(&args.template, names.iter().copied())
            .map_or_else(
                || {
                    e.to_string()
                        .replace(&format!("no template `{}`; ", args.template), "")
                },
                |s| format!("did you mean `{s}`?"),
            );
        return Err(miette::miette!(
            help = hint,
            "no template `{}` in `{}`",
            args.template,
            project.name()
        ));
    }
    let input = sample_input(args, &plan)?;
    if let Some(address) = &args.send_to {
        return send_test(args, project, address, input);
    }

    let links = local_links(project);
    let sample = match preview::sample(&plan, &args.template, &input) {
        Ok(sample) => sample,
        Err(e) => return Ok(failed(project, &e)),
    };
    let message = format!("preview/{}/{}/1", args.template, sample.step);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let preview = match preview::render(&plan, &links, &args.template, &sample, &message, now) {
        Ok(preview) => preview,
        Err(e) => return Ok(failed(project, &e)),
    };
    let from = email_from(project);
    let text = match args.format {
        PreviewFormat::Text => human(&preview, &from),
        PreviewFormat::Json => {
            let mut json = serde_json::to_value(&preview).map_err(|e| miette::miette!("{e}"))?;
            if preview.channel == Channel::Email {
                json["from"] = Json::String(from);
            }
            serde_json::to_string_pretty(&json).map_err(|e| miette::miette!("{e}"))? + "\n"
        }
        PreviewFormat::Html => match preview.part("html") {
            Some(html) => html.to_string(),
            None => {
                return Err(miette::miette!(
                    "template `{}` is for {}: it has no html part",
                    args.template,
                    preview.channel.as_str()
                ));
            }
        },
    };
    match &args.output {
        Some(file) => std::fs::write(file, &text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", file.display()))?,
        None => render::out(&text),
    }
    Ok(Outcome::Ok)
}

/// The sample data of the flags: the contact (a file, or traits), the event payloads.
fn sample_input(args: &PreviewArgs, plan: &Plan) -> miette::Result<SampleInput> {
    let mut input = SampleInput::default();
    if let Some(file) = &args.contact {
        match read_json(file)? {
            Json::Object(contact) => input.contact = Some(contact),
            other => {
                return Err(miette::miette!(
                    "`{}` must hold a JSON object of traits, not {}",
                    file.display(),
                    kind_of(&other)
                ));
            }
        }
    }
    if !args.traits.is_empty() {
        let mut contact = Map::new();
        for pair in &args.traits {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(miette::miette!(
                    "`--trait {pair}` must be `NAME=VALUE`, such as `--trait first_name=Ana`"
                ));
            };
            contact.insert(
                name.trim().to_string(),
                trait_value(plan, name.trim(), value),
            );
        }
        input.contact = Some(contact);
    }
    for pair in &args.events {
        let Some((binding, file)) = pair.split_once('=') else {
            return Err(miette::miette!(
                "`--event {pair}` must be `BINDING=FILE.json`, such as `--event cart=cart.json`"
            ));
        };
        let payload = read_json(Path::new(file))?;
        input.bindings.insert(binding.trim().to_string(), payload);
    }
    Ok(input)
}

/// A `--trait` value: JSON for a number, a bool, a list or a record field, text else.
fn trait_value(plan: &Plan, name: &str, value: &str) -> Json {
    let typed = plan
        .schema
        .contact
        .iter()
        .find(|f| f.name == name)
        .is_some_and(|f| {
            matches!(&f.ty, Type::Scalar { name } if name == "number" || name == "bool")
                || matches!(f.ty, Type::List { .. } | Type::Record { .. })
        });
    match serde_json::from_str(value) {
        Ok(json) if typed => json,
        _ => Json::String(value.to_string()),
    }
}

fn read_json(file: &Path) -> miette::Result<Json> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| miette::miette!("cannot read `{}`: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        miette::miette!(
            "`{}` is not JSON: {e} (line {}, column {})",
            file.display(),
            e.line(),
            e.column()
        )
    })
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// The links the daemon of this project would make: its public URL, and its link key
/// when CAIRN_LINK_SECRET gives it (else a fixed one: the links have their real shape,
/// but only the daemon's own key makes them work).
fn local_links(project: &Project) -> Links {
    let serve = &project.manifest.serve;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let listen = env("CAIRN_LISTEN")
        .or_else(|| serve.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let fixed = Links::default();
    Links {
        base_url: env("CAIRN_PUBLIC_URL")
            .or_else(|| serve.public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}")),
        secret: env("CAIRN_LINK_SECRET").map_or(fixed.secret, String::into_bytes),
    }
}

/// The `From` of emails, as `cairn serve` decides it.
fn email_from(project: &Project) -> String {
    std::env::var("CAIRN_EMAIL_FROM")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| project.manifest.email.as_ref().and_then(|e| e.from.clone()))
        .unwrap_or_else(|| DEFAULT_FROM.to_string())
}

/// The message as text: its headers, its text, its links, and its HTML.
fn human(preview: &Preview, from: &str) -> String {
    let mut out = String::new();
    let kind = if preview.transactional {
        "transactional"
    } else {
        "marketing"
    };
    let _ = writeln!(
        out,
        "template `{}`: {} {kind} message",
        preview.template,
        preview.channel.as_str()
    );
    if preview.journey.is_empty() {
        let _ = writeln!(out, "sent by:  no journey");
    } else {
        let _ = writeln!(
            out,
            "sent by:  journey `{}`, step `{}`",
            preview.journey, preview.step
        );
    }
    if !preview.generated.is_empty() {
        let names: Vec<String> = preview.generated.iter().map(|g| format!("`{g}`")).collect();
        let _ = writeln!(
            out,
            "sample:   {} generated from the schema",
            names.join(", ")
        );
    }
    let to = preview
        .to
        .as_deref()
        .unwrap_or("(the sample contact has no address)");
    let _ = writeln!(out);
    match preview.channel {
        Channel::Email => {
            let _ = writeln!(out, "From:     {from}");
            let _ = writeln!(out, "To:       {to}");
            let _ = writeln!(out, "Subject:  {}", preview.part("subject").unwrap_or(""));
            if let Some(preheader) = preview.part("preheader") {
                let _ = writeln!(out, "Preheader: {preheader}");
            }
            let (label, text) = match (preview.part("text"), preview.part("html")) {
                (Some(text), _) => ("text part", text.to_string()),
                (None, Some(html)) => (
                    "text part (made from the html)",
                    cairn_runtime::channels::html_to_text(html),
                ),
                (None, None) => ("text part", String::new()),
            };
            section(&mut out, label, &text);
        }
        Channel::Sms => {
            let _ = writeln!(out, "To:       {to}");
            let text = preview.part("text").unwrap_or("");
            section(
                &mut out,
                &format!("text ({} characters)", text.chars().count()),
                text,
            );
        }
        Channel::Push => {
            let _ = writeln!(out, "To:       {to}");
            let _ = writeln!(out, "Title:    {}", preview.part("title").unwrap_or(""));
            if let Some(url) = preview.part("url") {
                let _ = writeln!(out, "URL:      {url}");
            }
            section(&mut out, "body", preview.part("body").unwrap_or(""));
        }
    }
    if !preview.links.is_empty() {
        let _ = writeln!(out, "\n--- links ---");
        for link in &preview.links {
            let label = match link.kind.as_str() {
                "click" => "tracked",
                "open" => "open pixel",
                "link" => "link",
                other => other,
            };
            if link.target == link.url {
                let _ = writeln!(out, "{label:<12} {}", link.url);
            } else {
                let _ = writeln!(
                    out,
                    "{label:<12} {}\n{:<12} via {}",
                    link.target, "", link.url
                );
            }
        }
    }
    if let Some(html) = preview.part("html") {
        section(&mut out, "html part", html);
    }
    out
}

fn section(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, "\n--- {label} ---");
    out.push_str(text.trim_end());
    out.push('\n');
}

/// Prints why the template cannot be previewed, located in its file; exit 1.
fn failed(project: &Project, error: &PreviewError) -> Outcome {
    match error {
        PreviewError::Render(located) => eprintln!("{}", located_report(project, located)),
        PreviewError::Sample(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            eprintln!("the sample data does not fit the schema; nothing was rendered");
        }
        other => eprintln!("error: {other}"),
    }
    Outcome::Failed
}

/// A render error with the template's source around it: the part's file, or the
/// `.cairn` file declaring an inline part.
fn located_report(project: &Project, error: &RenderError) -> String {
    let headline = error.to_string();
    if let Some(file) = &error.file
        && let Some(text) = project.assets.get(file.trim_start_matches("./"))
    {
        let path = project.root.join(file);
        let range = error.range.clone().unwrap_or(0..0);
        return snippet(&headline, &path.display().to_string(), text, range);
    }
    // An inline part: its string literal in the template's declaration.
    for source in &project.sources {
        let parsed = cairn_grammar::parse(&source.text);
        for item in &parsed.file.items {
            let ItemKind::Template(decl) = &item.kind else {
                continue;
            };
            if decl.name.name != error.template {
                continue;
            }
            let Some(prop) = decl.props.iter().find(|p| p.name.name == error.part) else {
                continue;
            };
            let value = item.absolute(prop.value.span);
            // A one-line literal without escapes maps byte for byte (after its quote).
            let exact = !prop.value.triple && prop.value.value.len() + 2 == value.len();
            let range = match &error.range {
                Some(r) if exact => value.start + 1 + r.start..value.start + 1 + r.end,
                _ => value.start..value.end,
            };
            return snippet(
                &headline,
                &source.path.display().to_string(),
                &source.text,
                range,
            );
        }
    }
    format!("error: {headline}")
}

fn snippet(headline: &str, path: &str, text: &str, range: std::ops::Range<usize>) -> String {
    let label = miette::LabeledSpan::at(range, "here");
    let report = miette::miette!(labels = vec![label], "{headline}")
        .with_source_code(miette::NamedSource::new(path, text.to_string()));
    render::report(report.as_ref())
}

/// `--send-to`: the running daemon renders the template with its active plan and sends
/// it to `address` as a test.
fn send_test(
    args: &PreviewArgs,
    project: &Project,
    address: &str,
    input: SampleInput,
) -> CommandResult {
    let manifest = Some(&project.manifest);
    let server = server_url(args.server.as_deref(), manifest);
    let Some(token) = admin_token(args.token.as_deref(), Some(&project.root)) else {
        return Err(miette::miette!(
            help = "pass `--token TOKEN` or set CAIRN_ADMIN_TOKEN",
            "`cairn preview --send-to` needs the daemon's admin token"
        ));
    };
    let client = AdminClient::new(&server, &token).map_err(|e| miette::miette!("{e}"))?;
    let request = TestSend {
        to: address.to_string(),
        sample: input,
    };
    match client.test_send(&args.template, &request) {
        Ok(sent) => {
            let via = sent
                .provider_ref
                .map(|r| format!(" (the provider's reference: {r})"))
                .unwrap_or_default();
            eprintln!(
                "sent template `{}` of plan version {} to {} by {} as a test{via}",
                sent.template,
                sent.plan_version,
                sent.to,
                sent.channel.as_str()
            );
            Ok(Outcome::Ok)
        }
        Err(e @ ClientError::Refused { status, .. }) if (400..500).contains(&status) => {
            eprintln!("error: {e}");
            Ok(Outcome::Failed)
        }
        Err(e) => Err(miette::miette!("{e}")),
    }
}
