//! Temporary rules: the rule dialog's "Expires" presets (for 15 minutes, for an hour, until
//! tonight — the coming local midnight — or until a date and time the admin types), the time
//! each stands for as the policy writes it (a UTC RFC 3339 date-time), and the words a row shows
//! for an expiry: "expires in 12 min", "expires at 18:00", "expired".
//!
//! Pure: times in, text out; local time through GLib (no display needed), so the unit tests
//! run without one.

use crate::i18n::{gettext, i18n_f, ni18n_f};
use relm4::gtk::glib;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The choices of the rule dialog's "Expires".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The rule stays.
    Never,
    /// 15 minutes from when the rule is saved.
    Quarter,
    /// An hour from when the rule is saved.
    Hour,
    /// The coming local midnight.
    Tonight,
    /// A date and time the admin enters.
    Until,
}

/// The presets in the order the dialog shows them.
pub const PRESETS: [Preset; 5] = [
    Preset::Never,
    Preset::Quarter,
    Preset::Hour,
    Preset::Tonight,
    Preset::Until,
];

impl Preset {
    /// The button's label.
    pub fn label(self) -> String {
        match self {
            Preset::Never => gettext("Never"),
            Preset::Quarter => gettext("For 15 minutes"),
            Preset::Hour => gettext("For 1 hour"),
            Preset::Tonight => gettext("Until tonight"),
            Preset::Until => gettext("Until…"),
        }
    }

    /// The time the preset stands for at `now`; `None` for never and for a typed time.
    pub fn time(self, now: SystemTime) -> Option<SystemTime> {
        match self {
            Preset::Never | Preset::Until => None,
            Preset::Quarter => Some(now + Duration::from_secs(15 * 60)),
            Preset::Hour => Some(now + Duration::from_secs(3600)),
            Preset::Tonight => Some(midnight_after(now)),
        }
    }
}

/// The first local midnight after `now`.
pub fn midnight_after(now: SystemTime) -> SystemTime {
    let local = glib::DateTime::from_unix_local(unix(now)).ok();
    let midnight = local.and_then(|t| {
        let next = t.add_days(1).ok()?;
        glib::DateTime::from_local(next.year(), next.month(), next.day_of_month(), 0, 0, 0.0).ok()
    });
    match midnight {
        Some(m) => UNIX_EPOCH + Duration::from_secs(u64::try_from(m.to_unix()).unwrap_or(0)),
        // GLib could not tell local time: the next UTC midnight.
        None => {
            let secs = unix(now).max(0).unsigned_abs();
            UNIX_EPOCH + Duration::from_secs((secs / 86_400 + 1) * 86_400)
        }
    }
}

