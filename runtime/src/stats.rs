//! `cairn stats`: each journey's funnel (entered, sent, delivered, opened, clicked,
//! converted), its rates, each step's counts in the order the steps are written, double
//! opt-in activation, and active against inactive contacts. Built by the daemon for
//! `GET /admin/stats` and printed (as text, a bar chart, Markdown or SVG) by the CLI.

use crate::model::Millis;
use crate::process::Core;
use crate::store::StoreError;
use crate::store::stats::{ContactActivity, JourneyTally, StepTally};
use cairn_plan::journey::Journey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A contact with no event for this many days is inactive.
pub const INACTIVE_AFTER_DAYS: i64 = 30;

const DAY_MS: Millis = 86_400_000;

/// `GET /admin/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub generated_at: Millis,
    /// The project of the active plan.
    pub project: Option<String>,
    pub contacts: Activity,
    /// Double opt-in confirmations requested and activated, by consent.
    pub double_opt_in: Vec<DoubleOptIn>,
    pub journeys: Vec<JourneyStats>,
}

/// Contacts by activity: active ones had an event in the last `inactive_after_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub inactive_after_days: i64,
    /// Contacts not erased.
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub erased: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoubleOptIn {
    pub consent: String,
    pub requested: i64,
    pub activated: i64,
    /// `activated / requested`; `None` when nothing was requested.
    pub activation_rate: Option<f64>,
}

/// One journey: its funnel in runs, its rates, and each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyStats {
    pub journey: String,
    /// Entered, sent, delivered, opened, clicked, converted: runs that got that far.
    pub funnel: Vec<Stage>,
    /// Opened / delivered.
    pub open_rate: Option<f64>,
    /// Clicked / delivered.
    pub click_through_rate: Option<f64>,
    /// Converted (ended at the goal) / entered.
    pub conversion_rate: Option<f64>,
    pub in_flight: i64,
    /// Ended runs by reason.
    pub ended: BTreeMap<String, i64>,
    /// In the order the steps are written; steps only older versions have come last.
    pub steps: Vec<StepStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub stage: String,
    pub runs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStats {
    pub step: String,
    /// The step's kind in the active plan (`send`, `wait`, `branch`...); `None` for a
    /// step only older versions have.
    pub kind: Option<String>,
    #[serde(flatten)]
    pub counts: StepTally,
}

/// Why there are no statistics to show.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("no journey `{journey}` in the active plan or in the runs: {known}")]
    UnknownJourney { journey: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The report for `journey`, or for every journey of the active plan and the runs.
pub async fn build(core: &Core, journey: Option<&str>) -> Result<StatsReport, StatsError> {
    let store = &core.store;
    let now = core.now();
    let active = core.active_plan();
    let plan = active.as_ref().map(|a| a.plan.clone());
    let tallies = store.journey_tallies(journey).await?;
    let mut by_name: BTreeMap<String, JourneyTally> = tallies
        .into_iter()
        .map(|t| (t.journey.clone(), t))
        .collect();
    let mut names: Vec<String> = plan
        .iter()
        .flat_map(|p| p.journeys.keys().cloned())
        .chain(by_name.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    if let Some(wanted) = journey {
        if !names.iter().any(|n| n == wanted) {
            return Err(StatsError::UnknownJourney {
                journey: wanted.to_string(),
                known: if names.is_empty() {
                    "none is deployed".to_string()
                } else {
                    format!(
                        "known ones are {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            });
        }
        names.retain(|n| n == wanted);
    }
    let journeys = names
        .iter()
        .map(|name| {
            let tally = by_name.remove(name).unwrap_or_else(|| JourneyTally {
                journey: name.clone(),
                ..JourneyTally::default()
            });
            journey_stats(
                tally,
                plan.as_ref().and_then(|p| p.journeys.get(name.as_str())),
            )
        })
        .collect();
    let activity: ContactActivity = store
        .contact_activity(now - INACTIVE_AFTER_DAYS * DAY_MS)
        .await?;
    let double_opt_in = store
        .double_opt_in_stats()
        .await?
        .into_iter()
        .map(|d| DoubleOptIn {
            activation_rate: ratio(d.activated, d.requested),
            consent: d.consent,
            requested: d.requested,
            activated: d.activated,
        })
        .collect();
    Ok(StatsReport {
        generated_at: now,
        project: plan.as_ref().map(|p| p.project.clone()),
        contacts: Activity {
            inactive_after_days: INACTIVE_AFTER_DAYS,
            total: activity.contacts,
            active: activity.active,
            inactive: activity.inactive,
            erased: activity.erased,
        },
        double_opt_in,
        journeys,
    })
}

/// `part / whole`, `None` when `whole` is 0.
pub fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn journey_stats(mut tally: JourneyTally, journey: Option<&Journey>) -> JourneyStats {
    let converted = tally.ended.get("goal").copied().unwrap_or(0);
    let stage = |stage: &str, runs: i64| Stage {
        stage: stage.to_string(),
        runs,
    };
    let mut steps = Vec::new();
    if let Some(journey) = journey {
        let mut written: Vec<_> = journey.steps.values().collect();
        written.sort_by(|a, b| {
            let place = |s: &cairn_plan::journey::Step| {
                s.source
                    .as_ref()
                    .map(|r| (r.file.clone(), r.line, r.column))
            };
            place(a).cmp(&place(b)).then_with(|| a.id.0.cmp(&b.id.0))
        });
        for step in written {
            let kind = serde_json::to_value(&step.kind)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string));
            steps.push(StepStats {
                step: step.id.0.clone(),
                kind,
                counts: tally.steps.remove(&step.id.0).unwrap_or_default(),
            });
        }
    }
    steps.extend(
        std::mem::take(&mut tally.steps)
            .into_iter()
            .map(|(step, counts)| StepStats {
                step,
                kind: None,
                counts,
            }),
    );
    JourneyStats {
        funnel: vec![
            stage("entered", tally.entered),
            stage("sent", tally.sent),
            stage("delivered", tally.delivered),
            stage("opened", tally.opened),
            stage("clicked", tally.clicked),
            stage("converted", converted),
        ],
        open_rate: ratio(tally.opened, tally.delivered),
        click_through_rate: ratio(tally.clicked, tally.delivered),
        conversion_rate: ratio(converted, tally.entered),
        in_flight: tally.in_flight,
        ended: tally.ended,
        steps,
        journey: tally.journey,
    }
}
