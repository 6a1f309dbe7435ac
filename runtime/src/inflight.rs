//! Runs in flight across a deploy: which move to the new version, which a migration
//! moves to another step, which stay on their version, and which the new plan would
//! strand.
//!
//! The rules (`docs/semantics.md`, "Deploys and runs in flight"):
//!
//! - a run waiting at a step whose ID the new plan still has, where that step can hold
//!   the run as it waits, **moves to the new version at the same step**, keeping its
//!   state (its wait ends when it would have);
//! - a run at a step the new plan no longer has moves to `NEW` when the journey says
//!   `migrate OLD -> NEW`, and enters `NEW` at the deploy instant;
//! - in a journey that says `drain`, no run moves: every run in flight finishes on the
//!   version it started on;
//! - any other run is **stranded**: a deploy refuses the plan unless told `--strand`,
//!   and then those runs stay on their version and finish there.
//!
//! Runs whose steps are done and that only wait out their goal window (no step) stay on
//! their version. [`transition`] is pure: the daemon runs it inside the deploy's
//! transaction, on the counts it reads there, and `cairn diff --server` on the counts
//! of `GET /admin/status`.

use cairn_plan::{Plan, StepId, StepKind};
use serde::{Deserialize, Serialize};

/// Runs of one journey, version, step and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub journey: String,
    pub plan_version: i64,
    pub step: String,
    /// `ready`, `waiting`, `waiting_for_event` or `paused`.
    pub state: String,
    pub runs: i64,
}

/// Runs a deploy moves to the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: InFlight,
    /// The step they continue at.
    pub to: String,
    /// `true` when a `migrate` moved them (they enter `to` afresh); `false` when they
    /// stay at the same step ID with their state.
    pub migrated: bool,
}

/// Runs the new plan has no place for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stranded {
    pub at: InFlight,
    /// Why, for people: "the new plan removes it", ...
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub moves: Vec<Move>,
    /// Runs that stay on their version because their journey says `drain`.
    pub drained: Vec<InFlight>,
    pub stranded: Vec<Stranded>,
}

/// Decides, for each group of runs in flight, what deploying `new` does to it.
pub fn transition(new: &Plan, in_flight: &[InFlight]) -> Transition {
    let mut out = Transition::default();
    for group in in_flight {
        let Some(journey) = new.journeys.get(&group.journey) else {
            out.stranded.push(Stranded {
                at: group.clone(),
                reason: format!("the new plan has no journey `{}`", group.journey),
            });
            continue;
        };
        if journey.drain {
            out.drained.push(group.clone());
            continue;
        }
        let id = StepId::new(group.step.clone());
        let same = journey.steps.get(&id);
        if let Some(step) = same
            && holds(&group.state, &step.kind)
        {
            out.moves.push(Move {
                from: group.clone(),
                to: group.step.clone(),
                migrated: false,
            });
            continue;
        }
        if let Some(migration) = journey.migrations.iter().find(|m| m.from == id)
            && journey.steps.contains_key(&migration.to)
        {
            out.moves.push(Move {
                from: group.clone(),
                to: migration.to.0.clone(),
                migrated: true,
            });
            continue;
        }
        let reason = match same {
            Some(step) => format!(
                "the new plan makes it a `{}` step, which cannot hold a run that is {}",
                cairn_plan::diff::step_text(&step.kind),
                state_text(&group.state)
            ),
            None => "the new plan removes it".to_string(),
        };
        out.stranded.push(Stranded {
            at: group.clone(),
            reason,
        });
    }
    out
}

/// Whether a run in `state` can stay at a step of `kind`: a timed wait (or a deferred
/// send) at a wait or send, an event wait at a `wait for`; a run about to execute its
/// step anywhere.
fn holds(state: &str, kind: &StepKind) -> bool {
    match state {
        "waiting" => matches!(
            kind,
            StepKind::Wait { .. }
                | StepKind::WaitMonths { .. }
                | StepKind::WaitUntil { .. }
                | StepKind::Send { .. }
                | StepKind::SendPreferred { .. }
        ),
        "waiting_for_event" => matches!(kind, StepKind::WaitFor { .. }),
        _ => true,
    }
}

fn state_text(state: &str) -> &'static str {
    match state {
        "waiting" => "waiting for a time",
        "waiting_for_event" => "waiting for an event",
        "paused" => "paused",
        _ => "about to run it",
    }
}

fn contacts(n: i64) -> String {
    if n == 1 {
        "1 contact is".to_string()
    } else {
        format!("{} contacts are", group_thousands(n))
    }
}

