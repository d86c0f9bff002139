//! Errors of the message plane.

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker URL {url:?} is invalid: {reason}")]
    Url { url: String, reason: String },
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error(
        "the broker refused the message (nack) for exchange {exchange:?}, routing key {routing_key:?}"
    )]
    Nacked {
        exchange: String,
        routing_key: String,
    },
    #[error(
        "no queue is bound for exchange {exchange:?}, routing key {routing_key:?}: the message was returned"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("publisher confirms were not enabled on the publishing channel")]
    ConfirmsOff,
    #[error("topology of {name:?} conflicts with what exists on the broker: {reason}")]
    Topology { name: String, reason: String },
    #[error("connecting to {url} took longer than {secs} s")]
    ConnectTimeout { url: String, secs: u64 },
}

impl BrokerError {
    /// Whether trying again (after reconnecting) may succeed. A refused or unroutable message
    /// will be refused again; a lost connection will not be lost forever.
    pub fn is_retryable(&self) -> bool {
        match self {
            BrokerError::Amqp(e) => !matches!(e.kind(), lapin::ErrorKind::AuthProviderError(_)),
            BrokerError::Nacked { .. } | BrokerError::ConnectTimeout { .. } => true,
            BrokerError::Url { .. }
            | BrokerError::Unroutable { .. }
            | BrokerError::ConfirmsOff
            | BrokerError::Topology { .. } => false,
        }
    }

    /// Whether the broker closed the channel because a declaration's arguments differ from
    /// the existing entity's (AMQP 406 PRECONDITION_FAILED).
    pub fn is_precondition_failed(&self) -> bool {
        match self {
            BrokerError::Amqp(e) => is_precondition_failed(e),
            _ => false,
        }
    }

    /// Whether the broker answered 404 NOT_FOUND, which it also does for a durable classic
    /// queue whose home node is down.
    pub fn is_not_found(&self) -> bool {
        match self {
            BrokerError::Amqp(e) => match e.kind() {
                lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id() == 404,
                _ => false,
            },
            _ => false,
        }
    }
}

pub(crate) fn is_precondition_failed(e: &lapin::Error) -> bool {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id() == 406,
        _ => false,
    }
}
