//! [`ResultStore`]: where a worker records task states, whichever backend holds them. One
//! facade over the backends this build has (`mongodb://` with the `mongodb` feature, `redis://`
//! with `redis`), chosen by the URL's scheme.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{StoreError, Stored, TaskMeta, TaskRecord};

/// The boxed future of a backend operation.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What a result backend does (see [`ResultStore`] for each operation).
pub(crate) trait Backend: Send + Sync + 'static {
    fn store<'a>(&'a self, record: &'a TaskRecord) -> StoreFuture<'a, Stored>;
    fn has_succeeded<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskMeta>>;
    /// Many ids' states, in order; one `get` each unless the backend reads them at once.
    fn get_many<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<Option<TaskMeta>>> {
        Box::pin(async move {
            let mut metas = Vec::with_capacity(ids.len());
            for id in ids {
                metas.push(self.get(id).await?);
            }
            Ok(metas)
        })
    }
    fn chord_member_done<'a>(&'a self, group: &'a str, member: &'a str) -> StoreFuture<'a, u64>;
    fn count_redelivered_start<'a>(&'a self, id: &'a str) -> StoreFuture<'a, u64>;
    fn chord_fired<'a>(&'a self, group: &'a str) -> StoreFuture<'a, bool>;
    fn mark_chord_fired<'a>(&'a self, group: &'a str) -> StoreFuture<'a, bool>;
    fn save_group<'a>(&'a self, group: &'a str, members: &'a [String]) -> StoreFuture<'a, ()>;
    fn group_members<'a>(&'a self, group: &'a str) -> StoreFuture<'a, Option<Vec<String>>>;
    fn ping(&self) -> StoreFuture<'_, ()>;
    #[cfg(feature = "mongodb")]
    fn mongo_database(&self) -> Option<&mongodb::Database> {
        None
    }
}

/// The result store: task states, group members, chord counters. Cheap to clone.
#[derive(Clone)]
pub struct ResultStore {
    backend: Arc<dyn Backend>,
}

/// The backends this build can use, for error messages.
pub const SCHEMES: &str = {
    #[cfg(all(feature = "mongodb", feature = "redis"))]
    {
        "mongodb://, redis://"
    }
    #[cfg(all(feature = "mongodb", not(feature = "redis")))]
    {
        "mongodb://"
    }
    #[cfg(all(not(feature = "mongodb"), feature = "redis"))]
    {
        "redis://"
    }
    #[cfg(not(any(feature = "mongodb", feature = "redis")))]
    {
        "none (built without the mongodb and redis features)"
    }
};

/// Whether this build has the backend `url` names (by its scheme).
pub fn is_store_url(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    (cfg!(feature = "mongodb") && matches!(scheme, "mongodb" | "mongodb+srv"))
        || (cfg!(feature = "redis") && matches!(scheme, "redis" | "rediss"))
}

impl ResultStore {
    /// Connects to the backend `url` names and checks it answers. `expires`: how long ready
    /// results live; `None` keeps them.
    pub async fn connect(url: &str, expires: Option<Duration>) -> Result<Self, StoreError> {
        Ok(Self {
            backend: open(url, expires).await?,
        })
    }

    /// Stores one state. A SUCCESS already stored for the id is never overwritten
    /// ([`Stored::AlreadySucceeded`]).
    pub async fn store(&self, record: &TaskRecord) -> Result<Stored, StoreError> {
        self.backend.store(record).await
    }

    /// Whether a SUCCESS is stored for `id`.
    pub async fn has_succeeded(&self, id: &str) -> Result<bool, StoreError> {
        self.backend.has_succeeded(id).await
    }

    /// The stored state of `id`, or `None` (PENDING: unknown).
    pub async fn get(&self, id: &str) -> Result<Option<TaskMeta>, StoreError> {
        self.backend.get(id).await
    }

    /// The stored states of `ids`, in their order (`None`: unknown).
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<TaskMeta>>, StoreError> {
        self.backend.get_many(ids).await
    }

    /// Counts one finished member of chord `group` (a member counted before is not counted
    /// again) and returns how many have finished: the member that reads the chord's size
    /// fires the callback.
    pub async fn chord_member_done(&self, group: &str, member: &str) -> Result<u64, StoreError> {
        self.backend.chord_member_done(group, member).await
    }

    /// Counts one more start of redelivered task `id`; the count so far.
    pub async fn count_redelivered_start(&self, id: &str) -> Result<u64, StoreError> {
        self.backend.count_redelivered_start(id).await
    }

    /// Whether a chord's callback was sent ([`mark_chord_fired`](Self::mark_chord_fired)).
    pub async fn chord_fired(&self, group: &str) -> Result<bool, StoreError> {
        self.backend.chord_fired(group).await
    }

    /// Records that a chord's callback was sent (after it was); true for the first caller.
    pub async fn mark_chord_fired(&self, group: &str) -> Result<bool, StoreError> {
        self.backend.mark_chord_fired(group).await
    }

    /// Saves a group's member ids as Celery's `GroupResult.save()` does.
    pub async fn save_group(&self, group: &str, members: &[String]) -> Result<(), StoreError> {
        self.backend.save_group(group, members).await
    }

    /// The member ids of `group` as its client saved them.
    pub async fn group_members(&self, group: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.backend.group_members(group).await
    }

    /// Checks the backend answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// The MongoDB database, when the backend is MongoDB (tests drop it).
    #[cfg(feature = "mongodb")]
    pub fn mongo_database(&self) -> Option<&mongodb::Database> {
        self.backend.mongo_database()
    }
}

/// The backend `url` names, connected.
async fn open(url: &str, expires: Option<Duration>) -> Result<Arc<dyn Backend>, StoreError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    #[cfg(feature = "mongodb")]
    if matches!(scheme, "mongodb" | "mongodb+srv") {
        return Ok(Arc::new(
            crate::mongo::MongoStore::connect(url, expires).await?,
        ));
    }
    #[cfg(feature = "redis")]
    if matches!(scheme, "redis" | "rediss") {
        return Ok(Arc::new(
            crate::redis::RedisStore::connect(url, expires).await?,
        ));
    }
    let _ = expires;
    Err(StoreError::Url(format!(
        "the scheme {scheme:?} is not a result backend of this build ({SCHEMES})"
    )))
}

impl maestro_broker::client::GroupStore for ResultStore {
    async fn save_group(&self, group_id: &str, member_ids: &[String]) -> Result<(), String> {
        ResultStore::save_group(self, group_id, member_ids)
            .await
            .map_err(|e| e.to_string())
    }
}