/// `12408` as `12,408`.
pub fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

impl Stranded {
    /// `12,408 contacts are waiting at \`abandoned_cart.remind\` (version 3), which the
    /// new plan removes`
    pub fn sentence(&self) -> String {
        let at = &self.at;
        format!(
            "{} waiting at `{}.{}` (version {}): {}",
            contacts(at.runs),
            at.journey,
            at.step,
            at.plan_version,
            self.reason
        )
    }
}

impl Transition {
    /// Why a deploy refuses the plan, when it strands runs: one line each, then what to
    /// do.
    pub fn refusal(&self) -> Option<String> {
        if self.stranded.is_empty() {
            return None;
        }
        let mut lines: Vec<String> = self.stranded.iter().map(Stranded::sentence).collect();
        let total: i64 = self.stranded.iter().map(|s| s.at.runs).sum();
        lines.insert(
            0,
            format!(
                "the plan would strand {} in flight:",
                if total == 1 {
                    "1 contact".to_string()
                } else {
                    format!("{} contacts", group_thousands(total))
                }
            ),
        );
        lines.push(
            "add `migrate OLD -> NEW` (or `drain`) to the journey, or deploy with `--strand` to leave them on their version"
                .to_string(),
        );
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plan::{Journey, Migration, Reentry, Step, Trigger};
    use std::collections::BTreeMap;

    fn step(id: &str, kind: StepKind) -> (StepId, Step) {
        (
            StepId::from(id),
            Step {
                id: StepId::from(id),
                kind,
                next: None,
                source: None,
            },
        )
    }

    fn plan(steps: Vec<(StepId, Step)>, migrations: Vec<(&str, &str)>, drain: bool) -> Plan {
        let mut plan = Plan::new("p");
        plan.journeys.insert(
            "j".into(),
            Journey {
                name: "j".into(),
                description: None,
                trigger: Trigger::ContactCreated,
                audience: None,
                reentry: Reentry::Once,
                goal: None,
                exits: Vec::new(),
                quiet_hours: None,
                frequency_caps: None,
                migrations: migrations
                    .into_iter()
                    .map(|(from, to)| Migration {
                        from: from.into(),
                        to: to.into(),
                    })
                    .collect(),
                drain,
                entry: steps.first().map(|(id, _)| id.clone()),
                steps: steps.into_iter().collect::<BTreeMap<_, _>>(),
            },
        );
        plan
    }

    fn group(step: &str, state: &str, runs: i64) -> InFlight {
        InFlight {
            journey: "j".into(),
            plan_version: 1,
            step: step.into(),
            state: state.into(),
            runs,
        }
    }

    #[test]
    fn runs_move_by_step_id_migrate_or_strand() {
        let new = plan(
            vec![
                step("pause", StepKind::Wait { seconds: 60 }),
                step(
                    "hold",
                    StepKind::WaitFor {
                        event: "e".into(),
                        binding: None,
                        filter: None,
                        within: None,
                        on_event: None,
                        on_timeout: None,
                    },
                ),
            ],
            vec![("old", "pause")],
            false,
        );
        let t = transition(
            &new,
            &[
                group("pause", "waiting", 3),
                group("old", "waiting", 12_408),
                group("gone", "waiting", 2),
                group("pause", "waiting_for_event", 1),
            ],
        );
        assert_eq!(t.moves.len(), 2);
        assert!(!t.moves[0].migrated);
        assert_eq!(
            (t.moves[1].to.as_str(), t.moves[1].migrated),
            ("pause", true)
        );
        assert_eq!(t.stranded.len(), 2);
        let refusal = t.refusal().expect("stranded runs refuse the deploy");
        assert!(
            refusal.contains(
                "2 contacts are waiting at `j.gone` (version 1): the new plan removes it"
            )
        );
        assert!(
            refusal.contains("cannot hold a run that is waiting for an event"),
            "{refusal}"
        );
        assert!(
            refusal.starts_with("the plan would strand 3 contacts"),
            "{refusal}"
        );
    }

    #[test]
    fn drain_keeps_every_run_on_its_version() {
        let new = plan(
            vec![step("pause", StepKind::Wait { seconds: 60 })],
            vec![],
            true,
        );
        let t = transition(
            &new,
            &[group("pause", "waiting", 3), group("gone", "ready", 1)],
        );
        assert!(t.moves.is_empty() && t.stranded.is_empty());
        assert_eq!(t.drained.len(), 2);
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
