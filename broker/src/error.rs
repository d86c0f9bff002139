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
    /// A message that cannot be written: an argument with no JSON form, a bad signature.
    #[error("a message for task {task:?} cannot be written: {reason}")]
    Encode { task: String, reason: String },
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
            | BrokerError::Topology { .. }
            | BrokerError::Encode { .. } => false,
        }
    }

    /// Whether the broker closed the channel because a declaration's arguments differ from
    /// the existing entity's (AMQP 406 PRECONDITION_FAILED).
    pub fn is_precondition_failed(&self) -> bool {
        self.reply_code() == Some(406)
    }

    /// Whether the broker answered 404 NOT_FOUND, which it also does for a durable classic
    /// queue whose home node is down.
    pub fn is_not_found(&self) -> bool {
        self.reply_code() == Some(404)
    }

    /// The AMQP reply code the broker closed the channel or connection with, if it did.
    fn reply_code(&self) -> Option<u16> {
        match self {
            BrokerError::Amqp(e) => reply_code(e),
            _ => None,
        }
    }
}

fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

pub(crate) fn is_precondition_failed(e: &lapin::Error) -> bool {
    reply_code(e) == Some(406)
}
