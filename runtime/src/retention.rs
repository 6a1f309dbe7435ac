//! Event retention: `[retention] events = "400d"` in `cairn.toml` deletes stored events
//! once they are older than that, in a background purge (at start, then every hour),
//! a batch per transaction. Without the setting events are kept forever.
//!
//! The purge never deletes what the engine still reads: a plan whose windows (`within`
//! of an aggregate, `unless ... within` of an abandonment, `when no ... for` of an
//! inactivity trigger) reach further back than the retention is refused, at start and
//! at deploy. Reads without a window (an aggregate without `within`, the best time to
//! send, the preferred channel) see only the events kept; [`unbounded_reads`] lists
//! them so the daemon can say so.

use crate::eval::before;
use crate::model::Millis;
use crate::process::Core;
use cairn_plan::{Duration, Plan};
use serde_json::Value as Json;
use std::sync::Arc;
use tokio::sync::watch;

/// Events deleted per transaction.
pub const PURGE_BATCH: i64 = 5_000;
/// How often the purge runs after the one at start.
pub const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Reads `[retention] events`: a length (`400d`, `52 weeks`, `13 months`, `1 year`)
/// or `forever` (`None`: no purge).
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let trimmed = text.trim();
    let wrong = || {
        format!(
            "`[retention] events` is `{text}`: expected a length such as `400d`, `52 weeks`, `13 months` or `forever`"
        )
    };
    if trimmed == "forever" {
        return Ok(None);
    }
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let n: u64 = trimmed[..digits].parse().map_err(|_| wrong())?;
    if n == 0 {
        return Err(format!(
            "`[retention] events` is `{text}`: a retention must be longer than zero (leave it out to keep events forever)"
        ));
    }
    let seconds = |unit: u64| n.checked_mul(unit).map(Duration::Seconds).ok_or_else(wrong);
    let duration = match trimmed[digits..].trim() {
        "s" | "second" | "seconds" => seconds(1)?,
        "m" | "minute" | "minutes" => seconds(60)?,
        "h" | "hour" | "hours" => seconds(3_600)?,
        "d" | "day" | "days" => seconds(86_400)?,
        "w" | "week" | "weeks" => seconds(7 * 86_400)?,
        "month" | "months" => Duration::Months(n),
        "y" | "year" | "years" => Duration::Months(n.checked_mul(12).ok_or_else(wrong)?),
        _ => return Err(wrong()),
    };
    Ok(Some(duration))
}

/// The shortest and longest a duration can be, in seconds (a month is 28 to 31 days).
fn bounds(d: Duration) -> (u64, u64) {
    match d {
        Duration::Seconds(s) => (s, s),
        Duration::Months(m) => (m.saturating_mul(28 * 86_400), m.saturating_mul(31 * 86_400)),
    }
}

/// Whether keeping events for `retention` always covers `window`.
fn covers(retention: Duration, window: Duration) -> bool {
    match (retention, window) {
        (Duration::Months(r), Duration::Months(w)) => r >= w,
        _ => bounds(retention).0 >= bounds(window).1,
    }
}

/// A window the plan reads the history through, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub length: Duration,
    /// `journey `winback`: `when no order_completed for 400d``.
    pub place: String,
}

/// Every window the plan reads events through.
pub fn windows(plan: &Plan) -> Vec<Window> {
    let mut out = Vec::new();
    walk_parts(plan, |place, value| windows_in(value, place, &mut out));
    out
}

/// Where the plan reads events without a window: aggregates without `within`.
pub fn unbounded_reads(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    walk_parts(plan, |place, value| unbounded_in(value, place, &mut out));
    out.sort();
    out.dedup();
    out
}

/// Refuses a plan that reads further back than `retention` keeps events, naming the
/// longest such window.
pub fn check_plan(plan: &Plan, retention: Option<Duration>) -> Result<(), String> {
    let Some(retention) = retention else {
        return Ok(());
    };
    let too_long = windows(plan)
        .into_iter()
        .filter(|w| !covers(retention, w.length))
        .max_by_key(|w| bounds(w.length).1);
    match too_long {
        None => Ok(()),
        Some(w) => Err(format!(
            "{} reads events {} back, longer than `[retention] events` keeps them ({}): \
             keep events longer, or shorten the window",
            w.place,
            cairn_plan::diff::duration(w.length),
            cairn_plan::diff::duration(retention),
        )),
    }
}

