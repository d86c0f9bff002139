//! When a schedule is due: a fixed interval counted from the last due time, or a cron pattern
//! in UTC.
//!
//! Two cron dialects are read. This project's own schedules use
//! `{minute, hour, day_of_month, month_of_year, day_of_week}` (also `day`, `month`) with
//! cron's weekdays (0 = Sunday) and fire on the minute. Maestro's scheduler documents
//! (server-app writes `{second, minute, hour, day, week, month, year, day_of_week}`) follow
//! APScheduler, which Maestro's scheduler-app ran them with: weekdays count from Monday (0 =
//! Monday), `week` is the ISO week, `year` the year, and a field left out defaults to its
//! minimum below the most significant field given and to `*` above it.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use maestro_tasks::FieldError;
use serde_json::{Map, Value};

/// The shortest interval beat accepts: it looks at schedules once per tick.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3_650 * 86_400);
/// Occurrences tried when a cron pattern's `year` or `week` excludes the ones found, before
/// the schedule is taken as never due again.
const FILTERED_TRIES_MAX: usize = 4_096;

/// When a schedule is due.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// Every fixed period, counted from the last due time.
    Interval(TimeDelta),
    /// A cron pattern in UTC.
    Cron(Box<CronSpec>),
}

/// A cron pattern (with seconds), and the years and ISO weeks it is limited to, if any.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    years: Option<BTreeSet<u32>>,
    weeks: Option<BTreeSet<u32>>,
}

impl CronSpec {
    fn allows(&self, t: DateTime<Utc>) -> bool {
        let year_ok = self
            .years
            .as_ref()
            .is_none_or(|y| u32::try_from(t.year()).is_ok_and(|y2| y.contains(&y2)));
        let week_ok = self
            .weeks
            .as_ref()
            .is_none_or(|w| w.contains(&t.iso_week().week()));
        year_ok && week_ok
    }

    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = t;
        for _ in 0..FILTERED_TRIES_MAX {
            let n = self.cron.find_next_occurrence(&from, false).ok()?;
            if self.allows(n) {
                return Some(n);
            }
            from = n;
        }
        None
    }

    fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = t;
        let mut inclusive = true;
        for _ in 0..FILTERED_TRIES_MAX {
            let p = self.cron.find_previous_occurrence(&from, inclusive).ok()?;
            if self.allows(p) {
                return Some(p);
            }
            from = p;
            inclusive = false;
        }
        None
    }
}

impl Cadence {
    /// The first due time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Cadence::Interval(every) => t.checked_add_signed(*every),
            Cadence::Cron(cron) => cron.next_after(t),
        }
    }

    /// The latest due time at or before `now`, counting from `base` (exclusive); `None` when
    /// nothing is due. `skipped` is how many earlier due times in between it stands for.
    pub fn latest_due(&self, base: DateTime<Utc>, now: DateTime<Utc>) -> Option<LatestDue> {
        let first = self.next_after(base)?;
        if first > now {
            return None;
        }
        match self {
            Cadence::Interval(every) => {
                let step = every.num_milliseconds().max(1);
                let n = (now - first).num_milliseconds() / step;
                let due = first + TimeDelta::milliseconds(n * step);
                Some(LatestDue {
                    due,
                    skipped: n.unsigned_abs(),
                })
            }
            Cadence::Cron(cron) => {
                let due = cron.latest_at_or_before(now)?;
                // Counting every skipped minute of a long outage is not worth the CPU: the
                // figure is for a metric, so it stops at a day's worth of minutes.
                let mut skipped = 0u64;
                let mut t = first;
                while t < due && skipped < 1440 {
                    skipped += 1;
                    match cron.next_after(t) {
                        Some(n) => t = n,
                        None => break,
                    }
                }
                Some(LatestDue { due, skipped })
            }
        }
    }
}

/// See [`Cadence::latest_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestDue {
    pub due: DateTime<Utc>,
    pub skipped: u64,
}

