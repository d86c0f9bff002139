//! Schedule documents in Maestro's `schedulers` shape, and when they are due.
//!
//! A schedule names what to send (`task`, optional `queue`, `args`, `kwargs`) and when:
//! `period_type: "interval"` with `interval: {every, period}` counted from `last_run_at`, or
//! `period_type: "cron"` with `cron: {minute, hour, day_of_month, month_of_year, day_of_week}`
//! in UTC. `enabled: false` or `active: false` (Maestro's soft delete) pause it.
//!
//! Fields beat owns and the API must not write: `last_run_at` (the due time of the last fire,
//! the compare-and-set key), `total_run_count`, `beat_epoch` (the leader epoch of the last
//! write, the fence), `beat_pending` (a fire written but not yet confirmed by the broker) and
//! `beat_anchor` (where a schedule without `run_immediately` starts counting).
//!
//! `run_immediately: true` (Maestro's "run once now", set by server-app on every new
//! connection schedule, or by a client at any time) fires the schedule at the next pass; the
//! fire's own compare-and-set write clears it, so it fires once per time it is set. The
//! cadence then counts from that fire.

use std::time::Duration;

use bson::{Bson, Document};
use chrono::{DateTime, TimeDelta, Utc};
use maestro_tasks::FieldError;
use serde_json::{Map, Value};
use uuid::Uuid;

mod cadence;
mod target;

pub use cadence::{Cadence, CronSpec, LatestDue, MAX_INTERVAL, MIN_INTERVAL};
pub use target::Target;

use cadence::{Dialect, parse_cron, parse_interval};
use target::parse_target;

/// The default collection holding schedules (Maestro's name).
pub const DEFAULT_COLLECTION: &str = "schedulers";

/// Fields beat writes; clients must not.
pub const BEAT_OWNED_FIELDS: [&str; 5] = [
    "last_run_at",
    "total_run_count",
    "beat_epoch",
    "beat_pending",
    "beat_anchor",
];

/// Namespace of the deterministic task ids (a fixed random UUID; changing it would let a slot
/// fired by an older beat run again after an upgrade).
const TASK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_6573_7472_6f2d_6265_6174_2d69_6473);

/// A parsed schedule document.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `_id` exactly as stored (ObjectId, string or integer): filters use it unchanged.
    pub id: Bson,
    /// `_id` as text, for task ids and logs.
    pub id_text: String,
    pub name: String,
    pub enabled: bool,
    pub cadence: Cadence,
    pub target: Target,
    pub run_immediately: bool,
    /// `last_run_at` exactly as stored (Null when absent): the compare-and-set key.
    pub last_run_at_raw: Bson,
    pub last_run_at: Option<DateTime<Utc>>,
    pub beat_anchor: Option<DateTime<Utc>>,
    pub beat_epoch: Option<i64>,
    pub pending: Option<Pending>,
}

/// A fire written to the schedule but not yet confirmed by the broker: whoever leads next
/// publishes it (same task id) and clears it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub task_id: String,
    pub due: DateTime<Utc>,
    pub target: Target,
    /// The epoch of the leader that wrote it.
    pub epoch: Option<i64>,
    /// When it was written.
    pub written_at: Option<DateTime<Utc>>,
}

/// What a leader should do with a schedule now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is due.
    Wait,
    /// Record where counting starts (a new schedule without `run_immediately`).
    Anchor,
    /// Fire the slot `due`; `skipped` earlier slots were missed by more than the grace and
    /// are folded into this one run.
    Fire { due: DateTime<Utc>, skipped: u64 },
}

