//! Machine formats of a check: JSON, GitHub workflow commands and SARIF 2.1.0.

use cairn_grammar::lines::LineIndex;
use cairn_grammar::{Diagnostic, Severity};
use serde_json::json;
use std::path::Path;

/// A diagnostic with what every format needs to place it.
pub struct Located<'a> {
    pub diagnostic: &'a Diagnostic,
    pub path: &'a Path,
    pub text: &'a str,
    pub index: &'a LineIndex,
}

impl Located<'_> {
    fn range(&self) -> (cairn_grammar::lines::LineCol, cairn_grammar::lines::LineCol) {
        let span = self.diagnostic.primary_span().unwrap_or_default();
        (
            self.index.line_col(self.text, span.start),
            self.index.line_col(self.text, span.end.max(span.start)),
        )
    }

    /// The path with `/` separators, as CI systems expect.
    fn uri(&self) -> String {
        let text = self.path.to_string_lossy().replace('\\', "/");
        text.strip_prefix("./").unwrap_or(&text).to_string()
    }

    /// The message with its help, for formats that have no separate field for it.
    fn full_message(&self) -> String {
        match &self.diagnostic.help {
            Some(help) => format!("{} (help: {help})", self.diagnostic.message),
            None => self.diagnostic.message.clone(),
        }
    }
}

pub fn json_item(l: &Located) -> serde_json::Value {
    let position = |offset: usize| {
        let lc = l.index.line_col(l.text, offset);
        json!({ "offset": offset, "line": lc.line, "column": lc.column })
    };
    let d = l.diagnostic;
    let span = d.primary_span().unwrap_or_default();
    json!({
        "file": l.path.display().to_string(),
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "start": position(span.start),
        "end": position(span.end),
        "labels": d.labels.iter().map(|label| json!({
            "message": label.message,
            "primary": label.primary,
            "start": position(label.span.start),
            "end": position(label.span.end),
        })).collect::<Vec<_>>(),
        "help": d.help,
    })
}

/// One GitHub Actions workflow command, which the runner turns into an annotation on
/// the pull request's diff.
pub fn github_line(l: &Located) -> String {
    let (start, end) = l.range();
    let kind = match l.diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!(
        "::{kind} file={},line={},col={},endLine={},endColumn={},title={}::{}",
        escape_property(&l.uri()),
        start.line,
        start.column,
        end.line,
        end.column,
        escape_property(&format!(
            "{} {}",
            l.diagnostic.code,
            title(l.diagnostic.code)
        )),
        escape_data(&l.full_message()),
    )
}

fn title(code: &str) -> &'static str {
    cairn_compiler::codes::lookup(code).map_or("", |c| c.title)
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// A SARIF 2.1.0 log with one run: the rules that fired and every result.
pub fn sarif(items: &[Located]) -> serde_json::Value {
    use serde_sarif::sarif::{
        ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
        ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
    };
    let mut codes: Vec<&str> = items.iter().map(|l| l.diagnostic.code).collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<ReportingDescriptor> = codes
        .iter()
        .map(|code| {
            let info = cairn_compiler::codes::lookup(code);
            ReportingDescriptor::builder()
                .id(code.to_string())
                .name(info.map_or(code.to_string(), |i| i.title.replace(' ', "-")))
                .short_description(
                    MultiformatMessageString::builder()
                        .text(info.map_or(String::new(), |i| i.title.to_string()))
                        .build(),
                )
                .full_description(
                    MultiformatMessageString::builder()
                        .text(info.map_or(String::new(), |i| i.explanation.to_string()))
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<SarifResult> = items
        .iter()
        .map(|l| {
            let (start, end) = l.range();
            let region = Region::builder()
                .start_line(start.line as i64)
                .start_column(start.column as i64)
                .end_line(end.line as i64)
                .end_column(end.column as i64)
                .build();
            let location = Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(ArtifactLocation::builder().uri(l.uri()).build())
                        .region(region)
                        .build(),
                )
                .build();
            let rule_index = codes
                .iter()
                .position(|c| *c == l.diagnostic.code)
                .unwrap_or(0);
            SarifResult::builder()
                .rule_id(l.diagnostic.code.to_string())
                .rule_index(rule_index as i64)
                .level(match l.diagnostic.severity {
                    Severity::Error => ResultLevel::Error,
                    Severity::Warning => ResultLevel::Warning,
                })
                .message(Message::builder().text(l.full_message()).build())
                .locations(vec![location])
                .build()
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("cairn")
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/cairn-journeys/cairn")
        .rules(rules)
        .build();
    let log = Sarif::builder()
        .schema("https://json.schemastore.org/sarif-2.1.0.json")
        .version(json!("2.1.0"))
        .runs(vec![
            Run::builder()
                .tool(Tool::builder().driver(driver).build())
                .results(results)
                .build(),
        ])
        .build();
    serde_json::to_value(log).unwrap_or_default()
}
