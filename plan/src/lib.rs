//! The Cairn plan: what `cairn build` emits and the runtime executes.
//!
//! A [`Plan`] is plain data: the project's schema, segments, scores, templates (their
//! source included), policies and journeys, each journey a graph of steps keyed by
//! [stable step IDs](id). It knows nothing of the parser or the runtime; both sides
//! agree through the serde types here and the JSON Schema generated from them
//! (`plan/plan.schema.json`, see [`json_schema`]).
//!
//! - [`Plan::from_json`] loads a plan, refusing another major format version.
//! - [`Plan::compute_hash`] / [`Plan::seal`]: the content hash.
//! - [`Plan::validate`]: the graph's references resolve.
//!
//! `docs/plan.md` describes the format for people.

pub mod diff;
pub mod expr;
pub mod id;
pub mod journey;
pub mod schema;
pub mod test;

pub use expr::{BinaryOp, CallArg, Duration, Entry, Expr, MAX_EXPR_NESTING, UnaryOp};
pub use id::{BlockIds, StepId};
pub use journey::{
    ExitCondition, Goal, Journey, Migration, Reentry, SegmentChange, SourceRef, SplitArm, Step,
    StepKind, TagChange, Trigger, Unless,
};
pub use schema::{Channel, Consent, Event, Field, Record, Schema, Tag, Type, builtin_events};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The format this crate writes, `MAJOR.MINOR`. A reader accepts any plan of its own
/// major version (a newer minor version only adds optional fields) and refuses others.
pub const FORMAT_VERSION: &str = "1.0";
const FORMAT_MAJOR: u64 = 1;

/// The JSON Schema pattern of a local time of day, `HH:MM`.
pub(crate) const LOCAL_TIME: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// A compiled project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Cairn plan")]
pub struct Plan {
    /// `MAJOR.MINOR` of the plan format.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"))]
    pub format_version: String,
    /// Lowercase hex SHA-256 of the plan's content, without `content_hash`,
    /// `git_commit` and the steps' `source` (see `docs/plan.md`).
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub content_hash: String,
    /// The git commit the plan was built from, with `-dirty` when the work tree had
    /// changes; absent outside git. Not part of the content hash.
    pub git_commit: Option<String>,
    /// The project's name.
    pub project: String,
    /// ISO 4217 currency of money amounts that arrive without one.
    pub default_currency: Option<String>,
    pub schema: Schema,
    pub segments: BTreeMap<String, Segment>,
    pub scores: BTreeMap<String, Score>,
    pub templates: BTreeMap<String, Template>,
    pub policies: Policies,
    pub journeys: BTreeMap<String, Journey>,
}

/// A named condition over the contact, its tags, scores and history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Segment {
    pub name: String,
    pub description: Option<String>,
    pub condition: Expr,
}

/// A per-contact number moved by events and decaying over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Score {
    pub name: String,
    pub description: Option<String>,
    pub rules: Vec<ScoreRule>,
    pub decay: Option<Decay>,
}

/// `+20 on page_viewed where path == "/pricing"`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreRule {
    pub event: String,
    pub filter: Option<Expr>,
    /// An exact signed decimal (`20`, `-5.5`).
    pub points: String,
}

/// `decay 10% every 30d`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Decay {
    /// An exact decimal percentage (`10`).
    pub percent: String,
    pub every: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Template {
    pub name: String,
    pub channel: Channel,
    /// Transactional messages need no marketing consent and ignore quiet hours and
    /// frequency caps.
    pub transactional: bool,
    /// `subject`, `html`, `text`, `title`, `body`, ... by name.
    pub parts: BTreeMap<String, TemplatePart>,
}

/// One part of a template: its source text (MiniJinja syntax), inlined from its file
/// when it was written as `html file "templates/x.html"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplatePart {
    pub source: String,
    /// The file the source came from, relative to the project root.
    pub file: Option<String>,
}

/// Project-wide sending rules; a journey may override them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Policies {
    pub quiet_hours: Option<QuietHours>,
    pub frequency_caps: Vec<FrequencyCap>,
}