/// `interval: {every, period}`; periods `weeks`, `days`, `hours`, `minutes`, `seconds` (the
/// default) and `microseconds`.
pub(crate) fn parse_interval(v: Option<&Value>) -> Result<TimeDelta, FieldError> {
    let obj = match v {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => {
            return Err(FieldError::value(
                "interval",
                "missing: {every, period} is required when period_type is \"interval\"",
            ));
        }
        Some(_) => {
            return Err(FieldError::value(
                "interval",
                "must be an object {every, period}",
            ));
        }
    };
    let every = match obj.get("every") {
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite() && *f > 0.0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0),
        _ => None,
    }
    .ok_or_else(|| FieldError::value("interval.every", "must be a positive number"))?;
    let unit_secs = match obj.get("period").and_then(Value::as_str) {
        Some("weeks") => 7.0 * 86_400.0,
        Some("days") => 86_400.0,
        Some("hours") => 3_600.0,
        Some("minutes") => 60.0,
        Some("seconds") | None => 1.0,
        Some("microseconds") => 1e-6,
        Some(other) => {
            return Err(FieldError::value(
                "interval.period",
                format!(
                    "must be weeks, days, hours, minutes, seconds or microseconds, not {other:?}"
                ),
            ));
        }
    };
    let secs = every * unit_secs;
    if secs < MIN_INTERVAL.as_secs_f64() {
        return Err(FieldError::value(
            "interval",
            "must be at least 1 second (beat looks at schedules once per tick)",
        ));
    }
    if secs > MAX_INTERVAL.as_secs_f64() {
        return Err(FieldError::value("interval", "must be at most 3650 days"));
    }
    Ok(TimeDelta::milliseconds((secs * 1000.0).round() as i64))
}

/// The cron dialect of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `{minute, hour, day_of_month, month_of_year, day_of_week}`, cron weekdays.
    Cron,
    /// Maestro's scheduler documents: APScheduler fields and weekdays.
    ApScheduler,
}

/// `cron: {...}` (or a plain `"m h dom mon dow"` string) in `dialect`.
pub(crate) fn parse_cron(v: Option<&Value>, dialect: Dialect) -> Result<CronSpec, FieldError> {
    let obj = match v {
        Some(Value::Object(o)) => o,
        Some(Value::String(s)) => {
            return Ok(CronSpec {
                cron: cron_pattern(&format!("0 {s}"), "cron")?,
                years: None,
                weeks: None,
            });
        }
        None | Some(Value::Null) => {
            return Err(FieldError::value(
                "cron",
                "missing: {minute, hour, day_of_month, month_of_year, day_of_week} is required \
                 when period_type is \"cron\"",
            ));
        }
        Some(_) => return Err(FieldError::value("cron", "must be an object")),
    };
    let dialect = if ["second", "week", "year"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        Dialect::ApScheduler
    } else {
        dialect
    };
    match dialect {
        Dialect::Cron => {
            let pattern = [
                "0".to_owned(),
                part(obj, &["minute"])?.unwrap_or_else(|| "*".into()),
                part(obj, &["hour"])?.unwrap_or_else(|| "*".into()),
                part(obj, &["day_of_month", "day"])?.unwrap_or_else(|| "*".into()),
                part(obj, &["month_of_year", "month"])?.unwrap_or_else(|| "*".into()),
                part(obj, &["day_of_week"])?.unwrap_or_else(|| "*".into()),
            ]
            .join(" ");
            Ok(CronSpec {
                cron: cron_pattern(&pattern, "cron")?,
                years: None,
                weeks: None,
            })
        }
        Dialect::ApScheduler => ap_scheduler(obj),
    }
}

/// A field's text: the first of `names` given, a string or a number.
fn part(obj: &Map<String, Value>, names: &[&str]) -> Result<Option<String>, FieldError> {
    for name in names {
        match obj.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(_) => {
                return Err(FieldError::value(
                    format!("cron.{name}"),
                    "must be a cron field (a string such as \"*/5\" or a number)",
                ));
            }
        }
    }
    Ok(None)
}

/// APScheduler's `CronTrigger` fields, most significant first.
const AP_FIELDS: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];

