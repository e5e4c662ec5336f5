//! Maintenance windows: days and hours in a time zone (IANA names through
//! `chrono-tz`), when a campaign may start tasks and deliver updates. Pure: the
//! caller passes the time. A window whose end is before its start runs past
//! midnight into the next day.

use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// When a campaign may start tasks and deliver updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = MaintenanceWindows)]
pub struct WindowsSpec {
    /// An IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub windows: Vec<WindowSpec>,
}

/// One window; an end before the start runs past midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = MaintenanceWindow)]
pub struct WindowSpec {
    /// `Mon` … `Sun`.
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    pub start: String,
    pub end: String,
}

/// Checked windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    tz: Tz,
    windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq)]
struct Window {
    days: Vec<Weekday>,
    start_min: u32,
    end_min: u32,
}

fn minutes(field: &str, s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "{field} {:?} is not a time of day like \"01:30\"",
            crate::logguard::Clipped(s)
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl WindowsSpec {
    /// Checks the spec; errors name the field (`MaintenanceWindows.Windows[1].Days`).
    pub fn check(&self) -> Result<Windows, String> {
        let f = "MaintenanceWindows";
        let tz: Tz = self.time_zone.parse().map_err(|_| {
            format!(
                "{f}.TimeZone {:?} is not a known IANA time zone; use a name like \"Europe/Berlin\" or \"UTC\"",
                crate::logguard::Clipped(&self.time_zone)
            )
        })?;
        if self.windows.is_empty() {
            return Err(format!("{f}.Windows is empty: give at least one window, or leave MaintenanceWindows out for no restriction"));
        }
        let mut windows = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let at = format!("{f}.Windows[{i}]");
            if w.days.is_empty() {
                return Err(format!(
                    "{at}.Days is empty: name days such as [\"Mon\", \"Tue\"]"
                ));
            }
            let days = w
                .days
                .iter()
                .map(|d| {
                    d.parse::<Weekday>().map_err(|_| {
                        format!(
                            "{at}.Days: {:?} is not a day; use Mon, Tue, Wed, Thu, Fri, Sat or Sun",
                            crate::logguard::Clipped(d)
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let start_min = minutes(&format!("{at}.Start"), &w.start)?;
            let end_min = minutes(&format!("{at}.End"), &w.end)?;
            if start_min == end_min {
                return Err(format!(
                    "{at} has no hours: Start and End are both {:?}; a window that runs past midnight ends before it starts (\"22:00\" to \"04:00\")",
                    w.start
                ));
            }
            windows.push(Window {
                days,
                start_min,
                end_min,
            });
        }
        Ok(Windows { tz, windows })
    }
}

impl Windows {
    /// Whether a window is open at Unix time `us` (microseconds).
    pub fn open_at(&self, us: i64) -> bool {
        let Some(t) = self.tz.timestamp_micros(us).single() else {
            return false;
        };
        let day = t.weekday();
        let min = t.hour() * 60 + t.minute();
        self.windows.iter().any(|w| {
            if w.start_min < w.end_min {
                w.days.contains(&day) && (w.start_min..w.end_min).contains(&min)
            } else {
                (w.days.contains(&day) && min >= w.start_min)
                    || (w.days.contains(&day.pred()) && min < w.end_min)
            }
        })
    }

    /// The next time (to the minute, within 8 days) a window opens, if closed now.
    pub fn next_open(&self, us: i64) -> Option<i64> {
        let minute = 60_000_000;
        let start = us - us.rem_euclid(minute) + minute;
        (0..8 * 24 * 60)
            .map(|i| start + i * minute)
            .find(|&t| self.open_at(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tz: &str, days: &[&str], start: &str, end: &str) -> WindowsSpec {
        WindowsSpec {
            time_zone: tz.into(),
            windows: vec![WindowSpec {
                days: days.iter().map(|d| d.to_string()).collect(),
                start: start.into(),
                end: end.into(),
            }],
        }
    }

    fn us(s: &str) -> i64 {
        crate::app::parse_time(s).unwrap()
    }

    #[test]
    fn a_window_opens_in_its_own_time_zone() {
        // 2026-12-07 is a Monday; Berlin is UTC+1 in December.
        let w = spec("Europe/Berlin", &["Mon"], "02:00", "04:00")
            .check()
            .unwrap();
        assert!(!w.open_at(us("2026-12-07T00:59:00Z")));
        assert!(w.open_at(us("2026-12-07T01:00:00Z")));
        assert!(w.open_at(us("2026-12-07T02:59:00Z")));
        assert!(!w.open_at(us("2026-12-07T03:00:00Z")));
        assert_eq!(
            w.next_open(us("2026-12-06T12:00:00Z")),
            Some(us("2026-12-07T01:00:00Z"))
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let w = spec("UTC", &["Sat"], "22:00", "02:00").check().unwrap();
        assert!(w.open_at(us("2026-12-05T23:00:00Z")));
        assert!(w.open_at(us("2026-12-06T01:00:00Z")));
        assert!(!w.open_at(us("2026-12-06T23:00:00Z")));
    }

    #[test]
    fn bad_windows_name_the_field() {
        let e = spec("Mars/Olympus", &["Mon"], "01:00", "02:00")
            .check()
            .unwrap_err();
        assert!(e.contains("MaintenanceWindows.TimeZone"), "{e}");
        let e = spec("UTC", &["Mon"], "01:00", "01:00").check().unwrap_err();
        assert!(e.contains("Windows[0] has no hours"), "{e}");
        let e = spec("UTC", &[], "01:00", "02:00").check().unwrap_err();
        assert!(e.contains("Windows[0].Days is empty"), "{e}");
        let e = spec("UTC", &["Mon"], "25:00", "02:00").check().unwrap_err();
        assert!(e.contains("Windows[0].Start"), "{e}");
    }
}
