//! Results in MongoDB, in Celery's MongoDB backend layout, so Python clients with
//! `result_backend='mongodb://host/db'` read what Rust workers store.
//!
//! - `store`   the result store: task and group results, chord counters, batched writes
//! - `convert` JSON to BSON and back, with pymongo's integer rules

mod convert;
mod store;

pub use convert::{bson_to_json, json_to_bson};
pub use store::{
    BATCH_MAX, CHORDMETA, DEFAULT_DATABASE, GROUPMETA, ResultStore, StoreError, Stored, TASKMETA,
    TRANSIENT_CODES, TTL_INDEX, TaskMeta, TaskRecord, is_transient, member_ids, parse_backend_url,
};