impl Schedule {
    /// Parses a stored document. Errors name the field.
    pub fn from_document(doc: &Document) -> Result<Self, FieldError> {
        let id = doc
            .get("_id")
            .cloned()
            .ok_or_else(|| FieldError::value("_id", "missing"))?;
        let id_text = match &id {
            Bson::ObjectId(o) => o.to_hex(),
            Bson::String(s) => s.clone(),
            Bson::Int32(i) => i.to_string(),
            Bson::Int64(i) => i.to_string(),
            other => {
                return Err(FieldError::value(
                    "_id",
                    format!(
                        "must be an ObjectId, string or integer, not {:?}",
                        other.element_type()
                    ),
                ));
            }
        };
        let json = Bson::Document(doc.clone()).into_relaxed_extjson();
        let body = parse_body(&json, &id_text)?;
        let last_run_at_raw = doc.get("last_run_at").cloned().unwrap_or(Bson::Null);
        let last_run_at = bson_time(&last_run_at_raw, "last_run_at")?;
        let beat_anchor = bson_time(doc.get("beat_anchor").unwrap_or(&Bson::Null), "beat_anchor")?;
        let beat_epoch = match doc.get("beat_epoch") {
            None | Some(Bson::Null) => None,
            Some(Bson::Int32(i)) => Some(i64::from(*i)),
            Some(Bson::Int64(i)) => Some(*i),
            Some(_) => return Err(FieldError::value("beat_epoch", "must be an integer")),
        };
        let pending = match doc.get("beat_pending") {
            None | Some(Bson::Null) => None,
            Some(Bson::Document(p)) => Some(parse_pending(p)?),
            Some(_) => return Err(FieldError::value("beat_pending", "must be a document")),
        };
        Ok(Self {
            id,
            id_text,
            name: body.name,
            enabled: body.enabled,
            cadence: body.cadence,
            target: body.target,
            run_immediately: body.run_immediately,
            last_run_at_raw,
            last_run_at,
            beat_anchor,
            beat_epoch,
            pending,
        })
    }

    /// What to do at `now`. Slots are fired one at a time, oldest first, while they are at most
    /// `grace` late; a schedule further behind than that (no leader for a while) runs once,
    /// for its latest due slot, and resumes from there.
    pub fn plan(&self, now: DateTime<Utc>, grace: Duration) -> Plan {
        if self.run_immediately {
            // Maestro's "run once now": beat clears the flag in the same write that fires.
            return Plan::Fire {
                due: truncate_ms(now),
                skipped: 0,
            };
        }
        let base = match (self.last_run_at, self.beat_anchor) {
            (Some(last), _) => last,
            (None, Some(anchor)) => anchor,
            (None, None) => return Plan::Anchor,
        };
        let Some(next) = self.cadence.next_after(base) else {
            return Plan::Wait;
        };
        if next > now {
            return Plan::Wait;
        }
        let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
        if now - next <= grace {
            return Plan::Fire {
                due: next,
                skipped: 0,
            };
        }
        match self.cadence.latest_due(base, now) {
            Some(LatestDue { due, skipped }) => Plan::Fire { due, skipped },
            None => Plan::Wait,
        }
    }
}

