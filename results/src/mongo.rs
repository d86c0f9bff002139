//! The MongoDB result backend, in Celery's MongoDB backend layout, so a Python client with
//! `result_backend='mongodb://host/db'` reads what Rust workers stored:
//! `celery_taskmeta {_id, status, result: JSON text, traceback, children, date_done, name, args,
//! kwargs, worker, retries, queue, group_id?, parent_id?}` (the extended fields too, since a
//! client with `result_extended` reads them).
//!
//! Writes are batched: every caller awaits its own write, and a writer task sends whatever is
//! waiting as one multi-statement `update` command (no added latency when idle, one round trip
//! per batch under load). A SUCCESS is never overwritten: every upsert filters on
//! `status != SUCCESS`, so against a stored SUCCESS it fails with a duplicate key (E11000),
//! reported as `Stored::AlreadySucceeded`. "Has this id succeeded?" lookups are batched the same
//! way into one `$in` query.
//!
//! Results expire through a TTL index on a field of their own, `expires_at` (set on ready
//! states), not on `date_done`: Celery's MongoDB backend creates a plain `date_done_1` index on
//! every client, and a TTL index of that name makes those clients fail (IndexKeySpecsConflict).

use std::time::Duration;

use chrono::DateTime;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{
    Acknowledgment, ClientOptions, CollectionOptions, IndexOptions, WriteConcern,
};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::convert::json_to_bson;
use crate::record::{
    BATCH_MAX, StoreError, Stored, TRANSIENT_CODES, TaskMeta, TaskRecord, member_ids,
};
use crate::store::{Backend, StoreFuture};

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Refused(e.to_string())
        }
    }
}

/// Celery's collection names.
pub const TASKMETA: &str = "celery_taskmeta";
pub const GROUPMETA: &str = "celery_groupmeta";
/// Chord counters (this project's own collection).
pub const CHORDMETA: &str = "maestro_chordmeta";
/// How often each redelivered task id was started (the poison-message limit).
pub(crate) const REDELIVERIES: &str = "maestro_redeliveries";
/// Celery's default database for the MongoDB backend.
pub const DEFAULT_DATABASE: &str = "celery";
/// The TTL index on `expires_at`.
pub const TTL_INDEX: &str = "maestro_expires_at_ttl";
/// Waiting writes and lookups before callers wait for room.
const QUEUE_DEPTH: usize = 4096;

/// Whether trying a MongoDB operation again later may succeed: the network or the server was
/// away, or the server's error is one MongoDB's drivers call transient.
pub fn is_transient(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    (match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => true,
        _ => false,
    }) || e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError")
}

type WriteReply = oneshot::Sender<Result<Stored, StoreError>>;
type ReadReply = oneshot::Sender<Result<bool, StoreError>>;
type CountReply = oneshot::Sender<Result<u64, StoreError>>;

/// The MongoDB result store. Cheap to clone.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    /// The write concern of the chord and group bookkeeping: the results' own (a counted
    /// member or a `fired` mark rolled back by a failover would leave a chord unfired, or
    /// fire it twice).
    bookkeeping: Option<WriteConcern>,
    expires: Option<Duration>,
    taskmeta: Collection<Document>,
    writes: mpsc::Sender<(Document, WriteReply)>,
    reads: mpsc::Sender<(String, ReadReply)>,
    counts: mpsc::Sender<(String, CountReply)>,
}

/// Splits a Celery backend URL into the MongoDB URI and the database (the URL's path, else
/// `celery`).
pub async fn parse_backend_url(url: &str) -> Result<(ClientOptions, String), StoreError> {
    let options = ClientOptions::parse(url)
        .await
        .map_err(|e| StoreError::Url(e.to_string()))?;
    let database = options
        .default_database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.into());
    Ok((options, database))
}

