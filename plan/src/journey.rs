//! Journeys: how a contact enters, what ends a run, and the graph of steps.

use crate::expr::{Duration, Entry, Expr};
use crate::id::StepId;
use crate::schema::Channel;
use crate::{FrequencyCap, LOCAL_TIME, QuietHours};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Journey {
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    /// Checked at entry; a contact outside it does not enter. Absent: everyone.
    pub audience: Option<Expr>,
    pub reentry: Reentry,
    pub goal: Option<Goal>,
    /// Any of these events ends a run with reason `exit_condition`.
    pub exits: Vec<ExitCondition>,
    /// Overrides the project's quiet hours for this journey's sends.
    pub quiet_hours: Option<QuietHours>,
    /// Overrides the project's frequency caps for this journey's sends; absent means
    /// the project's caps apply.
    pub frequency_caps: Option<Vec<FrequencyCap>>,
    /// `migrate OLD -> NEW`: runs in flight at step `OLD` of an older plan continue at
    /// `NEW` in this one.
    pub migrations: Vec<Migration>,
    /// `drain`: runs in flight at steps this plan no longer has finish on their old
    /// plan version instead of being moved.
    pub drain: bool,
    /// The first step of a run; absent when the journey has no steps.
    pub entry: Option<StepId>,
    /// Every step by its stable ID. Control moves along `next` and the targets of
    /// `wait_for`, `branch`, `split` and `retry`.
    pub steps: BTreeMap<StepId, Step>,
}

/// How a contact enters a journey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// `when cart_updated as cart where ... unless order_completed within 2h`
    Event {
        event: String,
        /// The name the event's payload has in the journey (`cart`).
        binding: Option<String>,
        filter: Option<Expr>,
        /// Abandonment: fire at `t + within` only when no `unless` event came in
        /// `[t, t + within)`.
        unless: Option<Unless>,
    },
    /// `when anniversary of contact.birthday at 09:00 local`
    Anniversary {
        /// The date field, as a path (`["contact", "birthday"]`).
        field: Vec<String>,
        /// Local time of day in the contact's time zone, `HH:MM`.
        #[schemars(regex(pattern = LOCAL_TIME))]
        at: String,
    },
    /// `when no page_viewed for 7d`
    Inactive {
        event: String,
        #[serde(rename = "for")]
        for_: Duration,
    },
    /// `when enters segment vip` / `when leaves segment vip`
    Segment {
        segment: String,
        change: SegmentChange,
    },
    /// `when tag vip_card added`
    Tag { tag: String, change: TagChange },
    /// `when page "/pricing*" visited`: a `page_viewed` whose path matches the
    /// pattern (`*` matches any run of characters).
    Page { pattern: String },
    /// `when contact created`
    ContactCreated,
    /// `when consent email_marketing granted`
    ConsentGranted { consent: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unless {
    pub event: String,
    pub filter: Option<Expr>,
    pub within: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentChange {
    Enters,
    Leaves,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagChange {
    Added,
    Removed,
}

/// Whether a contact may enter again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Reentry {
    /// Once ever (the default, and `reenter never`).
    Once,
    /// When at least `cooldown` has passed since the previous actual entry.
    After {
        cooldown: Duration,
    },
    Always,
}

/// The journey's conversion: the event ends a run with reason `goal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Goal {
    pub event: String,
    pub filter: Option<Expr>,
    /// Counted from entry; absent means for the whole run.
    pub within: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExitCondition {
    pub event: String,
    pub filter: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Migration {
    /// A step ID of an older plan.
    pub from: StepId,
    /// A step of this journey.
    pub to: StepId,
}

/// One node of a journey's graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub id: StepId,
    pub kind: StepKind,
    /// Where the run goes when this step completes; absent means the run ends
    /// (`completed`). Always absent for `wait_for`, `branch` and `split`, which name
    /// their targets themselves, and for `goal` and `exit`, which end the run.
    pub next: Option<StepId>,
    /// Where the step is written, for people; not part of the content hash.
    pub source: Option<SourceRef>,
}

/// What a step does. Every target is a step ID in the same journey, or absent for
/// "the run ends here".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// `send email cart_reminder [at best time]`
    Send {
        channel: Channel,
        template: String,
        /// Hold the message until the contact's usual open hour.
        best_time: bool,
    },
    /// `send via preferred channel [a, b, c]`: the template of the channel the
    /// contact uses most, among those that can reach them.
    SendPreferred {
        templates: Vec<String>,
        best_time: bool,
    },
    /// `post "https://..." { key: expr }`
    Webhook {
        url: String,
        body: Option<Vec<Entry>>,
    },
    /// Exact elapsed time.
    Wait { seconds: u64 },
    /// Calendar months (`wait 6 months`).
    WaitMonths { months: u64 },
    /// `wait until 09:00 [.. 11:00] local`: until the next moment inside the local
    /// time (or window) in the contact's time zone.
    WaitUntil {
        /// `HH:MM`
        #[schemars(regex(pattern = LOCAL_TIME))]
        from: String,
        /// `HH:MM`, the end of the window.
        #[schemars(regex(pattern = LOCAL_TIME))]
        to: Option<String>,
    },
    /// `wait for EVENT [as b] [where f] [within d] { ... } timeout { ... }`
    WaitFor {
        event: String,
        binding: Option<String>,
        filter: Option<Expr>,
        within: Option<Duration>,
        /// Where the run goes when the event arrives.
        on_event: Option<StepId>,
        /// Where the run goes when `within` passes without the event.
        on_timeout: Option<StepId>,
    },
    /// `if condition { ... } else { ... }`
    Branch {
        condition: Expr,
        then: Option<StepId>,
        #[serde(rename = "else")]
        else_: Option<StepId>,
    },
    /// A weighted split, assigned deterministically from (contact, journey, step).
    Split { arms: Vec<SplitArm> },
    /// `tag add x` (`add: true`) or `tag remove x`.
    Tag { add: bool, tag: String },
    /// `score engagement +15`: `delta` is an exact signed decimal (`15`, `-2.5`).
    Score { score: String, delta: String },
    /// `set contact.topic = "skincare"`
    Set { path: Vec<String>, value: Expr },
    /// `retry remind at most 2 times`: go back to `target` while it has been
    /// retried fewer than `max` times in this run, else continue at `next`.
    Retry { target: StepId, max: u32 },
    /// Record the journey's goal and end the run with reason `goal`.
    Goal,
    /// End the run with reason `exit_condition`.
    Exit,
}

impl StepKind {
    /// Every step this one may hand the run to, besides `next`.
    pub fn targets(&self) -> Vec<&StepId> {
        match self {
            StepKind::WaitFor {
                on_event,
                on_timeout,
                ..
            } => on_event.iter().chain(on_timeout.iter()).collect(),
            StepKind::Branch { then, else_, .. } => then.iter().chain(else_.iter()).collect(),
            StepKind::Split { arms } => arms.iter().filter_map(|a| a.next.as_ref()).collect(),
            StepKind::Retry { target, .. } => vec![target],
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SplitArm {
    pub name: String,
    /// The arm's share as an exact decimal percentage (`50`, `33.4`); the arms of a
    /// split sum to 100.
    pub percent: String,
    pub next: Option<StepId>,
}

/// Where a step is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceRef {
    /// The file, relative to the project root.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    pub label: Option<String>,
}
