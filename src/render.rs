//! Turning diagnostics into text for people.

use cairn_grammar::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
use std::io::IsTerminal;
use std::path::Path;

fn handler() -> GraphicalReportHandler {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme).with_width(100)
}

/// One diagnostic with its source snippet, labels and help.
pub fn diagnostic(diagnostic: &Diagnostic, path: &Path, source: &str) -> String {
    let report = miette::Report::new(diagnostic.clone()).with_source_code(NamedSource::new(
        path.display().to_string(),
        source.to_string(),
    ));
    report_text(report.as_ref())
}

/// Any miette diagnostic that carries its own source, or none.
pub fn report(diagnostic: &dyn miette::Diagnostic) -> String {
    report_text(diagnostic)
}

fn report_text(diagnostic: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    if handler().render_report(&mut out, diagnostic).is_err() {
        out = format!("error: {diagnostic}");
    }
    out
}

/// `2 errors, 1 warning`
pub fn counts(diagnostics: &[&Diagnostic]) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Writes to standard output. A closed pipe (`cairn explain | head`) ends the output
/// quietly instead of panicking like `print!` does.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody is reading any more; there is nothing useful left to print.
    }
}
