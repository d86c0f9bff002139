//! The Redis result backend, in Celery's Redis key layout, so a Python client with
//! `result_backend='redis://host/0'` reads what Rust workers stored:
//! `celery-task-meta-<id>` = `{"status", "result", "traceback", "children", "date_done",
//! "task_id", "group_id"?, "parent_id"?, (extended: "name", "args", "kwargs", "worker",
//! "retries", "queue")}` as JSON, written with an expiry and published on the channel of the same
//! name (Celery's result consumer listens there); groups in `celery-taskset-meta-<gid>` as
//! Celery's `GroupResult.as_tuple()`.
//!
//! A SUCCESS is never overwritten (as Celery's `_store_result` promises): the write is one Lua
//! script that reads the stored status and writes only when it is not SUCCESS, so two workers
//! racing on one id cannot undo each other. The connection is multiplexed (concurrent calls are
//! pipelined on one socket) and reconnects by itself.
//!
//! Chords started by Rust tasks count their members in keys of this project's own
//! (`maestro-chord-members-<gid>`, a set, so a redelivered member counts once, and
//! `maestro-chord-fired-<gid>`); Celery's own Redis chord join (its `.j`/`.t`/`.s` keys and
//! scripts) is not implemented, so the members of a chord a Python client sends with the Redis
//! backend must run on Python workers.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Map, Value, json};

use crate::record::{StoreError, Stored, TaskMeta, TaskRecord, member_ids};
use crate::store::{Backend, StoreFuture};

/// Celery's key prefixes.
pub const TASK_KEY_PREFIX: &str = "celery-task-meta-";
pub const GROUP_KEY_PREFIX: &str = "celery-taskset-meta-";
/// This project's chord and redelivery keys.
const CHORD_MEMBERS_PREFIX: &str = "maestro-chord-members-";
const CHORD_FIRED_PREFIX: &str = "maestro-chord-fired-";
const REDELIVERIES_PREFIX: &str = "maestro-redeliveries-";

/// How long chord counters, fired marks and redelivery counts live when results do not expire.
const BOOKKEEPING_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long a redelivery count lives: it matters while a message is being redelivered.
const REDELIVERY_TTL: Duration = Duration::from_secs(86_400);
/// Redis refuses string values over 512 MiB; Celery refuses them first, at this size.
const VALUE_BYTES_MAX: usize = 512 * 1024 * 1024 - 1;

/// Writes a state unless a SUCCESS is stored: `KEYS[1]` the task key, `ARGV[1]` the JSON,
/// `ARGV[2]` the expiry in seconds (0: none). Returns 1 when written, 0 when a SUCCESS stays.
const STORE_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SETEX', KEYS[1], ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"#;

/// Counts a chord member once: `KEYS[1]` the members set, `ARGV[1]` the member id, `ARGV[2]`
/// the set's expiry. Returns how many members have finished.
const CHORD_SCRIPT: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('SCARD', KEYS[1])
"#;

/// The Redis result store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    expires: Option<Duration>,
    store_script: redis::Script,
    chord_script: redis::Script,
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        let away = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                redis::ErrorKind::Server(
                    redis::ServerErrorKind::BusyLoading
                        | redis::ServerErrorKind::TryAgain
                        | redis::ServerErrorKind::ClusterDown
                        | redis::ServerErrorKind::MasterDown
                        | redis::ServerErrorKind::ReadOnly
                )
            );
        if away {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Refused(e.to_string())
        }
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`, `rediss://` for TLS) and
    /// checks the server answers. `expires`: how long results live; `None` keeps them.
    pub async fn connect(url: &str, expires: Option<Duration>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Url(e.to_string()))?;
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new(client))
            .await
            .map_err(|_| StoreError::Unavailable("Redis: connecting timed out".into()))??;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(Self {
            conn,
            expires,
            store_script: redis::Script::new(STORE_SCRIPT),
            chord_script: redis::Script::new(CHORD_SCRIPT),
        })
    }

    fn bookkeeping_ttl(&self) -> u64 {
        self.expires.unwrap_or(BOOKKEEPING_TTL).as_secs().max(1)
    }

    async fn store(&self, r: &TaskRecord) -> Result<Stored, StoreError> {
        let value = meta_json(r, Utc::now()).to_string();
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::Refused(format!(
                "a result of {} bytes is more than Redis stores",
                value.len()
            )));
        }
        let ttl = self.expires.map_or(0, |d| d.as_secs().max(1));
        let written: i64 = self
            .store_script
            .key(format!("{TASK_KEY_PREFIX}{}", r.id))
            .arg(value)
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if written == 1 {
            Stored::Written
        } else {
            Stored::AlreadySucceeded
        })
    }

    async fn raw(&self, key: String) -> Result<Option<Value>, StoreError> {
        let text: Option<String> = self.conn.clone().get(key).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn get(&self, id: &str) -> Result<Option<TaskMeta>, StoreError> {
        let Some(meta) = self.raw(format!("{TASK_KEY_PREFIX}{id}")).await? else {
            return Ok(None);
        };
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Some(TaskMeta {
            id: id.to_owned(),
            status: text("status").unwrap_or_else(|| "PENDING".into()),
            result: meta.get("result").cloned().unwrap_or(Value::Null),
            traceback: text("traceback"),
            date_done: text("date_done")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            group_id: text("group_id"),
            parent_id: text("parent_id"),
        }))
    }

    async fn has_succeeded(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.get(id).await?.is_some_and(|m| m.status == "SUCCESS"))
    }

    async fn chord_member_done(&self, group: &str, member: &str) -> Result<u64, StoreError> {
        let done: i64 = self
            .chord_script
            .key(format!("{CHORD_MEMBERS_PREFIX}{group}"))
            .arg(member)
            .arg(self.bookkeeping_ttl())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(u64::try_from(done).unwrap_or(0))
    }

    async fn count_redelivered_start(&self, id: &str) -> Result<u64, StoreError> {
        let key = format!("{REDELIVERIES_PREFIX}{id}");
        let (count, _): (i64, bool) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, REDELIVERY_TTL.as_secs() as i64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn chord_fired(&self, group: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .clone()
            .exists(format!("{CHORD_FIRED_PREFIX}{group}"))
            .await?)
    }

    async fn mark_chord_fired(&self, group: &str) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{CHORD_FIRED_PREFIX}{group}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.bookkeeping_ttl())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    async fn save_group(&self, group: &str, members: &[String]) -> Result<(), StoreError> {
        // Celery's GroupResult.as_tuple(): ((group id, parent), [((id, parent), None), ...]).
        let results: Vec<Value> = members.iter().map(|id| json!([[id, null], null])).collect();
        let value = json!({"result": [[group, null], results]}).to_string();
        let key = format!("{GROUP_KEY_PREFIX}{group}");
        let mut conn = self.conn.clone();
        match self.expires {
            Some(ttl) => {
                let () = conn.set_ex(&key, value, ttl.as_secs().max(1)).await?;
            }
            None => {
                let () = conn.set(&key, value).await?;
            }
        }
        Ok(())
    }

    async fn group_members(&self, group: &str) -> Result<Option<Vec<String>>, StoreError> {
        let Some(meta) = self.raw(format!("{GROUP_KEY_PREFIX}{group}")).await? else {
            return Ok(None);
        };
        Ok(meta.get("result").map(group_member_ids))
    }
}

