//! `maestro.notify(channel, ...)`: a websocket message to a user's channel (Centrifugo), or an
//! audit record of one entity change (Maestro's audit-app), each delivered with retries.
//!
//! The task's keyword arguments, by channel:
//! - `ws`: `owner_id`, `notify: {title, msg, type}`, `event: {caller: [...]}`;
//! - `audit`: `entity`, `entity_id`, `method`, `user`, `body`.

use maestro_broker::Signature;
use maestro_tasks::field::from_json_value;
use maestro_tasks::{FieldError, TaskArgs, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::check::{check_id, check_text, null_as_default};
use crate::names::{QUEUE_NOTIFY, TASK_NOTIFY};

/// Kind of a websocket notification (Maestro's notify types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NotifyType {
    Info,
    Success,
    Warning,
    Danger,
    Error,
}

/// HTTP method of an audit record (Maestro's audit-app routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditMethod {
    POST,
    PUT,
    PATCH,
    DELETE,
}

impl AuditMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::PATCH => "PATCH",
            Self::DELETE => "DELETE",
        }
    }
}

/// A websocket message's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsMessage {
    pub title: String,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: NotifyType,
}

/// What raised a websocket message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsEvent {
    #[serde(default, deserialize_with = "null_as_default")]
    pub caller: Vec<String>,
}

/// A websocket message to user `owner_id` (channel `maestro-<owner_id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsNotification {
    pub owner_id: String,
    pub notify: WsMessage,
    #[serde(default, deserialize_with = "null_as_default")]
    pub event: WsEvent,
}

/// An audit record of one entity change; also the body of `POST /notify/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"entity": "servers", "entity_id": "5f1c0a", "method": "PATCH", "user": "u1", "body": {"hostname": "web-1"}})))]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Entity kind (e.g. `servers`).
    pub entity: String,
    /// The entity's id.
    pub entity_id: String,
    /// What happened to it.
    pub method: AuditMethod,
    /// Who did it, if known.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: Option<String>,
    /// The whole entity.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: Map<String, Value>,
}

/// The request of `maestro.notify`: its keyword arguments, tagged by `channel` (read with
/// [`Notification::from_kwargs`], which names the field at fault inside either shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Notification {
    Ws(WsNotification),
    Audit(AuditRecord),
}

/// Body of `POST /notify/ws`: a websocket message in one flat object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"owner_id": "u1", "title": "Report", "msg": "Report r1 is ready", "type": "success", "caller": ["reports"]})))]
#[serde(deny_unknown_fields)]
pub struct NotifyWsRequest {
    /// The user notified; the channel is `maestro-<owner_id>`.
    pub owner_id: String,
    pub title: String,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: NotifyType,
    /// Names of what raised the notification (`event.caller`).
    #[serde(default)]
    pub caller: Vec<String>,
}

impl From<NotifyWsRequest> for Notification {
    fn from(r: NotifyWsRequest) -> Self {
        Notification::Ws(WsNotification {
            owner_id: r.owner_id,
            notify: WsMessage {
                title: r.title,
                msg: r.msg,
                kind: r.kind,
            },
            event: WsEvent { caller: r.caller },
        })
    }
}