/// A chrono time as a BSON date (millisecond precision).
pub fn to_bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// A BSON date as a chrono time.
pub fn from_bson_date(d: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(d.timestamp_millis()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The task id of the run of `schedule_id` due at `due`: a UUIDv5 of both, so every beat
/// derives the same id for the same slot and a worker runs it once.
pub fn task_id(schedule_id: &str, due: DateTime<Utc>) -> String {
    let name = format!("{schedule_id}@{}", due.timestamp_millis());
    Uuid::new_v5(&TASK_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// Most schedules a schedules collection may hold (the API refuses to create more).
pub const SCHEDULES_MAX: u64 = 10_000;

/// Checks a schedule as a client submits it (JSON), before it is stored: the same rules beat
/// applies when it reads one, no beat-owned field, and no key anywhere that MongoDB would read
/// as a path or an operator (a `.` in it, or a leading `$`: `{"beat_pending.task_id": ...}` in
/// a `$set` would write a beat-owned field). Returns what the schedule sends.
pub fn validate_document(doc: &Value) -> Result<Target, FieldError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| FieldError::value("$", "must be a JSON object"))?;
    check_keys(doc, "")?;
    if let Some(f) = BEAT_OWNED_FIELDS.iter().find(|f| obj.contains_key(**f)) {
        return Err(FieldError::value(*f, "is written by maestro-beat only"));
    }
    parse_body(doc, "").map(|b| b.target)
}

/// Refuses object keys with a `.` or a leading `$`, anywhere in `value` (at `path`). A
/// schedule's kwargs that must hold such keys (an aggregation pipeline) go as a JSON string.
fn check_keys(value: &Value, path: &str) -> Result<(), FieldError> {
    match value {
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('.') || k.starts_with('$') || k.contains('\0') {
                return Err(FieldError::value(
                    at,
                    "a key may not hold '.' or NUL, nor start with '$' (kwargs that need such \
                     keys can be sent as a JSON string)",
                ));
            }
            check_keys(v, &at)
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_keys(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

/// Whether a schedule may send `target` through this deployment's routing table, and to which
/// queue: internal tasks never, diagnostic ones only with `diagnostics`; the queue it names must
/// be `default_queue` or in the routing table unless `allow_any_queue`. A task that names no
/// queue goes to its route, else to `default_queue`.
pub fn admit_target(
    target: &Target,
    routes: &maestro_tasks::RoutingTable,
    default_queue: &str,
    allow_any_queue: bool,
    diagnostics: bool,
) -> Result<String, FieldError> {
    let routed = routes.queue_for(&target.task).unwrap_or(default_queue);
    let queue = target.queue.as_deref().unwrap_or(routed);
    if let Some(q) = &target.queue
        && !allow_any_queue
        && q != default_queue
        && !routes.has_queue(q)
    {
        return Err(FieldError::value(
            "queue",
            format!("queue {q:?} is not in the routing table (MAESTRO_ALLOW_ANY_QUEUE is off)"),
        ));
    }
    match crate::routes::reach(&target.task) {
        crate::routes::Reach::Internal => Err(FieldError::value(
            "task",
            format!(
                "{} is internal: only the project's own tasks send it",
                target.task
            ),
        )),
        crate::routes::Reach::Diagnostic if !diagnostics => Err(FieldError::value(
            "task",
            format!(
                "{} is a diagnostic task, and diagnostics are off (MAESTRO_ENABLE_DIAGNOSTICS)",
                target.task
            ),
        )),
        _ => Ok(queue.to_owned()),
    }
}

struct Body {
    name: String,
    enabled: bool,
    cadence: Cadence,
    target: Target,
    run_immediately: bool,
}

fn parse_body(doc: &Value, id: &str) -> Result<Body, FieldError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| FieldError::value("$", "must be a JSON object"))?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FieldError::value("name", "must be a string")),
    };
    let enabled = opt_bool(obj, "enabled", true)? && opt_bool(obj, "active", true)?;
    let run_immediately = opt_bool(obj, "run_immediately", false)?;
    // Maestro's own scheduler documents (an HTTP `endpoint`) count weekdays from Monday.
    let dialect = if obj.contains_key("endpoint") {
        Dialect::ApScheduler
    } else {
        Dialect::Cron
    };
    let period_type = match obj.get("period_type") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) if obj.contains_key("cron") => "cron",
        None | Some(Value::Null) => "interval",
        Some(_) => return Err(FieldError::value("period_type", "must be a string")),
    };
    let cadence = match period_type {
        "interval" => Cadence::Interval(parse_interval(obj.get("interval"))?),
        "cron" => Cadence::Cron(Box::new(parse_cron(obj.get("cron"), dialect)?)),
        other => {
            return Err(FieldError::value(
                "period_type",
                format!("must be \"interval\" or \"cron\", not {other:?}"),
            ));
        }
    };
    Ok(Body {
        name,
        enabled,
        cadence,
        target: parse_target(obj, "", id)?,
        run_immediately,
    })
}

fn opt_bool(obj: &Map<String, Value>, field: &str, default: bool) -> Result<bool, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FieldError::value(field, "must be true or false")),
    }
}

fn parse_pending(p: &Document) -> Result<Pending, FieldError> {
    let task_id = p
        .get_str("task_id")
        .map_err(|_| FieldError::value("beat_pending.task_id", "must be a string"))?
        .to_owned();
    let due = bson_time(p.get("due").unwrap_or(&Bson::Null), "beat_pending.due")?
        .ok_or_else(|| FieldError::value("beat_pending.due", "missing"))?;
    let json = Bson::Document(p.clone()).into_relaxed_extjson();
    let obj = json.as_object().cloned().unwrap_or_default();
    let epoch = match p.get("epoch") {
        Some(Bson::Int32(i)) => Some(i64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i),
        _ => None,
    };
    Ok(Pending {
        task_id,
        due,
        target: parse_target(&obj, "beat_pending.", "")?,
        epoch,
        written_at: bson_time(
            p.get("written_at").unwrap_or(&Bson::Null),
            "beat_pending.written_at",
        )?,
    })
}

