//! The message plane: Celery protocol v2 over AMQP.
//!
//! - `message`     protocol-v2 task messages: decode what Celery sends, encode what it accepts
//! - `codec`       kombu's serializers (json, msgpack, yaml) and compressions, bounded
//! - `field`       AMQP field values (every RabbitMQ type) to and from JSON
//! - `signature`   canvas signatures in a body's embed (callbacks, errbacks, chain, chord)
//! - `state`       Celery's task states and result payloads (rpc replies, exceptions)
//! - `connection`  broker URLs, their redaction, connecting, reconnect backoff
//! - `topology`    Celery's queue/exchange layout, delay levels, dead-letter exchange
//! - `delay`       kombu-compatible native delayed delivery routing
//! - `publisher`   publishing with pipelined publisher confirms
//! - `dead_letter` why a message could not be run, as headers on its dead-letter copy
//! - `trace`       W3C trace context in message headers
//! - `client`      send a task and await its result over rpc://
//! - `config`      what every configuration shares: `ConfigError`, `BrokerArgs`, seconds
//! - `error`       `BrokerError`
//!
//! The modules that are namespaces of their own (`message`, `topology`, `connection`, ...) are
//! public; the types most callers need are re-exported here.

pub mod client;
pub mod codec;
pub mod config;
pub mod connection;
pub mod dead_letter;
pub mod delay;
mod error;
pub mod events;
pub mod field;
pub mod message;
mod publisher;
mod signature;
pub mod state;
pub mod topology;
pub mod trace;

pub use codec::{Accept, Compression, Serializer, Signing, WireFormat};
pub use error::BrokerError;
pub use lapin;
pub use message::{DecodeError, TaskHeaders, TaskMessage, TimeLimit};
pub use publisher::Publisher;
pub use signature::{Embed, Signature, TypedSignature};
pub use state::{ExceptionInfo, TaskState};
pub use topology::{QueueType, TaskQueue};
