//! The records the engine reads and the effects it decides. The store loads the first
//! and applies the second in one transaction; the engine itself touches no storage.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Milliseconds since the Unix epoch, UTC. Every stored time uses it, so comparisons
/// are exact and the same on SQLite and PostgreSQL.
pub type Millis = i64;

/// A contact as the engine sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    /// Segment's `userId`.
    pub id: String,
    /// Traits by field name, as JSON values typed by the plan's schema.
    pub traits: BTreeMap<String, Json>,
    pub created_at: Millis,
    /// IANA time zone; UTC when unset.
    pub time_zone: Option<String>,
    /// Consent name to whether it is granted now.
    pub consents: BTreeMap<String, bool>,
    pub tags: BTreeMap<String, Millis>,
    /// Score name to its exact decimal value as text.
    pub scores: BTreeMap<String, String>,
    /// Segment name to when the contact entered it.
    pub segments: BTreeMap<String, Millis>,
    pub erased: bool,
    /// Journey name to the contact's previous entries (from the runs table).
    pub entries: BTreeMap<String, Entries>,
    /// Messages already dispatched or queued for this contact (from the outbox), for
    /// frequency caps.
    pub sends: Vec<SentMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Entries {
    pub count: u32,
    pub last: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub at: Millis,
    pub channel: String,
    pub marketing: bool,
}

/// One stored event of a contact's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: i64,
    /// The plan's event name (`order_completed`), not the wire name.
    pub name: String,
    /// Shared with the request it came in and the rows that store it: handing an event
    /// to the engines and keeping it in a contact's history copies no payload.
    pub payload: Arc<Json>,
    pub occurred_at: Millis,
}

/// Why a run ended (SEMANTICS: exactly one reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Completed,
    Goal,
    ExitCondition,
    Timeout,
    Erased,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::Goal => "goal",
            EndReason::ExitCondition => "exit_condition",
            EndReason::Timeout => "timeout",
            EndReason::Erased => "erased",
        }
    }
}

/// What a run is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Ready to execute `step` now.
    Ready,
    /// Waiting until a timer fires at `step`.
    Waiting {
        until: Millis,
    },
    /// Waiting for an event (`wait for`), or the timeout at `until`.
    WaitingForEvent {
        event: String,
        until: Millis,
    },
    /// Held by `pause`: nothing moves until resumed.
    Paused,
    Ended {
        reason: EndReason,
        at: Millis,
    },
}

/// One contact's pass through one journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `journey/contact/n`: the contact's n-th entry into the journey. Deterministic, so
    /// a replay in `cairn test` or `cairn simulate` names runs the same way.
    pub id: String,
    pub contact_id: String,
    pub journey: String,
    /// The plan version the run started on; it stays on it unless migrated.
    pub plan_version: i64,
    /// The step to execute or being waited at; `None` once ended.
    pub step: Option<String>,
    pub state: RunState,
    /// Trigger and `wait for` bindings by name (`cart` → the event's payload).
    pub bindings: BTreeMap<String, Json>,
    pub entered_at: Millis,
    /// How often each step has been entered in this run: the `visit` of idempotency
    /// keys, and the count `retry ... at most N times` reads.
    pub visits: BTreeMap<String, u32>,
}

/// A message the run hands to a channel, committed with the transition that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub run_id: String,
    pub step: String,
    /// The step's visit number: (run, step, visit) is the idempotency key.
    pub visit: u32,
    pub channel: String,
    pub template: Option<String>,
    /// Email address, phone number, push token or webhook URL.
    pub address: String,
    /// The rendered message: subject/html/text for email, text for SMS, title/body for
    /// push, the JSON body for webhooks.
    pub payload: Json,
    /// When the dispatcher may send it (a deferred send is later than now).
    pub not_before: Millis,
}

/// Everything the engine records about a contact (SEMANTICS "Observable outcomes").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub at: Millis,
    pub contact_id: String,
    pub journey: Option<String>,
    pub run_id: Option<String>,
    pub step: Option<String>,
    /// `send`, `skip`, `defer`, `webhook`, `tag`, `score`, `attribute`, `consent`,
    /// `enter`, `not_entered`, `exit`, `goal`, `segment`, `split`.
    pub kind: String,
    pub detail: Json,
}

/// Changes to the contact itself that a run's steps make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ContactChange {
    TagAdded { tag: String },
    TagRemoved { tag: String },
    Score { score: String, value: String },
    Attribute { field: String, value: Json },
    Segment { segment: String, member: bool },
}

/// Work due later for a contact that no run holds yet: an abandonment check, an
/// inactivity deadline, the next anniversary, a segment boundary, score decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wakeup {
    pub contact_id: String,
    pub at: Millis,
    /// What to re-examine then; the engine interprets it.
    pub reason: WakeupReason,
}

impl Wakeup {
    /// One pending wakeup per contact and key: scheduling it again moves it. An
    /// inactivity deadline is re-armed by every new event; abandonment checks are per
    /// event.
    pub fn key(&self) -> String {
        let contact = &self.contact_id;
        match &self.reason {
            WakeupReason::Abandonment { journey, event_id } => {
                format!("wakeup:{contact}:abandonment:{journey}:{event_id}")
            }
            WakeupReason::Inactivity { journey, .. } => {
                format!("wakeup:{contact}:inactivity:{journey}")
            }
            WakeupReason::Anniversary { journey } => {
                format!("wakeup:{contact}:anniversary:{journey}")
            }
            WakeupReason::TimeBoundary => format!("wakeup:{contact}:time_boundary"),
            WakeupReason::ScoreDecay { score } => format!("wakeup:{contact}:score_decay:{score}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WakeupReason {
    /// `when X unless Y within d`: enter at `t_X + d` unless a Y came.
    Abandonment { journey: String, event_id: i64 },
    /// `when no X for d`: enter if no X since `since`.
    Inactivity { journey: String, since: Millis },
    /// `when anniversary of contact.F at HH:MM local`.
    Anniversary { journey: String },
    /// Re-evaluate segments whose membership changes as time passes.
    TimeBoundary,
    /// `decay 10% every 30d`: the score loses its share one period after it last
    /// changed.
    ScoreDecay { score: String },
}

/// What one engine decision produces; the store applies it atomically.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Effects {
    /// New or changed runs (the store upserts by `id`; waiting runs get their timer
    /// from `state`).
    pub runs: Vec<Run>,
    pub outcomes: Vec<Outcome>,
    pub messages: Vec<OutboxMessage>,
    pub contact_changes: Vec<(String, ContactChange)>,
    pub wakeups: Vec<Wakeup>,
}
