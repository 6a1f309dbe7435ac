//! `test` blocks as data: what `cairn test` feeds the engine and what it expects back.
//! Compiled from the sources like the plan, but never part of a deployed plan.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: String,
    /// Where the test is written, `file:line`.
    pub location: String,
    pub contacts: Vec<TestContact>,
    pub inputs: Vec<TestInput>,
    pub expectations: Vec<Expectation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestContact {
    pub name: String,
    pub traits: BTreeMap<String, Json>,
    pub consents: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestInput {
    /// ISO 8601 instant.
    pub at: String,
    pub contact: String,
    pub action: TestAction,
    /// `file:line` of the input, for failure reports.
    pub location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TestAction {
    Sends {
        event: String,
        payload: BTreeMap<String, Json>,
    },
    Updates {
        traits: BTreeMap<String, Json>,
    },
    Opens {
        journey: Option<String>,
        step: String,
    },
    Clicks {
        journey: Option<String>,
        step: String,
        url: Option<String>,
    },
    /// `None`: every channel.
    Unsubscribes {
        channel: Option<String>,
    },
    Visits {
        url: String,
    },
    Grants {
        consent: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// `expect no ...`
    pub negated: bool,
    pub contact: String,
    pub what: Expected,
    /// `at T` (exact instant) or `until T` (before T).
    pub at: Option<String>,
    pub until: Option<String>,
    pub location: String,
    /// The expectation as written, for reports.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expected {
    /// Any of `templates` on `channel`; `None` for any message.
    Send {
        channel: Option<String>,
        templates: Vec<String>,
    },
    Split {
        journey: Option<String>,
        step: String,
        arm: Option<String>,
    },
    Tag {
        tag: String,
        added: bool,
    },
    Score {
        score: String,
        value: String,
    },
    Goal {
        journey: String,
    },
    Exit {
        journey: String,
        reason: Option<String>,
    },
    Skip {
        journey: Option<String>,
        step: String,
        reason: Option<String>,
    },
    Defer {
        journey: Option<String>,
        step: String,
    },
    Enter {
        journey: String,
    },
    Nothing,
}
