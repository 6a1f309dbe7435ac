//! Diagnostics as values: a stable code, a lowercase message, located labels and help.
//!
//! The compiler uses the same type for its own findings, so every layer reports in one
//! shape and the CLI, the language server and the JSON outputs render it in one place.

use crate::ast::Span;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The primary label marks where the problem is; secondary ones give context.
    pub primary: bool,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Diagnostic {
    /// Stable code such as `E0001`; `cairn explain CODE` prints its long form.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Where the problem is: the first primary label, else the first label.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels
            .iter()
            .find(|l| l.primary)
            .or_else(|| self.labels.first())
            .map(|l| l.span)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().map(|l| {
            let text = (!l.message.is_empty()).then(|| l.message.clone());
            if l.primary {
                miette::LabeledSpan::new_primary_with_span(text, l.span)
            } else {
                miette::LabeledSpan::new_with_span(text, l.span)
            }
        })))
    }
}

/// Stable codes of the syntax errors. The compiler's catalogue continues from here.
pub mod codes {
    /// The text does not follow the grammar.
    pub const SYNTAX: &str = "E0001";
    /// A string literal is not closed before the end of its line (or file).
    pub const UNTERMINATED_STRING: &str = "E0002";
    /// An opening `{`, `(` or `[` is never closed.
    pub const UNCLOSED_DELIMITER: &str = "E0003";
    /// A closing `}`, `)` or `]` has no opening partner.
    pub const UNMATCHED_DELIMITER: &str = "E0004";
    /// A literal is malformed: a duration unit, a date, a time of day.
    pub const INVALID_LITERAL: &str = "E0005";
    /// Brackets or operators nested deeper than the parser allows.
    pub const TOO_DEEP: &str = "E0006";
    /// The file is not valid UTF-8.
    pub const NOT_UTF8: &str = "E0007";
}