impl MongoStore {
    /// Connects, checks the server answers, and makes the TTL index on `expires_at`.
    /// `expires`: how long ready results live; `None` keeps them.
    pub async fn connect(url: &str, expires: Option<Duration>) -> Result<Self, StoreError> {
        let (mut options, database) = parse_backend_url(url).await?;
        options
            .app_name
            .get_or_insert_with(|| "maestro-workers".into());
        options
            .server_selection_timeout
            .get_or_insert(Duration::from_secs(10));
        let url_concern = options.write_concern.clone();
        let client = Client::with_options(options)?;
        let db = client.database(&database);
        // `hello` both checks the server answers and says whether it is a replica set member
        // (for the write concern): one round trip at start-up.
        let hello = db.run_command(doc! {"hello": 1}).await?;
        let concern = write_concern(url_concern.as_ref(), hello.contains_key("setName"));
        let taskmeta = db.collection::<Document>(TASKMETA);
        let index = IndexOptions::builder()
            .name(Some(TTL_INDEX.to_owned()))
            .expire_after(Some(Duration::ZERO))
            .build();
        let model = IndexModel::builder()
            .keys(doc! {"expires_at": 1})
            .options(index)
            .build();
        if let Err(e) = taskmeta.create_index(model).await {
            warn!(event = "result_index_failed", error = %e, "results will not expire by TTL");
        }
        // Redelivery counts matter while a message is being redelivered: a day is plenty. Made
        // in the background: a worker need not wait for it to start.
        let counts = IndexModel::builder()
            .keys(doc! {"at": 1})
            .options(
                IndexOptions::builder()
                    .name(Some("maestro_redeliveries_ttl".to_owned()))
                    .expire_after(Some(Duration::from_secs(86_400)))
                    .build(),
            )
            .build();
        let redeliveries = db.collection::<Document>(REDELIVERIES);
        tokio::spawn(async move {
            if let Err(e) = redeliveries.create_index(counts).await {
                warn!(event = "redeliveries_index_failed", error = %e, "redelivery counts are kept");
            }
        });
        let (writes, write_rx) = mpsc::channel(QUEUE_DEPTH);
        let (reads, read_rx) = mpsc::channel(QUEUE_DEPTH);
        let (counts, count_rx) = mpsc::channel(QUEUE_DEPTH);
        let command_concern = concern.as_ref().and_then(concern_document);
        tokio::spawn(count_loop(db.clone(), count_rx));
        tokio::spawn(write_loop(db.clone(), command_concern, write_rx));
        tokio::spawn(read_loop(taskmeta.clone(), read_rx));
        Ok(Self {
            db,
            bookkeeping: concern,
            expires,
            taskmeta,
            writes,
            reads,
            counts,
        })
    }