/// `quiet hours 21:00..08:00 local`: marketing sends due inside the window (in the
/// contact's time zone) are deferred to its end. `from` after `to` wraps midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuietHours {
    /// `HH:MM`
    #[schemars(regex(pattern = LOCAL_TIME))]
    pub from: String,
    /// `HH:MM`
    #[schemars(regex(pattern = LOCAL_TIME))]
    pub to: String,
}

/// `frequency cap 3 marketing per 7d [defer|skip]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FrequencyCap {
    pub limit: u32,
    pub scope: CapScope,
    /// The rolling window, half-open `(t - per, t]`.
    pub per: Duration,
    pub action: CapAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CapScope {
    /// Every marketing message, whatever its channel.
    Marketing,
    /// Every message on one channel.
    Channel { channel: Channel },
}

/// What happens to a send over the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapAction {
    Defer,
    Skip,
}

/// Why a plan could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The text is not JSON, or not a plan's JSON.
    Json {
        message: String,
        line: usize,
        column: usize,
    },
    /// No `format_version` at the top level.
    MissingVersion,
    /// `format_version` is not `MAJOR.MINOR`.
    BadVersion { found: String },
    /// A plan of another major format version.
    UnsupportedVersion {
        found: String,
        supported: &'static str,
        newer: bool,
    },
    /// The plan parses but its parts do not fit together.
    Invalid { problems: Vec<String> },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Json {
                message,
                line,
                column,
            } => write!(
                f,
                "invalid plan JSON at line {line}, column {column}: {message}"
            ),
            PlanError::MissingVersion => {
                f.write_str("not a Cairn plan: there is no `format_version` at the top level")
            }
            PlanError::BadVersion { found } => write!(
                f,
                "invalid plan `format_version` `{found}`: expected `MAJOR.MINOR`, such as `{FORMAT_VERSION}`"
            ),
            PlanError::UnsupportedVersion {
                found,
                supported,
                newer: true,
            } => write!(
                f,
                "plan format version {found} is newer than this cairn supports ({supported}): \
                 upgrade cairn, or build the plan with the cairn version that runs it"
            ),
            PlanError::UnsupportedVersion {
                found,
                supported,
                newer: false,
            } => write!(
                f,
                "plan format version {found} is older than this cairn supports ({supported}): \
                 rebuild the plan with `cairn build`"
            ),
            PlanError::Invalid { problems } => {
                write!(f, "invalid plan: {}", problems.join("; "))
            }
        }
    }
}

impl std::error::Error for PlanError {}