/// How long connecting may take before the store counts as away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The member ids of a saved group: Celery's tuple `[[gid, parent], [[[id, parent], null],
/// ...]]`, or a plain list of ids.
fn group_member_ids(result: &Value) -> Vec<String> {
    match result.as_array().map(Vec::as_slice) {
        Some([Value::Array(head), Value::Array(members)]) if head.len() == 2 => {
            member_ids(&Value::Array(members.clone()))
        }
        _ => member_ids(result),
    }
}

/// Celery's task meta JSON of `r`, stored at `now`.
fn meta_json(r: &TaskRecord, now: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), json!(r.state.as_str()));
    m.insert("result".into(), r.result.clone());
    m.insert("traceback".into(), json!(r.traceback));
    m.insert("children".into(), Value::Array(r.children.clone()));
    m.insert(
        "date_done".into(),
        if r.state.is_ready() {
            json!(now.to_rfc3339_opts(SecondsFormat::Micros, false))
        } else {
            Value::Null
        },
    );
    m.insert("task_id".into(), json!(r.id));
    if let Some(g) = &r.group_id {
        m.insert("group_id".into(), json!(g));
    }
    if let Some(p) = &r.parent_id {
        m.insert("parent_id".into(), json!(p));
    }
    // Celery's extended fields, where the worker gives them (the arguments only with
    // result_extended).
    for (key, value) in [
        ("name", &r.name),
        ("worker", &r.worker),
        ("queue", &r.queue),
    ] {
        if let Some(v) = value {
            m.insert(key.into(), json!(v));
        }
    }
    if let Some(args) = &r.args {
        m.insert("args".into(), args.clone());
        m.insert("kwargs".into(), r.kwargs.clone().unwrap_or(json!({})));
        m.insert("retries".into(), json!(r.retries));
    }
    Value::Object(m)
}

impl Backend for RedisStore {
    fn store<'a>(&'a self, record: &'a TaskRecord) -> StoreFuture<'a, Stored> {
        Box::pin(Self::store(self, record))
    }
    fn has_succeeded<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(Self::has_succeeded(self, id))
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskMeta>> {
        Box::pin(Self::get(self, id))
    }
    fn chord_member_done<'a>(&'a self, group: &'a str, member: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(Self::chord_member_done(self, group, member))
    }
    fn count_redelivered_start<'a>(&'a self, id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(Self::count_redelivered_start(self, id))
    }
    fn chord_fired<'a>(&'a self, group: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(Self::chord_fired(self, group))
    }
    fn mark_chord_fired<'a>(&'a self, group: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(Self::mark_chord_fired(self, group))
    }
    fn save_group<'a>(&'a self, group: &'a str, members: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(Self::save_group(self, group, members))
    }
    fn group_members<'a>(&'a self, group: &'a str) -> StoreFuture<'a, Option<Vec<String>>> {
        Box::pin(Self::group_members(self, group))
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_broker::TaskState;

    #[test]
    fn task_meta_is_celerys() {
        let mut r = TaskRecord::new("t1", TaskState::Success, json!({"n": 1}));
        r.group_id = Some("g".into());
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let m = meta_json(&r, now);
        assert_eq!(m["status"], "SUCCESS");
        assert_eq!(m["result"], json!({"n": 1}));
        assert_eq!(m["task_id"], "t1");
        assert_eq!(m["group_id"], "g");
        assert_eq!(m["children"], json!([]));
        assert_eq!(m["traceback"], Value::Null);
        // What Python's datetime.isoformat() writes for an aware UTC time.
        assert_eq!(m["date_done"], "2026-12-07T10:00:00.000000+00:00");
        assert!(m.get("args").is_none(), "arguments only when stored");
        let started = meta_json(&TaskRecord::new("t2", TaskState::Started, json!({})), now);
        assert_eq!(started["date_done"], Value::Null);
    }

    #[test]
    fn groups_read_both_layouts() {
        let celery = json!([["g", null], [[["a", null], null], [["b", null], null]]]);
        assert_eq!(group_member_ids(&celery), ["a", "b"]);
        assert_eq!(group_member_ids(&json!(["a", "b"])), ["a", "b"]);
    }
}