fn bson_time(v: &Bson, field: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    match v {
        Bson::Null => Ok(None),
        Bson::DateTime(d) => Ok(Some(from_bson_date(*d))),
        Bson::String(s) => maestro_broker::message::parse_time(s)
            .map(Some)
            .ok_or_else(|| FieldError::value(field, "must be a date")),
        _ => Err(FieldError::value(field, "must be a date")),
    }
}

fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn interval_doc(last: Option<DateTime<Utc>>) -> Document {
        let mut d = doc! {"_id": "s1", "name": "n", "period_type": "interval",
        "interval": {"every": 10, "period": "seconds"}, "task": "maestro.noop"};
        if let Some(l) = last {
            d.insert("last_run_at", to_bson_date(l));
        }
        d
    }

    #[test]
    fn interval_fires_each_slot_within_grace() {
        let s =
            Schedule::from_document(&interval_doc(Some(t("2026-01-01T00:00:00Z")))).expect("valid");
        let grace = Duration::from_secs(5);
        assert_eq!(s.plan(t("2026-01-01T00:00:09Z"), grace), Plan::Wait);
        assert_eq!(
            s.plan(t("2026-01-01T00:00:13Z"), grace),
            Plan::Fire {
                due: t("2026-01-01T00:00:10Z"),
                skipped: 0
            }
        );
    }

    #[test]
    fn a_long_outage_runs_once_for_the_latest_slot() {
        let s =
            Schedule::from_document(&interval_doc(Some(t("2026-01-01T00:00:00Z")))).expect("valid");
        assert_eq!(
            s.plan(t("2026-01-01T00:01:05Z"), Duration::from_secs(5)),
            Plan::Fire {
                due: t("2026-01-01T00:01:00Z"),
                skipped: 5
            }
        );
    }

    #[test]
    fn new_schedules_anchor_or_run_immediately() {
        let s = Schedule::from_document(&interval_doc(None)).expect("valid");
        assert_eq!(s.plan(Utc::now(), Duration::from_secs(5)), Plan::Anchor);
        let mut d = interval_doc(None);
        d.insert("run_immediately", true);
        let s = Schedule::from_document(&d).expect("valid");
        assert!(matches!(
            s.plan(Utc::now(), Duration::from_secs(5)),
            Plan::Fire { skipped: 0, .. }
        ));
        // Set again on a schedule that already ran: fires now, not at its next slot.
        let mut d = interval_doc(Some(t("2026-01-01T00:00:00Z")));
        d.insert("run_immediately", true);
        let s = Schedule::from_document(&d).expect("valid");
        assert_eq!(
            s.plan(t("2026-01-01T00:00:03Z"), Duration::from_secs(5)),
            Plan::Fire {
                due: t("2026-01-01T00:00:03Z"),
                skipped: 0
            }
        );
        let mut d = interval_doc(None);
        d.insert("beat_anchor", to_bson_date(t("2026-01-01T00:00:00Z")));
        let s = Schedule::from_document(&d).expect("valid");
        assert_eq!(
            s.plan(t("2026-01-01T00:00:10Z"), Duration::from_secs(5)),
            Plan::Fire {
                due: t("2026-01-01T00:00:10Z"),
                skipped: 0
            }
        );
    }

    #[test]
    fn cron_in_utc() {
        let d = doc! {"_id": "c", "period_type": "cron", "task": "x",
        "cron": {"minute": "*/15", "hour": "3", "day_of_week": "*"},
        "last_run_at": to_bson_date(t("2026-03-01T03:00:00Z"))};
        let s = Schedule::from_document(&d).expect("valid");
        let grace = Duration::from_secs(5);
        assert_eq!(s.plan(t("2026-03-01T03:14:59Z"), grace), Plan::Wait);
        assert_eq!(
            s.plan(t("2026-03-01T03:15:02Z"), grace),
            Plan::Fire {
                due: t("2026-03-01T03:15:00Z"),
                skipped: 0
            }
        );
        // Next day after a long outage: once, for 03:45, the latest slot.
        assert_eq!(
            s.plan(t("2026-03-01T05:00:00Z"), grace),
            Plan::Fire {
                due: t("2026-03-01T03:45:00Z"),
                skipped: 2
            }
        );
    }

    #[test]
    fn task_ids_are_deterministic_per_slot() {
        let a = task_id("s1", t("2026-01-01T00:00:10Z"));
        assert_eq!(a, task_id("s1", t("2026-01-01T00:00:10Z")));
        assert_ne!(a, task_id("s1", t("2026-01-01T00:00:20Z")));
        assert_ne!(a, task_id("s2", t("2026-01-01T00:00:10Z")));
    }

    #[test]
    fn maestro_key_value_args_become_kwargs() {
        let d = doc! {"_id": "s", "task": "x", "interval": {"every": 1, "period": "minutes"},
        "args": [{"key": "report_id", "value": "r1"}], "kwargs": {"a": 1}};
        let s = Schedule::from_document(&d).expect("valid");
        assert_eq!(s.target.args, json!([]));
        assert_eq!(s.target.kwargs, json!({"a": 1, "report_id": "r1"}));
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (json!([]), "$"),
            (
                json!({"interval": {"every": 1, "period": "seconds"}}),
                "task",
            ),
            (json!({"task": "x"}), "interval"),
            (
                json!({"task": "x", "interval": {"every": 0}}),
                "interval.every",
            ),
            (
                json!({"task": "x", "interval": {"every": 1, "period": "fortnights"}}),
                "interval.period",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "enabled": "yes"}),
                "enabled",
            ),
            (
                json!({"task": "x", "period_type": "cron", "cron": {"minute": "61"}}),
                "cron",
            ),
            (
                json!({"task": "x", "period_type": "cron", "cron": {"hour": []}}),
                "cron.hour",
            ),
            (json!({"task": "x", "period_type": "daily"}), "period_type"),
            (
                json!({"task": "x", "interval": {"every": 1}, "queue": ""}),
                "queue",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "args": {}}),
                "args",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "last_run_at": null}),
                "last_run_at",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "beat_epoch": 3}),
                "beat_epoch",
            ),
            (
                json!({"task": "x", "interval": {"every": 500, "period": "microseconds"}}),
                "interval",
            ),
        ];
        for (doc, field) in cases {
            let err = validate_document(&doc).expect_err(&doc.to_string());
            assert_eq!(err.field, field, "{doc}: {err}");
        }
        // Keys MongoDB would read as paths or operators, at any depth.
        for (doc, field) in [
            (
                json!({"task": "x", "interval": {"every": 1}, "beat_pending.task_id": "t"}),
                "beat_pending.task_id",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "$set": {}}),
                "$set",
            ),
            (
                json!({"task": "x", "interval": {"every": 1}, "kwargs": {"a": [{"$where": "1"}]}}),
                "kwargs.a[0].$where",
            ),
        ] {
            let err = validate_document(&doc).expect_err(&doc.to_string());
            assert_eq!(err.field, field, "{doc}: {err}");
        }
        validate_document(&json!({"name": "nightly", "task": "maestro.report.general",
            "queue": "report", "period_type": "cron",
            "cron": {"minute": "0", "hour": "2", "day_of_month": "*", "month_of_year": "*",
                     "day_of_week": "*"},
            "kwargs": {"report_id": "r"}, "enabled": true, "run_immediately": false}))
        .expect("valid");
    }

    #[test]
    fn schedules_send_only_what_the_routing_table_admits() {
        let routes = crate::routes::maestro();
        let target = |task: &str, queue: Option<&str>| Target {
            task: task.into(),
            queue: queue.map(Into::into),
            args: json!([]),
            kwargs: json!({}),
        };
        let admit =
            |t: &Target, any: bool, diag: bool| admit_target(t, &routes, "celery", any, diag);
        assert_eq!(
            admit(&target("maestro.webhook", None), false, false).expect("ok"),
            "webhook"
        );
        assert_eq!(
            admit(&target("app.job", None), false, false).expect("ok"),
            "celery"
        );
        let e = admit(&target("app.job", Some("celery.pidbox")), false, false).expect_err("pidbox");
        assert_eq!(e.field, "queue");
        assert!(admit(&target("app.job", Some("celery.pidbox")), true, false).is_ok());
        let e = admit(&target("maestro.report.finish", None), true, true).expect_err("internal");
        assert_eq!(e.field, "task");
        let e = admit(&target("celery.chord_unlock", None), true, true).expect_err("internal");
        assert_eq!(e.field, "task");
        assert!(admit(&target("maestro.echo", None), false, false).is_err());
        assert_eq!(
            admit(&target("maestro.echo", Some("report")), false, true).expect("ok"),
            "report"
        );
    }
}
