//! Task results where Python Celery clients read them: Celery's MongoDB backend layout
//! (`mongodb` feature) and its Redis key layout (`redis` feature), behind one store.
//!
//! - `record`  what is stored: a state record, what a write did, the state read back, errors
//! - `store`   [`ResultStore`]: the backend a URL names, one facade over the backends
//! - `mongo`   the MongoDB backend: task and group results, chord counters, batched writes
//! - `redis`   the Redis backend: Celery's keys, written by one script that keeps a SUCCESS
//! - `convert` JSON to BSON and back, with pymongo's integer rules (`mongodb` feature)

#[cfg(feature = "mongodb")]
mod convert;
#[cfg(feature = "mongodb")]
mod mongo;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod store;

#[cfg(feature = "mongodb")]
pub use convert::{bson_to_json, json_to_bson};
#[cfg(feature = "mongodb")]
pub use mongo::{
    CHORDMETA, DEFAULT_DATABASE, GROUPMETA, MongoStore, TASKMETA, TTL_INDEX, is_transient,
    parse_backend_url,
};
pub use record::{
    BATCH_MAX, StoreError, Stored, TRANSIENT_CODES, TaskMeta, TaskRecord, member_ids,
};
#[cfg(feature = "redis")]
pub use redis::{GROUP_KEY_PREFIX, RedisStore, TASK_KEY_PREFIX};
pub use store::{ResultStore, SCHEMES, is_store_url};