/// `t` as the policy writes an expiry: `2026-12-31T23:00:00Z`.
pub fn policy_text(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An expiry as the policy document holds it (the editor's `RuleFields::expires`), when it is
/// a time.
pub fn from_policy_text(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim()).ok().or_else(|| {
        // An offset other than Z: let GLib read it.
        glib::DateTime::from_iso8601(text.trim(), None)
            .ok()
            .and_then(|t| u64::try_from(t.to_unix()).ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    })
}

/// Reads the time the admin typed for "Until…": local `2026-12-31 18:00` (seconds optional,
/// `T` or a space between), or an RFC 3339 time with its offset. It must be in the future.
pub fn parse_until(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(gettext("Enter a date and time, like 2026-12-31 18:00"));
    }
    let with_seconds = match text.len() {
        // 2026-12-31 18:00
        16 => format!("{text}:00"),
        _ => text.to_owned(),
    };
    let t = glib::DateTime::from_iso8601(&with_seconds, Some(&glib::TimeZone::local()))
        .ok()
        .and_then(|t| u64::try_from(t.to_unix()).ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .ok_or_else(|| {
            i18n_f(
                "“{text}” is not a date and time like 2026-12-31 18:00",
                &[("text", text)],
            )
        })?;
    if t <= now {
        return Err(i18n_f(
            "{time} has passed: choose a time in the future",
            &[("time", text)],
        ));
    }
    Ok(t)
}

/// The words for an expiry at `at` seen at `now`: "expired", "expires in 12 min" within the
/// hour (rounded up, so a fresh 15-minute rule reads 15), "expires at 18:00" within a day,
/// "expires on 2026-12-31 18:00" after that.
pub fn words(at: SystemTime, now: SystemTime) -> String {
    let Ok(left) = at.duration_since(now) else {
        return gettext("expired");
    };
    if left.is_zero() {
        return gettext("expired");
    }
    let secs = left.as_secs();
    if secs < 3600 {
        let minutes = secs.div_ceil(60).max(1);
        return ni18n_f(
            "expires in {count} min",
            "expires in {count} min",
            u32::try_from(minutes).unwrap_or(u32::MAX),
            &[("count", &minutes.to_string())],
        );
    }
    let local = glib::DateTime::from_unix_local(unix(at)).ok();
    if secs < 86_400 {
        let hm = local
            .as_ref()
            .and_then(|t| t.format("%H:%M").ok())
            .map(|s| s.to_string())
            .unwrap_or_else(|| policy_text(at));
        return i18n_f("expires at {time}", &[("time", &hm)]);
    }
    let day = local
        .as_ref()
        .and_then(|t| t.format("%Y-%m-%d %H:%M").ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| policy_text(at));
    i18n_f("expires on {time}", &[("time", &day)])
}

/// The preset an expiry text was written with, as the dialog opens it: never for none, else
/// a typed time (shown in the entry as local time).
pub fn opened(text: &str) -> (Preset, String) {
    let text = text.trim();
    if text.is_empty() {
        return (Preset::Never, String::new());
    }
    match from_policy_text(text) {
        Some(t) => (Preset::Until, local_text(t)),
        // Not a time: shown as written, so validation's message explains it.
        None => (Preset::Until, text.to_owned()),
    }
}

/// `t` as local `2026-12-31 18:00`, what [`parse_until`] reads.
pub fn local_text(t: SystemTime) -> String {
    glib::DateTime::from_unix_local(unix(t))
        .ok()
        .and_then(|d| d.format("%Y-%m-%d %H:%M").ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| policy_text(t))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn presets_are_times_from_now() {
        let now = at(1_800_000_000);
        assert_eq!(Preset::Never.time(now), None);
        assert_eq!(Preset::Quarter.time(now), Some(at(1_800_000_900)));
        assert_eq!(Preset::Hour.time(now), Some(at(1_800_003_600)));
        let tonight = midnight_after(now);
        assert!(tonight > now && tonight <= now + Duration::from_secs(86_400));
        // Midnight after midnight is the next one, a day on (no DST change in this test's
        // zone on that day).
        let local =
            glib::DateTime::from_unix_local(unix(tonight)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((local.hour(), local.minute()), (0, 0));
    }

    #[test]
    fn times_round_trip_through_the_policy_text() {
        let t = at(1_800_000_000);
        assert_eq!(policy_text(t), "2027-01-15T08:00:00Z");
        assert_eq!(from_policy_text("2027-01-15T08:00:00Z"), Some(t));
        assert_eq!(from_policy_text("2027-01-15T09:00:00+01:00"), Some(t));
        assert_eq!(from_policy_text("soon"), None);
        let typed = local_text(t);
        assert_eq!(parse_until(&typed, at(0)), Ok(t));
        assert_eq!(opened(""), (Preset::Never, String::new()));
        assert_eq!(opened("2027-01-15T08:00:00Z"), (Preset::Until, typed));
    }

    #[test]
    fn typed_times_are_judged() {
        let now = at(1_800_000_000);
        assert!(parse_until("", now).is_err());
        assert!(parse_until("tomorrow", now)
            .err()
            .is_some_and(|e| e.contains("tomorrow")));
        assert!(parse_until("2020-01-01 10:00", now)
            .err()
            .is_some_and(|e| e.contains("has passed")));
        assert!(parse_until("2030-06-01 10:00", now).is_ok());
        assert!(parse_until("2030-06-01T10:00:00Z", now).is_ok());
    }

    #[test]
    fn rows_say_how_long_is_left() {
        let now = at(1_800_000_000);
        assert_eq!(words(now, now), "expired");
        assert_eq!(words(at(1_700_000_000), now), "expired");
        assert_eq!(
            words(now + Duration::from_secs(900), now),
            "expires in 15 min"
        );
        assert_eq!(
            words(now + Duration::from_secs(841), now),
            "expires in 15 min"
        );
        assert_eq!(
            words(now + Duration::from_secs(20), now),
            "expires in 1 min"
        );
        assert!(words(now + Duration::from_secs(5 * 3600), now).starts_with("expires at "));
        assert!(words(now + Duration::from_secs(3 * 86_400), now).starts_with("expires on 20"));
    }
}