fn ap_scheduler(obj: &Map<String, Value>) -> Result<CronSpec, FieldError> {
    let given: Vec<Option<String>> = AP_FIELDS
        .iter()
        .map(|f| part(obj, &[f]))
        .collect::<Result<_, _>>()?;
    // Below the most significant field given, fields default to their minimum; `week` and
    // `day_of_week` are `*` unless given.
    let first = given
        .iter()
        .position(Option::is_some)
        .unwrap_or(AP_FIELDS.len());
    let field = |i: usize, min: &str| -> String {
        given[i].clone().unwrap_or_else(|| {
            if i > first && !matches!(AP_FIELDS[i], "week" | "day_of_week") {
                min.to_owned()
            } else {
                "*".to_owned()
            }
        })
    };
    let year = field(0, "*");
    let month = field(1, "1");
    let day = field(2, "1");
    let week = field(3, "*");
    let dow = field(4, "*");
    let hour = field(5, "0");
    let minute = field(6, "0");
    let second = field(7, "0");
    let day = if day.eq_ignore_ascii_case("last") {
        "L".to_owned()
    } else {
        day
    };
    let dow = ap_weekdays(&dow)?;
    let pattern = [second, minute, hour, day, month, dow].join(" ");
    Ok(CronSpec {
        cron: cron_pattern(&pattern, "cron")?,
        years: number_set(&year, 1970, 2999, "cron.year")?,
        weeks: number_set(&week, 1, 53, "cron.week")?,
    })
}

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// APScheduler weekdays (0 = Monday, names `mon`..`sun`) as cron's named weekdays.
fn ap_weekdays(expr: &str) -> Result<String, FieldError> {
    if expr == "*" {
        return Ok("*".into());
    }
    let bad = || {
        FieldError::value(
            "cron.day_of_week",
            format!("{expr:?} is not a day-of-week expression (0-6 from Monday, or mon..sun)"),
        )
    };
    let day = |s: &str| -> Result<usize, FieldError> {
        let s = s.trim().to_ascii_uppercase();
        match s.parse::<usize>() {
            Ok(n) if n < 7 => Ok(n),
            Ok(_) => Err(bad()),
            Err(_) => WEEKDAYS.iter().position(|w| s == *w).ok_or_else(bad),
        }
    };
    let mut out = Vec::new();
    for item in expr.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r.trim(), Some(s.trim())),
            None => (item.trim(), None),
        };
        let names = if range == "*" {
            "MON-SUN".to_owned()
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (day(a)?, day(b)?);
            if a <= b {
                format!("{}-{}", WEEKDAYS[a], WEEKDAYS[b])
            } else if step.is_none() {
                // A range across Sunday, e.g. sat-mon.
                format!("{}-SUN,MON-{}", WEEKDAYS[a], WEEKDAYS[b])
            } else {
                return Err(bad());
            }
        } else {
            WEEKDAYS[day(range)?].to_owned()
        };
        out.push(match step {
            Some(s) if s.parse::<u32>().is_ok_and(|n| n > 0) => format!("{names}/{s}"),
            Some(_) => return Err(bad()),
            None => names,
        });
    }
    Ok(out.join(","))
}

/// A numeric field (`*`, `a`, `a-b`, `*/n`, `a-b/n`, comma lists) as the set it allows within
/// `min..=max`; `None` for `*`.
fn number_set(
    expr: &str,
    min: u32,
    max: u32,
    field: &str,
) -> Result<Option<BTreeSet<u32>>, FieldError> {
    if expr == "*" {
        return Ok(None);
    }
    let bad = || FieldError::value(field, format!("{expr:?} is not a number, range or step"));
    let mut set = BTreeSet::new();
    for item in expr.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r.trim(), s.trim().parse::<u32>().map_err(|_| bad())?),
            None => (item.trim(), 1),
        };
        if step == 0 {
            return Err(bad());
        }
        let (a, b) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            )
        } else {
            let n: u32 = range.parse().map_err(|_| bad())?;
            (n, if step > 1 { max } else { n })
        };
        if a < min || b > max || a > b {
            return Err(FieldError::value(
                field,
                format!("{expr:?} is outside {min}-{max}"),
            ));
        }
        set.extend((a..=b).step_by(step as usize));
    }
    Ok(Some(set))
}

