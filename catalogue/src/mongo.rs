//! MongoDB errors as task outcomes, decided once for every catalogue task: the server or the
//! network being away, and the server errors MongoDB's drivers call transient, are retried
//! after the worker's backoff; anything else (a bad query, a refused write) fails with the
//! server's words as `OperationFailure`, pymongo's name for it.

use maestro_tasks::TaskError;
use mongodb::error::Error as MongoError;

/// Whether trying again later may succeed: the one classification of the project
/// (`maestro_results::is_transient`).
pub(crate) fn is_transient(e: &MongoError) -> bool {
    maestro_results::is_transient(e)
}

/// The task outcome of `e`, met while `doing` something.
pub(crate) fn mongo_error(doing: &str, e: &MongoError) -> TaskError {
    if is_transient(e) {
        TaskError::retry("OperationalError", format!("{doing}: {e}"))
    } else {
        TaskError::fail("OperationFailure", format!("{doing}: {e}"))
    }
}