/// Refuses a rollback to a version that reads further back than the retention keeps
/// events.
pub async fn check_rollback(core: &Core) -> crate::store::Result<()> {
    let Some(retention) = core.retention else {
        return Ok(());
    };
    let versions = core.store.versions().await?;
    let Some(active) = versions.iter().find(|v| v.active) else {
        return Ok(());
    };
    let previous = versions
        .iter()
        .filter(|v| v.version < active.version)
        .max_by_key(|v| v.version);
    if let Some(previous) = previous
        && let Some(text) = core.store.plan_text(previous.version).await?
        && let Ok(plan) = Plan::from_json(&text)
    {
        check_plan(&plan, Some(retention)).map_err(crate::store::StoreError::Conflict)?;
    }
    Ok(())
}

/// Calls `each` with every journey, segment and score of the plan as JSON, and what
/// to call it in a message.
fn walk_parts(plan: &Plan, mut each: impl FnMut(&str, &Json)) {
    let parts = [
        ("journey", to_values(&plan.journeys)),
        ("segment", to_values(&plan.segments)),
        ("score", to_values(&plan.scores)),
    ];
    for (kind, values) in parts {
        for (name, value) in values {
            each(&format!("{kind} `{name}`"), &value);
        }
    }
}

fn to_values<T: serde::Serialize>(
    items: &std::collections::BTreeMap<String, T>,
) -> Vec<(String, Json)> {
    items
        .iter()
        .filter_map(|(name, item)| Some((name.clone(), serde_json::to_value(item).ok()?)))
        .collect()
}

fn duration(value: Option<&Json>) -> Option<Duration> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn text<'v>(value: &'v Json, key: &str) -> &'v str {
    value.get(key).and_then(Json::as_str).unwrap_or("")
}

/// The aggregates of the expression language, which read the contact's history.
const AGGREGATES: &[&str] = &["exists", "count", "sum", "avg", "min", "max", "last"];

/// The name an aggregate's argument reads (`order_completed` of
/// `order_completed.total`).
fn read_event(arg: &Json) -> String {
    let value = &arg["value"];
    match text(value, "kind") {
        "name" => text(value, "name").to_string(),
        "member" => text(&value["object"], "name").to_string(),
        _ => String::new(),
    }
}

/// Calls `visit` with every object in `value`, outermost first.
fn each_object(value: &Json, visit: &mut impl FnMut(&Json)) {
    match value {
        Json::Object(map) => {
            visit(value);
            for inner in map.values() {
                each_object(inner, visit);
            }
        }
        Json::Array(items) => {
            for inner in items {
                each_object(inner, visit);
            }
        }
        _ => {}
    }
}

/// The arguments of `value` when it is a call of an aggregate, with its name.
fn aggregate_args(value: &Json) -> Option<(&str, impl Iterator<Item = &Json>)> {
    let function = text(value, "function");
    (text(value, "kind") == "call" && AGGREGATES.contains(&function))
        .then(|| (function, value["args"].as_array().into_iter().flatten()))
}

fn windows_in(value: &Json, place: &str, out: &mut Vec<Window>) {
    // `written` spells the window as the source does, given its length.
    let mut window = |length: Duration, written: &dyn Fn(&str) -> String| {
        let written = written(&cairn_plan::diff::duration(length));
        out.push(Window {
            length,
            place: format!("{place}: `{written}`"),
        });
    };
    each_object(value, &mut |object| {
        if let Some((function, args)) = aggregate_args(object) {
            for arg in args {
                if let Some(length) = duration(arg.get("within")) {
                    let event = read_event(arg);
                    window(length, &|d| format!("{function}({event} within {d})"));
                }
            }
        }
        match text(object, "kind") {
            "event" => {
                if let Some(unless) = object.get("unless")
                    && let Some(length) = duration(unless.get("within"))
                {
                    let event = text(unless, "event");
                    window(length, &|d| format!("unless {event} within {d}"));
                }
            }
            "inactive" => {
                if let Some(length) = duration(object.get("for")) {
                    let event = text(object, "event");
                    window(length, &|d| format!("when no {event} for {d}"));
                }
            }
            _ => {}
        }
    });
}

fn unbounded_in(value: &Json, place: &str, out: &mut Vec<String>) {
    each_object(value, &mut |object| {
        if let Some((function, args)) = aggregate_args(object) {
            for arg in args {
                if arg.get("within").is_none_or(Json::is_null) {
                    out.push(format!("{place}: `{function}({})`", read_event(arg)));
                }
            }
        }
    });
}