fn cron_pattern(pattern: &str, field: &str) -> Result<Cron, FieldError> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(pattern)
        .map_err(|e| FieldError::value(field, format!("invalid cron pattern {pattern:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn next(cron: Value, after: &str) -> Option<DateTime<Utc>> {
        let spec = parse_cron(Some(&cron), Dialect::ApScheduler).expect("valid");
        Cadence::Cron(Box::new(spec)).next_after(t(after))
    }

    #[test]
    fn maestro_cron_documents_follow_apscheduler() {
        // server-app's defaults: every hour at :30:00.
        let d = json!({"second": 0, "minute": 30, "hour": "*", "day": "*", "week": "*",
            "month": "*", "year": "*", "day_of_week": "*"});
        assert_eq!(
            next(d, "2026-03-02T10:31:00Z"),
            Some(t("2026-03-02T11:30:00Z"))
        );
        // 0 is Monday: 2026-03-02 is a Monday.
        let monday = json!({"second": 0, "minute": 0, "hour": 9, "day_of_week": "0"});
        assert_eq!(
            next(monday, "2026-03-01T00:00:00Z"),
            Some(t("2026-03-02T09:00:00Z"))
        );
        let weekdays = json!({"second": 0, "minute": 0, "hour": 9, "day_of_week": "mon-fri"});
        assert_eq!(
            next(weekdays, "2026-03-06T10:00:00Z"),
            Some(t("2026-03-09T09:00:00Z"))
        );
        let across = json!({"second": 0, "minute": 0, "hour": 9, "day_of_week": "5-0"});
        assert_eq!(
            next(across, "2026-03-02T10:00:00Z"),
            Some(t("2026-03-07T09:00:00Z"))
        );
        // Seconds.
        let every_10s = json!({"second": "*/10", "minute": "*", "hour": "*"});
        assert_eq!(
            next(every_10s, "2026-03-02T10:00:01Z"),
            Some(t("2026-03-02T10:00:10Z"))
        );
        // Year and ISO week.
        let year = json!({"second": 0, "minute": 0, "hour": 0, "day": 1, "month": 1, "year": 2028});
        assert_eq!(
            next(year, "2026-03-02T00:00:00Z"),
            Some(t("2028-01-01T00:00:00Z"))
        );
        let week = json!({"second": 0, "minute": 0, "hour": 0, "week": 10, "day_of_week": "0"});
        assert_eq!(
            next(week, "2026-01-01T00:00:00Z"),
            Some(t("2026-03-02T00:00:00Z"))
        );
        let past = json!({"second": 0, "minute": 0, "hour": 0, "year": 2020});
        assert_eq!(next(past, "2026-01-01T00:00:00Z"), None);
        // Fields below the most significant given default to their minimum.
        let daily_9 = json!({"hour": 9});
        assert_eq!(
            next(daily_9, "2026-03-02T09:00:01Z"),
            Some(t("2026-03-03T09:00:00Z"))
        );
    }

    #[test]
    fn this_projects_cron_keeps_crons_weekdays() {
        let d = json!({"minute": "0", "hour": "9", "day_of_week": "1"});
        let spec = parse_cron(Some(&d), Dialect::Cron).expect("valid");
        // 1 is Monday in cron.
        assert_eq!(
            Cadence::Cron(Box::new(spec)).next_after(t("2026-03-01T00:00:00Z")),
            Some(t("2026-03-02T09:00:00Z"))
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |d: Value| {
            parse_cron(Some(&d), Dialect::ApScheduler)
                .expect_err("refused")
                .field
        };
        assert_eq!(
            field(json!({"second": 0, "day_of_week": "funday"})),
            "cron.day_of_week"
        );
        assert_eq!(field(json!({"second": 0, "year": "19"})), "cron.year");
        assert_eq!(field(json!({"second": 0, "week": "60"})), "cron.week");
        assert_eq!(field(json!({"second": 0, "minute": "61"})), "cron");
        assert_eq!(field(json!({"second": 0, "hour": []})), "cron.hour");
        let weeks = parse_interval(Some(&json!({"every": 2, "period": "weeks"}))).expect("weeks");
        assert_eq!(weeks, TimeDelta::days(14));
    }
}
