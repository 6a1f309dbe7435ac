//! Time as SEMANTICS.md fixes it: exact durations, calendar months kept in UTC and
//! clamped, and local times of day in the contact's time zone.

use crate::model::Millis;
use cairn_plan::expr::Duration;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The engine's only source of "now": wall clock in the daemon, virtual in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Timestamp::now().as_millisecond()
    }
}

pub fn timestamp(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The contact's zone; UTC when unset or unknown.
pub fn zone(name: Option<&str>) -> TimeZone {
    name.and_then(|n| TimeZone::get(n).ok())
        .unwrap_or(TimeZone::UTC)
}

/// `t + d`: exact seconds, or calendar months in UTC keeping the day of month and the
/// clock time, clamped to the end of a shorter month (31 March + 6 months = 30 Sept).
pub fn add(t: Millis, d: Duration) -> Millis {
    match d {
        Duration::Seconds(s) => t.saturating_add((s as i64).saturating_mul(1000)),
        Duration::Months(m) => {
            let utc = timestamp(t).to_zoned_datetime(TimeZone::UTC);
            let months = i64::try_from(m).unwrap_or(i64::MAX).min(12 * 9000);
            // jiff's month arithmetic clamps the day to the end of the month.
            utc.checked_add(months.months())
                .map_or(i64::MAX, |z| z.timestamp().as_millisecond())
        }
    }
}

pub fn seconds(d: Duration) -> Option<i64> {
    match d {
        Duration::Seconds(s) => i64::try_from(s).ok(),
        Duration::Months(_) => None,
    }
}

/// Parses `HH:MM`.
pub fn local_time(text: &str) -> Option<jiff::civil::Time> {
    text.parse::<jiff::civil::Time>().ok()
}

/// Whether local time `at` in `tz` lies in the window `[from, to)`; a window whose
/// start is after its end wraps midnight.
pub fn in_window(
    at: Millis,
    tz: &TimeZone,
    from: jiff::civil::Time,
    to: jiff::civil::Time,
) -> bool {
    let local = timestamp(at).to_zoned_datetime(tz.clone()).time();
    if from <= to {
        local >= from && local < to
    } else {
        local >= from || local < to
    }
}

/// The first instant at or after `after` whose local time in `tz` is `time`. Local
/// times skipped by a daylight-saving jump resolve to the instant after the gap.
pub fn next_local(after: Millis, tz: &TimeZone, time: jiff::civil::Time) -> Millis {
    let zoned = timestamp(after).to_zoned_datetime(tz.clone());
    let mut date = zoned.date();
    for _ in 0..3 {
        if let Ok(candidate) = date.to_datetime(time).to_zoned_datetime(tz.clone()) {
            let ms = candidate.timestamp().as_millisecond();
            if ms >= after {
                return ms;
            }
        }
        date = date.tomorrow().unwrap_or(date);
    }
    after
}

/// The end of the quiet window containing `at`, or `None` when `at` is outside it.
pub fn quiet_until(at: Millis, tz: &TimeZone, from: &str, to: &str) -> Option<Millis> {
    let (from, to) = (local_time(from)?, local_time(to)?);
    if from == to || !in_window(at, tz, from, to) {
        return None;
    }
    Some(next_local(at, tz, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Millis {
        text.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or_default()
    }

    #[test]
    fn calendar_months_clamp_to_the_end_of_a_shorter_month() {
        assert_eq!(
            add(ms("2026-03-31T10:00:00Z"), Duration::Months(6)),
            ms("2026-09-30T10:00:00Z")
        );
        assert_eq!(
            add(ms("2026-01-31T00:00:00Z"), Duration::Months(1)),
            ms("2026-02-28T00:00:00Z")
        );
    }

    #[test]
    fn days_are_exact_across_daylight_saving() {
        assert_eq!(
            add(ms("2026-03-28T12:00:00Z"), Duration::Seconds(86_400)),
            ms("2026-03-29T12:00:00Z")
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight_in_the_contacts_zone() {
        let warsaw = zone(Some("Europe/Warsaw"));
        // 21:30 in Warsaw (UTC+1 in winter) is quiet until 08:00 local = 07:00Z.
        assert_eq!(
            quiet_until(ms("2026-01-10T20:30:00Z"), &warsaw, "21:00", "08:00"),
            Some(ms("2026-01-11T07:00:00Z"))
        );
        assert_eq!(
            quiet_until(ms("2026-01-10T12:00:00Z"), &warsaw, "21:00", "08:00"),
            None
        );
        // exactly at the end of the window is outside it
        assert_eq!(
            quiet_until(ms("2026-01-11T07:00:00Z"), &warsaw, "21:00", "08:00"),
            None
        );
    }

    #[test]
    fn next_local_time_is_today_or_tomorrow() {
        let utc = zone(None);
        let at = local_time("09:00").unwrap_or(jiff::civil::Time::midnight());
        assert_eq!(
            next_local(ms("2026-03-01T08:00:00Z"), &utc, at),
            ms("2026-03-01T09:00:00Z")
        );
        assert_eq!(
            next_local(ms("2026-03-01T10:00:00Z"), &utc, at),
            ms("2026-03-02T09:00:00Z")
        );
    }
}