/// The instant before which events are purged at `now`.
pub fn cutoff(now: Millis, retention: Duration) -> Millis {
    before(now, retention)
}

/// Deletes every event older than `retention`, [`PURGE_BATCH`] a transaction, until
/// none is left or `stop`; returns how many went. Each batch is retried like any unit
/// of work.
pub async fn purge(
    core: &Core,
    retention: Duration,
    batch: i64,
    stop: &watch::Receiver<bool>,
) -> crate::store::Result<u64> {
    let cutoff = cutoff(core.now(), retention);
    let mut after = 0;
    let mut total = 0;
    while !*stop.borrow() {
        let done = crate::store::retrying("an event purge", || {
            core.store.purge_events(cutoff, after, batch)
        })
        .await?;
        total += done.deleted;
        core.metrics.events_purged.add(done.deleted);
        match done.next {
            Some(next) => after = next,
            None => break,
        }
        // Let the ingestion and timer transactions waiting for the writer go first.
        tokio::task::yield_now().await;
    }
    if total > 0 {
        // Contacts cached with their history would still read the deleted events.
        core.forget_cached_contacts();
    }
    Ok(total)
}

/// The daemon's purge: at start, then every `every`, until `stop`.
pub async fn purger(
    core: Arc<Core>,
    retention: Duration,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match purge(&core, retention, PURGE_BATCH, &stop).await {
            Ok(0) => {}
            Ok(purged) => {
                // Contacts the SQLite daemon keeps in memory still hold the purged
                // events: read them again, as a restarted daemon would.
                core.forget_cached_contacts();
                tracing::info!(
                    purged,
                    retention = %cairn_plan::diff::duration(retention),
                    "purged the events older than the retention"
                );
            }
            Err(e) => tracing::warn!(error = %e, "the event purge failed; the next one retries"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_lengths_read_like_the_language() {
        assert_eq!(parse("400d"), Ok(Some(Duration::Seconds(400 * 86_400))));
        assert_eq!(
            parse("52 weeks"),
            Ok(Some(Duration::Seconds(52 * 7 * 86_400)))
        );
        assert_eq!(parse("13 months"), Ok(Some(Duration::Months(13))));
        assert_eq!(parse("2 years"), Ok(Some(Duration::Months(24))));
        assert_eq!(parse("forever"), Ok(None));
        for bad in ["", "400", "d", "4 fortnights", "0d", "-3d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plan_reading_further_back_than_the_retention_is_refused() {
        use cairn_plan::{CallArg, Expr, Segment};
        let count = |within| Expr::Call {
            function: "count".into(),
            args: vec![CallArg {
                value: Expr::Name {
                    name: "order_completed".into(),
                },
                filter: None,
                within,
            }],
        };
        let mut plan = Plan::new("test");
        plan.segments.insert(
            "buyers".into(),
            Segment {
                name: "buyers".into(),
                description: None,
                condition: Expr::Binary {
                    op: cairn_plan::BinaryOp::And,
                    left: Box::new(count(Some(Duration::Seconds(90 * 86_400)))),
                    right: Box::new(count(None)),
                },
            },
        );
        assert_eq!(check_plan(&plan, None), Ok(()));
        assert_eq!(check_plan(&plan, Some(Duration::Months(4))), Ok(()));
        assert!(
            check_plan(&plan, Some(Duration::Months(3))).is_err(),
            "3 months may be 89 days"
        );
        let refusal = check_plan(&plan, Some(Duration::Seconds(30 * 86_400))).expect_err("short");
        assert_eq!(
            refusal,
            "segment `buyers`: `count(order_completed within 90d)` reads events 90d back, \
             longer than `[retention] events` keeps them (30d): keep events longer, or \
             shorten the window"
        );
        assert_eq!(
            unbounded_reads(&plan),
            vec!["segment `buyers`: `count(order_completed)`".to_string()]
        );
    }

    #[test]
    fn a_month_is_covered_only_by_as_many_days_as_it_may_have() {
        assert!(covers(Duration::Months(13), Duration::Months(12)));
        assert!(covers(Duration::Seconds(31 * 86_400), Duration::Months(1)));
        assert!(!covers(Duration::Seconds(30 * 86_400), Duration::Months(1)));
        assert!(covers(Duration::Months(1), Duration::Seconds(28 * 86_400)));
        assert!(!covers(Duration::Months(1), Duration::Seconds(29 * 86_400)));
    }
}
