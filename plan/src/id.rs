//! Stable step IDs.
//!
//! The runtime keys runs in flight, timers, message idempotency keys and outcomes on step
//! IDs, `cairn diff` compares plans by them, and `migrate OLD -> NEW` names them. An ID
//! must therefore survive edits that do not touch its step. The scheme:
//!
//! 1. A **labelled** step's ID is its label: `remind: send email cart_reminder` is
//!    `remind`. Labels are identifiers and unique within a journey.
//! 2. An **unlabelled** step's ID is `ANCHOR.KIND#N`, or `KIND#N` when the anchor is
//!    the start of the journey:
//!    - `KIND` is the step's keyword: `send`, `post`, `wait`, `if`, `split`, `tag`,
//!      `score`, `set`, `retry`, `goal` or `exit` (all three forms of `wait` are
//!      `wait`, and `send via preferred channel` is `send`);
//!    - the **anchor** is the nearest labelled step before it *in the same block*;
//!      when there is none, it is the block's own base: nothing for the journey's top
//!      level, and `PARENT.BRANCH` for a nested block, where `PARENT` is the ID of the
//!      step that owns the block and `BRANCH` is `then` or `else` (an `if`), `event`
//!      or `timeout` (a `wait for`), or the arm's name (a `split`);
//!    - `N` counts, from 1, the steps of the same `KIND` from the anchor up to and
//!      including this one, in that block only.
//!
//! So in
//!
//! ```cairn
//! journey j {
//!   when signup
//!   wait 1d                       // wait#1
//!   remind: send email reminder   // remind
//!   wait 1d                       // remind.wait#1
//!   if not opened(remind) {       // remind.if#1
//!     send sms nudge              // remind.if#1.then.send#1
//!     send push nudge_push        // remind.if#1.then.send#2
//!   } else {
//!     tag add engaged             // remind.if#1.else.tag#1
//!   }
//!   offer: split {                // offer
//!     50% a: send email ten_off   // offer.a.send#1
//!     50% b: send email shipping  // offer.b.send#1
//!   }
//! }
//! ```
//!
//! What keeps an ID: adding, removing or editing steps in *other* blocks (another branch,
//! another arm, another journey); adding steps *after* it; adding steps of *another
//! kind* before it; editing the step itself in place (another template, duration,
//! condition, channel). What changes one: adding or removing a step of the same kind
//! between it and its anchor, adding or removing a label between it and its anchor, or
//! moving it to another block. Label a step to pin its ID; use `migrate OLD -> NEW` for
//! runs in flight when an ID does change.
//!
//! Derived IDs always contain `#` and labels never do, so the two never collide; a
//! derived ID is unique because its anchor is, and the `KIND#N` after it is unique
//! within the anchor's stretch of the block.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A step's stable ID within its journey: its label, or a path-derived ID such as
/// `remind.if#1.then.send#2` (see the `id` module and `docs/plan.md`).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the ID is a label rather than derived from the step's position.
    pub fn is_label(&self) -> bool {
        !self.0.contains('#')
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StepId {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// Hands out the IDs of one block's steps, in source order.
///
/// ```
/// use cairn_plan::{BlockIds, StepId};
/// let mut top = BlockIds::journey();
/// assert_eq!(top.next(None, "wait"), StepId::from("wait#1"));
/// let remind = top.next(Some("remind"), "send");
/// assert_eq!(remind, StepId::from("remind"));
/// let branch = top.next(None, "if");
/// assert_eq!(branch, StepId::from("remind.if#1"));
/// let mut then = BlockIds::branch(&branch, "then");
/// assert_eq!(then.next(None, "send"), StepId::from("remind.if#1.then.send#1"));
/// assert_eq!(then.next(None, "send"), StepId::from("remind.if#1.then.send#2"));
/// ```
#[derive(Debug, Clone)]
pub struct BlockIds {
    /// The block's base: empty at the top of a journey, else `PARENT.BRANCH`.
    base: String,
    /// The nearest label seen so far in this block.
    anchor: Option<String>,
    /// Steps of each kind since the anchor.
    counts: BTreeMap<String, u32>,
}

impl BlockIds {
    /// The top-level block of a journey.
    pub fn journey() -> Self {
        Self {
            base: String::new(),
            anchor: None,
            counts: BTreeMap::new(),
        }
    }

    /// The block `branch` (`then`, `else`, `event`, `timeout` or an arm's name) of
    /// the step `parent`.
    pub fn branch(parent: &StepId, branch: &str) -> Self {
        Self {
            base: format!("{parent}.{branch}"),
            anchor: None,
            counts: BTreeMap::new(),
        }
    }

    /// The ID of the block's next step, given its label and its kind's keyword.
    pub fn next(&mut self, label: Option<&str>, kind: &str) -> StepId {
        if let Some(label) = label {
            self.anchor = Some(label.to_string());
            self.counts.clear();
            return StepId::new(label);
        }
        let n = self.counts.entry(kind.to_string()).or_insert(0);
        *n += 1;
        let anchor = self.anchor.as_deref().unwrap_or(&self.base);
        if anchor.is_empty() {
            StepId(format!("{kind}#{n}"))
        } else {
            StepId(format!("{anchor}.{kind}#{n}"))
        }
    }
}
