//! Runs in flight across a deploy: which move to the new version, which a migration
//! moves to another step, which stay on their version, and which the new plan would
//! strand.
//!
//! The rules (`docs/semantics.md`, "Deploys and runs in flight"):
//!
//! - a run waiting at a step whose ID the new plan still has, where that step can hold
//!   the run as it waits, **moves to the new version at the same step**, keeping its
//!   state (its wait ends when it would have) — except that a run waiting for an event at
//!   a `wait for` whose event or `within` the new plan changes is re-pointed ([`Rewait`]):
//!   it waits for the new event, until its wait's start plus the new `within`;
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
//! of `GET /admin/status`; [`transition_after`] also reads the plans the runs are on, to
//! find the changed `wait for`s.

use crate::model::Millis;
use crate::time;
use cairn_plan::expr::Duration;
use cairn_plan::{Plan, StepId, StepKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// For runs that stay at a `wait for` whose event or `within` changed: what they
    /// wait for from the deploy on, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewait: Option<Rewait>,
}

/// How a run waiting for an event at a `wait for` that the new plan changes waits from
/// the deploy on: for the new step's event, until the time it entered the wait plus the
/// new `within` (no deadline without one). The wait's start is the old deadline less
/// the old `within`; a wait that had no deadline counts as entered at the deploy. A
/// deadline already past fires the timeout path at the next timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewait {
    /// The event the run waits for now.
    pub event: String,
    /// The old step's `within`.
    pub old_within: Option<Duration>,
    /// The new step's `within`.
    pub new_within: Option<Duration>,
}

