//! Publishing with publisher confirms. A publish is done when the broker confirmed it, never
//! before. Confirms are pipelined: any number of publishes may be in flight on one channel at
//! once (each caller awaits its own confirm), so throughput is not one round trip per message.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::codec::Signing;
use crate::delay::{self, DelayTopology};
use crate::error::BrokerError;
use crate::message::TaskMessage;

/// A confirm-mode channel. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    /// Signs every task message it publishes (Celery's `auth` serializer), when set.
    signing: Option<Signing>,
}

impl Publisher {
    /// Opens a channel on `conn` and puts it in confirm mode.
    pub async fn open(conn: &Connection) -> Result<Self, BrokerError> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            signing: None,
        })
    }

    /// Signs every task message this publisher sends with `signing` (Celery's `auth`
    /// serializer, as a producer with `task_serializer = 'auth'` does).
    pub fn with_signing(mut self, signing: Option<Signing>) -> Self {
        self.signing = signing;
        self
    }

    /// Whether the channel is still usable.
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Publishes one message and waits for the broker's confirm. With `mandatory`, a message
    /// no queue takes is an error rather than silently dropped.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        body: &[u8],
        mandatory: bool,
    ) -> Result<(), BrokerError> {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory,
                    immediate: false,
                },
                body,
                properties,
            )
            .await?;
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(BrokerError::Unroutable {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            }),
            Confirmation::Nack(_) => Err(BrokerError::Nacked {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            }),
            Confirmation::NotRequested => Err(BrokerError::ConfirmsOff),
        }
    }

    /// Publishes a task message to `exchange` with `routing_key` (mandatory: it must reach a
    /// queue), in its own serializer and compression (`TaskMessage::encode`).
    pub async fn publish_task(
        &self,
        exchange: &str,
        routing_key: &str,
        msg: &TaskMessage,
    ) -> Result<(), BrokerError> {
        let (properties, body) = match &self.signing {
            Some(signing) => msg.encode_signed(signing),
            None => msg.encode(),
        };
        self.publish(exchange, routing_key, properties, &body, true)
            .await
    }

    /// Publishes a message into the delay levels so it reaches the queue bound for
    /// `destination` after `delay_secs` seconds. The destination queue must be bound to the
    /// delivery exchange (`topology::bind_delayed_delivery`).
    pub async fn publish_delayed(
        &self,
        topo: &DelayTopology,
        delay_secs: u64,
        destination: &str,
        properties: BasicProperties,
        body: &[u8],
    ) -> Result<(), BrokerError> {
        let key = delay::routing_key(delay_secs.max(1), destination);
        self.publish(&topo.entry_exchange(), &key, properties, body, true)
            .await
    }

    /// Announces `msg`, just published to `exchange` / `routing_key` (so into `queue`), with
    /// Celery's `task-sent` event from `hostname`; the event's confirm is not awaited. The
    /// event exchange must exist ([`events::declare_exchange`](crate::events)).
    pub async fn publish_sent_event(
        &self,
        hostname: &str,
        msg: &TaskMessage,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), BrokerError> {
        let body = crate::events::body(msg, hostname, queue, exchange, routing_key);
        crate::events::publish(&self.channel, hostname, crate::events::ROUTING_KEY, &body).await
    }

    /// Declares Celery's event exchange on this channel (see [`Self::publish_sent_event`]).
    pub async fn declare_event_exchange(&self) -> Result<(), BrokerError> {
        crate::events::declare_exchange(&self.channel).await
    }

    /// Closes the channel after outstanding confirms have arrived.
    pub async fn close(&self) {
        let _ = self.channel.wait_for_confirms().await;
        let _ = self.channel.close(200, "publisher closed".into()).await;
    }
}
