//! MongoDB errors as task outcomes, decided once for every catalogue task: the server or the
//! network being away, and the server errors MongoDB's drivers call transient, are retried
//! after the worker's backoff; anything else (a bad query, a refused write) fails with the
//! server's words as `OperationFailure`, pymongo's name for it.

use maestro_tasks::TaskError;
use mongodb::error::{Error as MongoError, ErrorKind};

/// Server error codes MongoDB's drivers treat as transient (retryable reads/writes).
const TRANSIENT_CODES: [i32; 15] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    63,    // StaleShardVersion
    150,   // StaleEpoch
];

/// Whether trying again later may succeed.
pub(crate) fn is_transient(e: &MongoError) -> bool {
    (match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        _ => false,
    }) || e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError")
}

/// The task outcome of `e`, met while `doing` something.
pub(crate) fn mongo_error(doing: &str, e: &MongoError) -> TaskError {
    if is_transient(e) {
        TaskError::retry("OperationalError", format!("{doing}: {e}"))
    } else {
        TaskError::fail("OperationFailure", format!("{doing}: {e}"))
    }
}
