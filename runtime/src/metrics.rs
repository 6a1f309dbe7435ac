//! The daemon's counters, rendered in Prometheus' text format at `/metrics`.

use crate::model::{Effects, Millis};
use crate::store::effects::Applied;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the timer lateness histogram.
const LATENESS_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub events_ingested: Counter,
    pub events_rejected: Counter,
    pub events_duplicate: Counter,
    pub requests_throttled: Counter,
    /// Ingest transactions committed: with `events_ingested`, how many events a
    /// commit carries (the writer groups the requests waiting for it).
    pub ingest_transactions: Counter,
    /// Events deleted by the retention purge.
    pub events_purged: Counter,
    /// Runs created or moved.
    pub run_transitions: Counter,
    /// Timers that did their work.
    pub timers_fired: Counter,
    /// Timers that fired more than a second after they were due.
    pub timers_late: Counter,
    lateness: Mutex<Histogram>,
    /// Outcomes recorded, by kind: the steps executed.
    steps: Mutex<BTreeMap<String, u64>>,
    /// Dispatch results by (channel, outcome).
    sends: Mutex<BTreeMap<(String, String), u64>>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENESS_BUCKETS.len()],
    count: u64,
    sum_ms: i64,
}

impl Metrics {
    pub fn record_effects(&self, effects: &Effects) {
        if let Ok(mut steps) = self.steps.lock() {
            for outcome in &effects.outcomes {
                *steps.entry(outcome.kind.clone()).or_default() += 1;
            }
        }
    }

    pub fn record_applied(&self, applied: &Applied) {
        self.run_transitions.add(applied.runs);
    }

    pub fn record_timer_lateness(&self, late_ms: Millis) {
        let late_ms = late_ms.max(0);
        self.timers_fired.inc();
        if late_ms > 1_000 {
            self.timers_late.inc();
        }
        if let Ok(mut h) = self.lateness.lock() {
            #[expect(clippy::cast_precision_loss, reason = "milliseconds as seconds")]
            let seconds = late_ms as f64 / 1000.0;
            for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum_ms += late_ms;
        }
    }

    pub fn record_send(&self, channel: &str, outcome: &str) {
        if let Ok(mut sends) = self.sends.lock() {
            *sends
                .entry((channel.to_string(), outcome.to_string()))
                .or_default() += 1;
        }
    }

    /// Sends so far with `outcome` on `channel`.
    pub fn sends(&self, channel: &str, outcome: &str) -> u64 {
        self.sends
            .lock()
            .ok()
            .and_then(|s| s.get(&(channel.to_string(), outcome.to_string())).copied())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition. `timers_due` is the gauge read from the store.
    pub fn render(&self, timers_due: Option<(i64, Millis)>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "cairn_events_ingested_total",
            "Events stored.",
            self.events_ingested.get(),
        );
        counter(
            "cairn_events_rejected_total",
            "Messages refused with a 4xx (invalid, too large or unauthorised).",
            self.events_rejected.get(),
        );
        counter(
            "cairn_events_duplicate_total",
            "Events ignored because their messageId was seen before.",
            self.events_duplicate.get(),
        );
        counter(
            "cairn_ingest_transactions_total",
            "Ingest transactions committed (several requests each when they queue up).",
            self.ingest_transactions.get(),
        );
        counter(
            "cairn_events_purged_total",
            "Events deleted because they were older than the retention.",
            self.events_purged.get(),
        );
        counter(
            "cairn_requests_throttled_total",
            "Ingestion requests refused with 429 because the queue was full.",
            self.requests_throttled.get(),
        );
        counter(
            "cairn_run_transitions_total",
            "Runs created or moved.",
            self.run_transitions.get(),
        );
        counter(
            "cairn_timers_fired_total",
            "Timers that did their work.",
            self.timers_fired.get(),
        );
        counter(
            "cairn_timers_late_total",
            "Timers that fired more than one second after they were due.",
            self.timers_late.get(),
        );
        let _ = writeln!(
            out,
            "# HELP cairn_steps_executed_total Steps executed, by the outcome they recorded.\n# TYPE cairn_steps_executed_total counter"
        );
        if let Ok(steps) = self.steps.lock() {
            for (kind, n) in steps.iter() {
                let _ = writeln!(
                    out,
                    "cairn_steps_executed_total{{kind=\"{}\"}} {n}",
                    escape(kind)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP cairn_sends_total Messages handed to a channel, by channel and outcome.\n# TYPE cairn_sends_total counter"
        );
        if let Ok(sends) = self.sends.lock() {
            for ((channel, outcome), n) in sends.iter() {
                let _ = writeln!(
                    out,
                    "cairn_sends_total{{channel=\"{}\",outcome=\"{}\"}} {n}",
                    escape(channel),
                    escape(outcome)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP cairn_timer_lateness_seconds How long after their due time timers fired.\n# TYPE cairn_timer_lateness_seconds histogram"
        );
        if let Ok(h) = self.lateness.lock() {
            for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "cairn_timer_lateness_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "cairn_timer_lateness_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            #[expect(clippy::cast_precision_loss, reason = "milliseconds as seconds")]
            let sum = h.sum_ms as f64 / 1000.0;
            let _ = writeln!(out, "cairn_timer_lateness_seconds_sum {sum}");
            let _ = writeln!(out, "cairn_timer_lateness_seconds_count {}", h.count);
        }
        if let Some((due, oldest_ms)) = timers_due {
            let _ = writeln!(
                out,
                "# HELP cairn_timers_due Timers due now and not yet fired.\n# TYPE cairn_timers_due gauge\ncairn_timers_due {due}"
            );
            #[expect(clippy::cast_precision_loss, reason = "milliseconds as seconds")]
            let oldest = oldest_ms as f64 / 1000.0;
            let _ = writeln!(
                out,
                "# HELP cairn_timers_oldest_due_seconds How late the oldest due timer is.\n# TYPE cairn_timers_oldest_due_seconds gauge\ncairn_timers_oldest_due_seconds {oldest}"
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.events_ingested.add(3);
        m.record_send("email", "sent");
        m.record_timer_lateness(20);
        m.record_timer_lateness(2_000);
        let text = m.render(Some((4, 1_500)));
        assert!(text.contains("cairn_events_ingested_total 3\n"), "{text}");
        assert!(text.contains("cairn_sends_total{channel=\"email\",outcome=\"sent\"} 1\n"));
        assert!(text.contains("cairn_timer_lateness_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("cairn_timer_lateness_seconds_count 2\n"));
        assert!(text.contains("cairn_timers_late_total 1\n"));
        assert!(text.contains("cairn_timers_due 4\n"));
    }
}