    /// A bookkeeping collection, written with the results' write concern.
    fn durable(&self, name: &str) -> Collection<Document> {
        let mut options = CollectionOptions::default();
        options.write_concern = self.bookkeeping.clone();
        self.db.collection_with_options(name, options)
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Stores one state (batched with concurrent writes).
    pub async fn store(&self, record: &TaskRecord) -> Result<Stored, StoreError> {
        let (tx, rx) = oneshot::channel();
        let statement = update_statement(record, self.expires);
        self.writes
            .send((statement, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether a SUCCESS is stored for `id` (batched with concurrent lookups).
    pub async fn has_succeeded(&self, id: &str) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send((id.to_owned(), tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The stored state of `id`, or `None` (PENDING: unknown).
    pub async fn get(&self, id: &str) -> Result<Option<TaskMeta>, StoreError> {
        let d = self.taskmeta.find_one(doc! {"_id": id}).await?;
        Ok(d.map(|d| task_meta(id, &d)))
    }

    /// The stored states of `ids`, in their order: one `$in` query per [`GET_MANY_IDS`] ids
    /// instead of one query per id (a chord's callback reads every member's result).
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<TaskMeta>>, StoreError> {
        use futures_util::TryStreamExt;
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for part in ids.chunks(GET_MANY_IDS) {
            let docs: Vec<Document> = self
                .taskmeta
                .find(doc! {"_id": {"$in": part}})
                .batch_size(u32::try_from(part.len()).unwrap_or(u32::MAX))
                .await?
                .try_collect()
                .await?;
            for d in docs {
                if let Ok(id) = d.get_str("_id") {
                    found.insert(id.to_owned(), d);
                }
            }
        }
        Ok(ids
            .iter()
            .map(|id| found.get(id).map(|d| task_meta(id, d)))
            .collect())
    }

    /// Counts one finished member of chord `group_id` and returns how many have finished. One
    /// atomic `$inc` per member: the member that reads the chord's size fires the callback, so
    /// it fires exactly once, with no polling task.
    pub async fn chord_member_done(
        &self,
        group_id: &str,
        member_id: &str,
    ) -> Result<u64, StoreError> {
        let chords = self.durable(CHORDMETA);
        // Count this member where it is not counted yet: a conditional update without upsert,
        // so counting has no duplicate-key path, and the counter's new value is this member's
        // own. Nothing matched means the counter does not exist yet (the first member to
        // finish) or this member was counted before (a redelivery after a crash, maybe before
        // the callback went out). Then the counter is made if missing (an upsert that only sets
        // on insert; members racing to make it are all fine) and the count tried once more; a
        // member counted before is not counted again but learns the count, so it can still
        // fire the callback. One command per member, three for the first.
        let count = || {
            chords
                .find_one_and_update(
                    doc! {"_id": group_id, "members": {"$ne": member_id}},
                    doc! {"$inc": {"done": 1_i64}, "$push": {"members": member_id}},
                )
                .return_document(mongodb::options::ReturnDocument::After)
        };
        if let Some(d) = count().await? {
            return Ok(done_count(&d));
        }
        let created = chords
            .update_one(
                doc! {"_id": group_id},
                doc! {"$setOnInsert": {"done": 0_i64, "members": [], "created": bson::DateTime::now()}},
            )
            .upsert(true)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let d = match count().await? {
            Some(d) => Some(d),
            None => chords.find_one(doc! {"_id": group_id}).await?,
        };
        Ok(d.map_or(0, |d| done_count(&d)))
    }

    /// Counts one more start of redelivered task `id`; the count so far.
    pub async fn count_redelivered_start(&self, id: &str) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.counts
            .send((id.to_owned(), tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether a chord's callback was sent ([`mark_chord_fired`](Self::mark_chord_fired)).
    pub async fn chord_fired(&self, group_id: &str) -> Result<bool, StoreError> {
        let chords = self.db.collection::<Document>(CHORDMETA);
        Ok(chords
            .find_one(doc! {"_id": group_id, "fired": true})
            .projection(doc! {"_id": 1})
            .await?
            .is_some())
    }

    /// Records that a chord's callback was sent (after it was: a crash before this leaves the
    /// chord to be fired again, with the callback's fixed id); true for the first caller.
    pub async fn mark_chord_fired(&self, group_id: &str) -> Result<bool, StoreError> {
        let chords = self.durable(CHORDMETA);
        let r = chords
            .update_one(
                doc! {"_id": group_id, "fired": {"$ne": true}},
                doc! {"$set": {"fired": true}},
            )
            .await?;
        Ok(r.modified_count == 1)
    }

    /// Saves a group's member ids in `celery_groupmeta` as Celery's `GroupResult.save()` does.
    pub async fn save_group(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<(), StoreError> {
        let groups = self.durable(GROUPMETA);
        let result = serde_json::to_string(member_ids).unwrap_or_else(|_| "[]".into());
        groups
            .replace_one(
                doc! {"_id": group_id},
                doc! {"_id": group_id, "result": result, "date_done": bson::DateTime::now()},
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// The member ids of group `group_id` as the client saved them (`celery_groupmeta`).
    pub async fn group_members(&self, group_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let groups = self.db.collection::<Document>(GROUPMETA);
        let Some(d) = groups.find_one(doc! {"_id": group_id}).await? else {
            return Ok(None);
        };
        let ids = match d.get("result") {
            Some(Bson::String(s)) => serde_json::from_str::<Value>(s).ok(),
            _ => None,
        };
        Ok(ids.map(|v| member_ids(&v)))
    }
}

impl Backend for MongoStore {
    fn store<'a>(&'a self, record: &'a TaskRecord) -> StoreFuture<'a, Stored> {
        Box::pin(Self::store(self, record))
    }
    fn has_succeeded<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(Self::has_succeeded(self, id))
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskMeta>> {
        Box::pin(Self::get(self, id))
    }
    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<TaskMeta>>> {
        Box::pin(Self::get_many(self, ids))
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
            self.db.run_command(doc! {"ping": 1}).await?;
            Ok(())
        })
    }
    fn mongo_database(&self) -> Option<&Database> {
        Some(&self.db)
    }
}

/// Ids per query of [`MongoStore::get_many`] (each query asks for them in one reply batch: a
/// chord's members' results are a few hundred bytes each).
const GET_MANY_IDS: usize = 1_000;

/// A stored `celery_taskmeta` document as a [`TaskMeta`].
fn task_meta(id: &str, d: &Document) -> TaskMeta {
    let text = |k: &str| d.get_str(k).ok().map(str::to_owned);
    let result = match d.get("result") {
        Some(Bson::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        _ => Value::Null,
    };
    TaskMeta {
        id: id.to_owned(),
        status: text("status").unwrap_or_else(|| "PENDING".into()),
        result,
        traceback: text("traceback"),
        date_done: d
            .get_datetime("date_done")
            .ok()
            .and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis())),
        group_id: text("group_id"),
        parent_id: text("parent_id"),
    }
}

/// A chord counter's `done`, as written by this worker (Int64) or another client (Int32).
fn done_count(d: &Document) -> u64 {
    d.get_i64("done")
        .or_else(|_| d.get_i32("done").map(i64::from))
        .unwrap_or(0)
        .max(0) as u64
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    e.to_string().contains("E11000")
}

fn update_statement(r: &TaskRecord, expires: Option<Duration>) -> Document {
    let mut set = doc! {
        "status": r.state.as_str(),
        "result": serde_json::to_string(&r.result).unwrap_or_else(|_| "null".into()),
        "traceback": r.traceback.clone().map_or(Bson::Null, Bson::String),
        "children": Bson::Array(r.children.iter().map(json_to_bson).collect()),
        "date_done": if r.state.is_ready() { Bson::DateTime(bson::DateTime::now()) } else { Bson::Null },
        "retries": i64::from(r.retries),
    };
    let opt = |v: &Option<String>| v.clone().map_or(Bson::Null, Bson::String);
    set.insert("name", opt(&r.name));
    set.insert("worker", opt(&r.worker));
    set.insert("queue", opt(&r.queue));
    set.insert(
        "args",
        r.args.as_ref().map_or(Bson::Array(vec![]), json_to_bson),
    );
    set.insert(
        "kwargs",
        r.kwargs
            .as_ref()
            .map_or(Bson::Document(Document::new()), json_to_bson),
    );
    if let (Some(ttl), true) = (expires, r.state.is_ready()) {
        let at = bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis() + ttl.as_millis() as i64,
        );
        set.insert("expires_at", at);
    }
    if let Some(g) = &r.group_id {
        set.insert("group_id", g.clone());
    }
    if let Some(p) = &r.parent_id {
        set.insert("parent_id", p.clone());
    }
    doc! {
        "q": {"_id": &r.id, "status": {"$ne": "SUCCESS"}},
        "u": {"$set": set},
        "upsert": true,
    }
}

/// Largest `update` command sent at once, bytes: MongoDB refuses commands over 16 MiB, so a
/// batch of large results goes as several.
const COMMAND_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The write concern of result writes: the URL's (`?w=majority&journal=true`) when it names
/// one, else majority with journaling where the server is a replica set member (a SUCCESS
/// acknowledged by a primary alone can be rolled back by a failover), else the server's default.
fn write_concern(from_url: Option<&WriteConcern>, replica_set: bool) -> Option<WriteConcern> {
    if let Some(wc) = from_url {
        return concern_document(wc).is_some().then(|| wc.clone());
    }
    replica_set.then(|| {
        WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .build()
    })
}

/// A write concern as a command's `writeConcern` field; `None` when it sets nothing.
fn concern_document(wc: &WriteConcern) -> Option<Document> {
    bson::to_document(wc).ok().filter(|d| !d.is_empty())
}

async fn write_loop(
    db: Database,
    concern: Option<Document>,
    mut rx: mpsc::Receiver<(Document, WriteReply)>,
) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let mut rest: Vec<(Document, WriteReply)> = std::mem::take(&mut batch);
        while !rest.is_empty() {
            // As many statements as fit in one command (at least one).
            let mut bytes = 0;
            let split = rest
                .iter()
                .position(|(d, _)| {
                    bytes += bson::to_vec(d).map_or(0, |v| v.len());
                    bytes > COMMAND_BYTES_MAX
                })
                .map_or(rest.len(), |p| p.max(1));
            let tail = rest.split_off(split);
            write_batch(&db, concern.as_ref(), std::mem::replace(&mut rest, tail)).await;
        }
    }
}

/// One `update` command for `batch`, each caller told how its statement went.
async fn write_batch(
    db: &Database,
    concern: Option<&Document>,
    batch: Vec<(Document, WriteReply)>,
) {
    let (statements, replies): (Vec<Document>, Vec<WriteReply>) = batch.into_iter().unzip();
    let mut command = doc! {"update": TASKMETA, "updates": statements, "ordered": false};
    if let Some(wc) = concern {
        command.insert("writeConcern", wc.clone());
    }
    match db.run_command(command).await {
        Ok(reply) => {
            // A write concern not met: the writes may not survive a failover; try again.
            let concern_error = reply.get_document("writeConcernError").ok().map(|e| {
                e.get_str("errmsg")
                    .unwrap_or("write concern not met")
                    .to_owned()
            });
            let mut outcome: Vec<Result<Stored, StoreError>> = (0..replies.len())
                .map(|_| match &concern_error {
                    Some(text) => Err(StoreError::Unavailable(format!("write concern: {text}"))),
                    None => Ok(Stored::Written),
                })
                .collect();
            if let Ok(errors) = reply.get_array("writeErrors") {
                for e in errors.iter().filter_map(Bson::as_document) {
                    let index = e.get_i32("index").map(|i| i as usize).unwrap_or(usize::MAX);
                    let code = e.get_i32("code").unwrap_or(0);
                    if let Some(slot) = outcome.get_mut(index) {
                        let text = e.get_str("errmsg").unwrap_or("write error").to_owned();
                        *slot = if code == 11000 {
                            Ok(Stored::AlreadySucceeded)
                        } else if TRANSIENT_CODES.contains(&code) {
                            Err(StoreError::Unavailable(text))
                        } else {
                            Err(StoreError::Refused(format!("{text} (code {code})")))
                        };
                    }
                }
            }
            for (reply, result) in replies.into_iter().zip(outcome) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            let err = StoreError::from(e);
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

/// Counts redelivered starts in batches: the redeliveries after a worker dies come together,
/// and one `update` of many upserts plus one read of the counts costs the server two commands,
/// not two per message.
async fn count_loop(db: Database, mut rx: mpsc::Receiver<(String, CountReply)>) {
    use futures_util::TryStreamExt;
    let coll = db.collection::<Document>(REDELIVERIES);
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let now = bson::DateTime::now();
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        // The same id twice in one batch is counted twice, as two deliveries would be.
        let updates: Vec<Document> = ids
            .iter()
            .map(|id| {
                doc! {"q": {"_id": id}, "u": {"$inc": {"starts": 1_i64}, "$set": {"at": now}},
                "upsert": true}
            })
            .collect();
        let counted = async {
            let reply = db
                .run_command(doc! {"update": REDELIVERIES, "updates": updates, "ordered": false})
                .await?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && !errors.is_empty()
            {
                return Err(StoreError::Refused(format!("{errors:?}")));
            }
            let found: Vec<Document> = coll
                .find(doc! {"_id": {"$in": &ids}})
                .await?
                .try_collect()
                .await?;
            Ok(found
                .into_iter()
                .filter_map(|d| {
                    let n = d
                        .get_i64("starts")
                        .ok()
                        .or_else(|| d.get_i32("starts").ok().map(i64::from))?;
                    Some((d.get_str("_id").ok()?.to_owned(), n as u64))
                })
                .collect::<std::collections::HashMap<_, _>>())
        }
        .await;
        for (id, reply) in batch.drain(..) {
            let _ = reply.send(match &counted {
                Ok(counts) => Ok(counts.get(&id).copied().unwrap_or(1)),
                Err(e) => Err(e.clone()),
            });
        }
    }
}

async fn read_loop(taskmeta: Collection<Document>, mut rx: mpsc::Receiver<(String, ReadReply)>) {
    use futures_util::TryStreamExt;
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let found = async {
            let cursor = taskmeta
                .find(doc! {"_id": {"$in": &ids}, "status": "SUCCESS"})
                .projection(doc! {"_id": 1})
                .await?;
            let docs: Vec<Document> = cursor.try_collect().await?;
            Ok::<_, mongodb::error::Error>(
                docs.iter()
                    .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
                    .collect::<std::collections::HashSet<_>>(),
            )
        }
        .await;
        match found {
            Ok(succeeded) => {
                for (id, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(succeeded.contains(&id)));
                }
            }
            Err(e) => {
                let err = StoreError::from(e);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_broker::TaskState;
    use serde_json::json;

    #[test]
    fn json_becomes_bson_as_pymongo_writes_it() {
        assert_eq!(json_to_bson(&json!(5)), Bson::Int32(5));
        assert_eq!(json_to_bson(&json!(1i64 << 40)), Bson::Int64(1 << 40));
        assert_eq!(json_to_bson(&json!(1.5)), Bson::Double(1.5));
        let big: Value = serde_json::from_str("123456789012345678901234567890").expect("json");
        assert_eq!(
            json_to_bson(&big),
            Bson::String("123456789012345678901234567890".into())
        );
        assert_eq!(
            json_to_bson(&json!({"a": [null, true]})),
            Bson::Document(doc! {"a": [Bson::Null, true]})
        );
    }

    #[test]
    fn group_member_ids_read_both_layouts() {
        assert_eq!(member_ids(&json!(["a", "b"])), ["a", "b"]);
        assert_eq!(
            member_ids(&json!([[["a", null], null], [["b", null], null]])),
            ["a", "b"]
        );
    }

    #[test]
    fn the_results_write_concern_is_sent_as_chosen() {
        // Result writes send it as a command field; the chord and group bookkeeping uses the
        // same value as a collection option.
        let majority = write_concern(None, true).expect("majority on a replica set");
        assert_eq!(
            concern_document(&majority),
            Some(doc! {"w": "majority", "j": true})
        );
        let from_url = WriteConcern::builder().w(Acknowledgment::Nodes(1)).build();
        let chosen = write_concern(Some(&from_url), true).expect("the URL's");
        assert_eq!(chosen.w, Some(Acknowledgment::Nodes(1)));
        assert_eq!(concern_document(&chosen), Some(doc! {"w": 1}));
        assert!(write_concern(Some(&WriteConcern::default()), true).is_none());
        assert!(write_concern(None, false).is_none());
    }

    #[test]
    fn a_success_is_protected_by_the_filter() {
        let r = TaskRecord::new("t", TaskState::Failure, json!(null));
        let s = update_statement(&r, None);
        assert_eq!(
            s.get_document("q").expect("q"),
            &doc! {"_id": "t", "status": {"$ne": "SUCCESS"}}
        );
        assert!(s.get_bool("upsert").expect("upsert"));
    }
}