impl Rewait {
    /// The new deadline of a run whose old one was `old_until`, deployed at `now`.
    pub fn until(&self, old_until: Millis, now: Millis) -> Millis {
        let Some(within) = self.new_within else {
            return Millis::MAX;
        };
        let started = match self.old_within {
            Some(old) if old_until != Millis::MAX => before(old_until, old),
            _ => now,
        };
        time::add(started, within)
    }
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

/// Decides, for each group of runs in flight, what deploying `new` does to it, not
/// knowing the plans the runs are on: no run is re-pointed to a changed `wait for`
/// (see [`transition_after`]).
pub fn transition(new: &Plan, in_flight: &[InFlight]) -> Transition {
    transition_after(new, &BTreeMap::new(), in_flight)
}

/// [`transition`], knowing the plans the runs are on by version: runs that stay at a
/// `wait for` whose event or `within` changed get a [`Rewait`]. A version missing from
/// `versions` leaves its runs' waits as they are.
pub fn transition_after(
    new: &Plan,
    versions: &BTreeMap<i64, Plan>,
    in_flight: &[InFlight],
) -> Transition {
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
            let old = versions
                .get(&group.plan_version)
                .and_then(|plan| plan.journeys.get(&group.journey))
                .and_then(|journey| journey.steps.get(&id));
            out.moves.push(Move {
                from: group.clone(),
                to: group.step.clone(),
                migrated: false,
                rewait: old.and_then(|old| rewait(&group.state, &old.kind, &step.kind)),
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
                rewait: None,
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

/// `t − d`, the inverse of [`time::add`]: exact seconds, or calendar months in UTC
/// (where `add` clamped to the end of a shorter month, this finds the same day of that
/// month, not the day the wait began; it is off by at most three days).
fn before(t: Millis, d: Duration) -> Millis {
    match d {
        Duration::Seconds(s) => {
            t.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
        }
        Duration::Months(m) => {
            let utc = time::timestamp(t).to_zoned_datetime(jiff::tz::TimeZone::UTC);
            let months = i64::try_from(m).unwrap_or(i64::MAX).min(12 * 9000);
            utc.checked_sub(jiff::ToSpan::months(months))
                .map_or(Millis::MIN, |z| z.timestamp().as_millisecond())
        }
    }
}

/// What a run in `state` at an `old` step waits for at the `new` step of the same ID,
/// when it waits for an event and the `wait for`'s event or `within` changed.
fn rewait(state: &str, old: &StepKind, new: &StepKind) -> Option<Rewait> {
    let (
        StepKind::WaitFor {
            event: old_event,
            within: old_within,
            ..
        },
        StepKind::WaitFor {
            event: new_event,
            within: new_within,
            ..
        },
    ) = (old, new)
    else {
        return None;
    };
    (state == "waiting_for_event" && (old_event != new_event || old_within != new_within)).then(
        || Rewait {
            event: new_event.clone(),
            old_within: *old_within,
            new_within: *new_within,
        },
    )
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

/// The `migrate` line that moves the runs at `step` of an older plan, with `NEW` for the
/// step to choose: `migrate remind -> NEW` for a label, `migrate "remind.wait#1" -> NEW`
/// for an unlabelled step's derived ID, which is written quoted.
pub fn migrate_line(step: &str) -> String {
    if StepId::from(step).is_label() {
        format!("migrate {step} -> NEW")
    } else {
        format!("migrate \"{step}\" -> NEW")
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

    fn wait_for(event: &str, within: Option<Duration>) -> StepKind {
        StepKind::WaitFor {
            event: event.into(),
            binding: None,
            filter: None,
            within,
            on_event: None,
            on_timeout: None,
        }
    }

    const DAY: u64 = 86_400;
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn runs_at_a_changed_wait_for_wait_for_the_new_event() {
        let old = plan(
            vec![
                step("hold", wait_for("opened", Some(Duration::Seconds(2 * DAY)))),
                step("same", wait_for("clicked", Some(Duration::Seconds(DAY)))),
            ],
            vec![],
            false,
        );
        let new = plan(
            vec![
                step(
                    "hold",
                    wait_for("purchased", Some(Duration::Seconds(5 * DAY))),
                ),
                step("same", wait_for("clicked", Some(Duration::Seconds(DAY)))),
            ],
            vec![],
            false,
        );
        let in_flight = [
            group("hold", "waiting_for_event", 4),
            group("hold", "ready", 1),
            group("same", "waiting_for_event", 2),
        ];
        let t = transition_after(&new, &BTreeMap::from([(1, old)]), &in_flight);
        assert_eq!(t.moves.len(), 3);
        let rewait = t.moves[0].rewait.as_ref().expect("the wait for changed");
        assert_eq!(rewait.event, "purchased");
        assert!(!t.moves[0].migrated);
        assert_eq!(
            t.moves[1].rewait, None,
            "a run about to run the step enters it anew"
        );
        assert_eq!(
            t.moves[2].rewait, None,
            "an unchanged wait for keeps its runs' waits"
        );
        // Without the runs' plan, nothing is re-pointed.
        assert!(
            transition(&new, &in_flight)
                .moves
                .iter()
                .all(|m| m.rewait.is_none())
        );
    }

    #[test]
    fn a_rewait_keeps_the_wait_start_and_applies_the_new_within() {
        let rewait = |old: Option<Duration>, new: Option<Duration>| Rewait {
            event: "e".into(),
            old_within: old,
            new_within: new,
        };
        let now = 10 * DAY_MS;
        // Entered at day 9 with 2 days: due at day 11. With 5 days: due at day 14.
        let longer = rewait(
            Some(Duration::Seconds(2 * DAY)),
            Some(Duration::Seconds(5 * DAY)),
        );
        assert_eq!(longer.until(11 * DAY_MS, now), 14 * DAY_MS);
        // With 12 hours, the deadline (day 9.5) is past: the timeout runs at once.
        let shorter = rewait(
            Some(Duration::Seconds(2 * DAY)),
            Some(Duration::Seconds(DAY / 2)),
        );
        assert_eq!(shorter.until(11 * DAY_MS, now), 9 * DAY_MS + DAY_MS / 2);
        // No `within` any more: no deadline.
        assert_eq!(
            rewait(Some(Duration::Seconds(DAY)), None).until(11 * DAY_MS, now),
            Millis::MAX
        );
        // No `within` before: the wait counts from the deploy.
        let from_now = rewait(None, Some(Duration::Seconds(DAY)));
        assert_eq!(from_now.until(Millis::MAX, now), 11 * DAY_MS);
        // Calendar months: back and forth by the calendar.
        let months = rewait(Some(Duration::Months(1)), Some(Duration::Months(2)));
        let feb_1 = 1_769_904_000_000; // 2026-02-01T00:00Z
        let mar_1 = 1_772_323_200_000;
        let apr_1 = 1_775_001_600_000;
        assert_eq!(months.until(mar_1, now), apr_1);
        assert_eq!(before(mar_1, Duration::Months(1)), feb_1);
    }

    #[test]
    fn migrate_lines_quote_derived_ids() {
        assert_eq!(migrate_line("remind"), "migrate remind -> NEW");
        assert_eq!(
            migrate_line("remind.wait#1"),
            "migrate \"remind.wait#1\" -> NEW"
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
