//! `migrate OLD -> NEW` checked against the plan it migrates from.
//!
//! A migration moves runs in flight at step `OLD` of an older plan to step `NEW` of this
//! one. What can be checked from the project alone is: `NEW` is a step a run can wait at
//! (a `wait` of any form or a `wait for`, see [`cairn_plan::diff::can_hold_a_run`]).
//! With the previous plan (`cairn build --previous`, `cairn diff`, `cairn deploy`) also:
//! `OLD` is a step of that plan's journey, and it is gone from the new one (a step still
//! there keeps its runs, so a migration from it would never apply). `OLD` is a label, or
//! a quoted step ID (`migrate "remind.wait#1" -> NEW`) naming any step of the previous
//! plan, unlabelled ones included.

use crate::build::FileDiagnostic;
use crate::codes;
use crate::suggest::did_you_mean;
use cairn_grammar::Diagnostic;
use cairn_grammar::ast::{ItemKind, MemberKind, MigrateFrom, SourceFile};
use cairn_plan::diff::{can_hold_a_run, step_text};
use cairn_plan::{Plan, StepId};

/// The problems of the migrations of `plan` (built from `trees`), against `previous`
/// when there is one.
pub fn check(plan: &Plan, trees: &[SourceFile], previous: Option<&Plan>) -> Vec<FileDiagnostic> {
    let mut out = Vec::new();
    for (file, tree) in trees.iter().enumerate() {
        for item in &tree.items {
            let ItemKind::Journey(journey) = &item.kind else {
                continue;
            };
            let name = &journey.name.name;
            let Some(new) = plan.journeys.get(name) else {
                continue;
            };
            for member in &journey.members {
                let MemberKind::Migrate { from, to } = &member.kind else {
                    continue;
                };
                if let Some(step) = new.steps.get(&StepId::new(to.name.clone()))
                    && !can_hold_a_run(&step.kind)
                {
                    out.push((
                        file,
                        Diagnostic::error(
                            codes::MIGRATE_TARGET_CANNOT_HOLD,
                            format!(
                                "runs cannot wait at `{}`, a `{}` step",
                                to.name,
                                step_text(&step.kind)
                            ),
                        )
                        .with_label(item.absolute(to.span), "migrated runs would land here")
                        .with_help(
                            "migrate to a `wait` or `wait for` step: the run waits there afresh from the deploy",
                        ),
                    ));
                }
                let Some(previous) = previous else {
                    continue;
                };
                let old_id = StepId::new(from.name().to_string());
                let span = item.absolute(from.span());
                match previous.journeys.get(name) {
                    None => out.push((
                        file,
                        Diagnostic::error(
                            codes::MIGRATE_UNKNOWN_STEP,
                            format!(
                                "the previous plan has no journey `{name}`, so no run waits at `{}`",
                                from.name()
                            ),
                        )
                        .with_label(span, "nothing to migrate from")
                        .with_help("remove the migration: a new journey has no runs in flight"),
                    )),
                    Some(old) if !old.steps.contains_key(&old_id) => {
                        let ids: Vec<&str> = old.steps.keys().map(StepId::as_str).collect();
                        let help = match did_you_mean(from.name(), ids.iter().copied()) {
                            Some(close) => match from {
                                MigrateFrom::Label(_) => format!("did you mean `{close}`?"),
                                MigrateFrom::Id(_) => format!("did you mean `\"{close}\"`?"),
                            },
                            None if matches!(from, MigrateFrom::Id(_)) => known_ids(&ids),
                            None => {
                                let labels: Vec<String> = ids
                                    .iter()
                                    .filter(|id| StepId::from(**id).is_label())
                                    .map(|id| format!("`{id}`"))
                                    .collect();
                                if labels.is_empty() {
                                    "the previous plan's journey has no labelled steps".to_string()
                                } else {
                                    format!(
                                        "the previous plan's labelled steps are {}",
                                        labels.join(", ")
                                    )
                                }
                            }
                        };
                        out.push((
                            file,
                            Diagnostic::error(
                                codes::MIGRATE_UNKNOWN_STEP,
                                format!(
                                    "the previous plan's journey `{name}` has no step `{}`",
                                    from.name()
                                ),
                            )
                            .with_label(span, "no run can be waiting here")
                            .with_help(help),
                        ));
                    }
                    Some(_) if new.steps.contains_key(&old_id) => out.push((
                        file,
                        Diagnostic::error(
                            codes::MIGRATE_STEP_STILL_THERE,
                            format!(
                                "`{}` is still a step of journey `{name}`: its runs stay there",
                                from.name()
                            ),
                        )
                        .with_label(span, "this migration would never apply")
                        .with_help(
                            "remove the migration, or rename or remove the step it migrates from",
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    out
}

/// How many step IDs the help of an unknown quoted ID lists before it counts the rest.
const LISTED_IDS: usize = 12;

/// The help for a quoted step ID the previous plan does not have: its step IDs, in
/// order.
fn known_ids(ids: &[&str]) -> String {
    if ids.is_empty() {
        return "the previous plan's journey has no steps".to_string();
    }
    let mut listed: Vec<String> = ids
        .iter()
        .take(LISTED_IDS)
        .map(|id| format!("`\"{id}\"`"))
        .collect();
    if ids.len() > LISTED_IDS {
        listed.push(format!("and {} more", ids.len() - LISTED_IDS));
    }
    format!(
        "the previous plan's step IDs are {} (`cairn diff` shows which of them runs wait at)",
        listed.join(", ")
    )
}