impl PlanError {
    fn json(e: &serde_json::Error) -> Self {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the fields say it already.
        let message = match message.rfind(" at line ") {
            Some(at) if e.line() > 0 => message[..at].to_string(),
            _ => message,
        };
        PlanError::Json {
            message,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Splits `MAJOR.MINOR`.
fn parse_version(v: &str) -> Option<(u64, u64)> {
    let (major, minor) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Plan {
    /// An empty plan of the current format, for builders to fill in.
    pub fn new(project: impl Into<String>) -> Self {
        Plan {
            format_version: FORMAT_VERSION.to_string(),
            content_hash: String::new(),
            git_commit: None,
            project: project.into(),
            default_currency: None,
            schema: Schema::default(),
            segments: BTreeMap::new(),
            scores: BTreeMap::new(),
            templates: BTreeMap::new(),
            policies: Policies::default(),
            journeys: BTreeMap::new(),
        }
    }

    /// Loads a plan: checks `format_version` first (a plan of another major version
    /// is refused, naming both versions), then parses the rest and
    /// [validates](Plan::validate) it. The content hash is not checked here; see
    /// [`Plan::verify_hash`].
    pub fn from_json(text: &str) -> Result<Plan, PlanError> {
        #[derive(Deserialize)]
        struct Header {
            format_version: Option<serde_json::Value>,
        }
        let header: Header = serde_json::from_str(text).map_err(|e| PlanError::json(&e))?;
        let found = match header.format_version {
            None => return Err(PlanError::MissingVersion),
            Some(serde_json::Value::String(v)) => v,
            Some(other) => {
                return Err(PlanError::BadVersion {
                    found: other.to_string(),
                });
            }
        };
        let Some((major, _minor)) = parse_version(&found) else {
            return Err(PlanError::BadVersion { found });
        };
        if major != FORMAT_MAJOR {
            return Err(PlanError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
                newer: major > FORMAT_MAJOR,
            });
        }
        let plan: Plan = serde_json::from_str(text).map_err(|e| PlanError::json(&e))?;
        plan.validate()?;
        Ok(plan)
    }

    /// The plan as pretty JSON with a trailing newline, as `cairn build` writes it.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a plan always serialises");
        text.push('\n');
        text
    }

    /// The content hash: lowercase hex SHA-256 of the plan's compact JSON
    /// serialisation with `content_hash` empty, `git_commit` null and every step's
    /// `source` null. Fields serialise in declaration order and every map is sorted,
    /// so equal content gives an equal hash, whatever the order of the sources; what
    /// only moves text around (a comment, a blank line) does not change it.
    pub fn compute_hash(&self) -> String {
        let mut canonical = self.clone();
        canonical.content_hash.clear();
        canonical.git_commit = None;
        for journey in canonical.journeys.values_mut() {
            for step in journey.steps.values_mut() {
                step.source = None;
            }
        }
        let bytes = serde_json::to_vec(&canonical).expect("a plan always serialises");
        let digest = Sha256::digest(&bytes);
        let mut hex = String::with_capacity(64);
        for byte in digest.iter() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
        }
        hex
    }

    /// Sets `content_hash` from the content.
    pub fn seal(&mut self) {
        self.content_hash = self.compute_hash();
    }

    /// Whether `content_hash` matches the content (a plan edited by hand does not).
    pub fn verify_hash(&self) -> bool {
        self.content_hash == self.compute_hash()
    }

    /// Checks that the plan's parts fit together: map keys match the names inside,
    /// every journey's entry and step targets exist, and migrations land on steps that
    /// exist.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut problems = Vec::new();
        fn keys<T>(
            problems: &mut Vec<String>,
            what: &str,
            map: &BTreeMap<String, T>,
            name: impl Fn(&T) -> &str,
        ) {
            for (key, value) in map {
                if key != name(value) {
                    problems.push(format!(
                        "{what} `{key}` is stored under another name, `{}`",
                        name(value)
                    ));
                }
            }
        }
        keys(&mut problems, "event", &self.schema.events, |e| &e.name);
        keys(&mut problems, "record", &self.schema.records, |e| &e.name);
        keys(&mut problems, "consent", &self.schema.consents, |e| &e.name);
        keys(&mut problems, "tag", &self.schema.tags, |e| &e.name);
        keys(&mut problems, "segment", &self.segments, |e| &e.name);
        keys(&mut problems, "score", &self.scores, |e| &e.name);
        keys(&mut problems, "template", &self.templates, |e| &e.name);
        keys(&mut problems, "journey", &self.journeys, |e| &e.name);
        for journey in self.journeys.values() {
            let j = &journey.name;
            let missing = |target: &StepId, from: &str| {
                (!journey.steps.contains_key(target)).then(|| {
                    format!("journey `{j}`: {from} points at step `{target}`, which does not exist")
                })
            };
            match &journey.entry {
                Some(entry) => problems.extend(missing(entry, "the entry")),
                None if !journey.steps.is_empty() => {
                    problems.push(format!("journey `{j}` has steps but no entry step"));
                }
                None => {}
            }
            for (id, step) in &journey.steps {
                if *id != step.id {
                    problems.push(format!(
                        "journey `{j}`: step `{}` is stored under another ID, `{id}`",
                        step.id
                    ));
                }
                let from = format!("step `{id}`");
                for target in step.next.iter().chain(step.kind.targets()) {
                    problems.extend(missing(target, &from));
                }
            }
            for migration in &journey.migrations {
                let from = format!("`migrate {}`", migration.from);
                problems.extend(missing(&migration.to, &from));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PlanError::Invalid { problems })
        }
    }
}

/// The JSON Schema of a plan (draft 2020-12), as checked in at `plan/plan.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("a JSON Schema always serialises")
}

/// [`json_schema`] as pretty text with a trailing newline, the checked-in file's form.
pub fn json_schema_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).expect("a JSON Schema always serialises");
    text.push('\n');
    text
}