impl Notification {
    /// The parameters of a call on `channel`, in order (`channel` first).
    pub fn params(channel: &str) -> &'static [&'static str] {
        match channel {
            "audit" => &["channel", "entity", "entity_id", "method", "user", "body"],
            _ => &["channel", "owner_id", "notify", "event"],
        }
    }

    /// Reads the keyword arguments: `channel` picks the shape the others must have.
    pub fn from_kwargs(kwargs: &Value) -> Result<Self, FieldError> {
        let Some(obj) = kwargs.as_object() else {
            return Err(FieldError::type_("body", "must be an object"));
        };
        let mut rest = obj.clone();
        match rest.remove("channel") {
            Some(Value::String(c)) if c == "ws" => {
                from_json_value(&Value::Object(rest)).map(Notification::Ws)
            }
            Some(Value::String(c)) if c == "audit" => {
                from_json_value(&Value::Object(rest)).map(Notification::Audit)
            }
            None => Err(FieldError::type_("channel", "missing field `channel`")),
            Some(other) => Err(FieldError::value(
                "channel",
                format!("must be \"ws\" or \"audit\", got {other}"),
            )),
        }
    }

    /// Reads a task call: the channel (first positional argument or `channel`) picks the
    /// parameters the rest bind to.
    pub fn from_args(args: &TaskArgs) -> Result<Self, TaskError> {
        let channel: String = args.require(0, "channel")?;
        let bound = args.bind(Self::params(&channel))?;
        let n = Self::from_kwargs(&Value::Object(bound))?;
        n.validate()?;
        Ok(n)
    }

    /// Checks ids and texts.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Notification::Ws(ws) => {
                check_id("owner_id", &ws.owner_id)?;
                check_text("notify.title", &ws.notify.title)?;
                check_text("notify.msg", &ws.notify.msg)?;
                for (i, c) in ws.event.caller.iter().enumerate() {
                    check_text(&format!("event.caller[{i}]"), c)?;
                }
                Ok(())
            }
            Notification::Audit(a) => {
                check_id("entity", &a.entity)?;
                check_id("entity_id", &a.entity_id)?;
                if let Some(u) = &a.user {
                    check_id("user", u)?;
                }
                Ok(())
            }
        }
    }

    /// The task's keyword arguments.
    pub fn to_kwargs(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }

    /// The signature of this notification, to `ctx.send(...)` from another task; it goes to
    /// queue `notify` (`.with_option("queue", ...)` moves it).
    pub fn signature(&self) -> Signature {
        Signature::new(TASK_NOTIFY, vec![])
            .with_option("queue", QUEUE_NOTIFY.into())
            .with_kwargs(self.to_kwargs())
    }
}

/// A websocket notification to `owner_id`, as other tasks send it.
pub fn ws_notification(
    owner_id: &str,
    title: &str,
    msg: &str,
    kind: NotifyType,
    caller: &[&str],
) -> Notification {
    Notification::Ws(WsNotification {
        owner_id: owner_id.to_owned(),
        notify: WsMessage {
            title: title.to_owned(),
            msg: msg.to_owned(),
            kind,
        },
        event: WsEvent {
            caller: caller.iter().map(|c| (*c).to_owned()).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(v: Value) -> Result<Notification, FieldError> {
        Notification::from_kwargs(&v).and_then(|n| n.validate().map(|()| n))
    }

    #[test]
    fn both_channels_round_trip_as_kwargs() {
        let ws = json!({"channel": "ws", "owner_id": "u1",
            "notify": {"title": "t", "msg": "m", "type": "info"}, "event": {"caller": ["reports"]}});
        let n = parse(ws.clone()).expect("ws");
        assert_eq!(n.to_kwargs(), ws);
        let audit = json!({"channel": "audit", "entity": "servers", "entity_id": "e1",
            "method": "PATCH", "user": null, "body": {"a": 1}});
        assert_eq!(parse(audit.clone()).expect("audit").to_kwargs(), audit);
    }

    #[test]
    fn bad_notifications_name_the_field() {
        let e = parse(json!({"channel": "ws", "owner_id": "a b",
            "notify": {"title": "t", "msg": "m", "type": "info"}}));
        assert_eq!(e.expect_err("id").field, "owner_id");
        let e = parse(json!({"channel": "ws", "owner_id": "u",
            "notify": {"title": " ", "msg": "m", "type": "info"}}));
        assert_eq!(e.expect_err("blank").field, "notify.title");
        assert!(parse(json!({"channel": "sms"})).is_err());
    }

    #[test]
    fn a_task_call_binds_by_channel() {
        let a = TaskArgs::from_values(
            &json!(["audit", "servers", "e1", "DELETE"]),
            &json!({"body": {}}),
        )
        .expect("valid");
        let n = Notification::from_args(&a).expect("audit");
        assert!(matches!(n, Notification::Audit(ref r) if r.method == AuditMethod::DELETE));
        let bad = TaskArgs::from_values(&json!(["sms"]), &json!({})).expect("valid");
        assert!(Notification::from_args(&bad).is_err());
    }
}
