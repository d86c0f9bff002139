//! What a provider is to discovery: it names the kind of inventory each task fills and gives
//! one page of translated items at a time. A provider makes the cloud's API calls; the scan
//! around it ([`super::Scan`]) owns the connection, the regions, paging and the writes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value};

use super::credentials::Credentials;

/// What a provider does with a discovery task: the inventory collection it fills. The family,
/// item provider and match key of each of the task's API calls are the contract's
/// (`maestro_contract::providers::Command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// Maestro's task name (`server-list`).
    pub task: &'static str,
    /// Inventory collection (`servers`).
    pub collection: &'static str,
    /// Scanned once per connection rather than once per region (S3 buckets).
    pub global: bool,
    /// A global kind whose items name their own region (a DigitalOcean droplet's
    /// `region.slug`), kept in `datacenters.region`; otherwise a global kind's items have none.
    pub item_regions: bool,
}

/// One page of translated items and the token of the next page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Provider-specific translated items (each has `unique_id`).
    pub items: Vec<Value>,
    /// Token for the next page; `None` on the last.
    pub next: Option<String>,
    /// Some of what the page stands for could not be read (an Ansible host unreachable this
    /// time): its call retires nothing in this scan.
    pub partial: bool,
}

/// What a provider needs for one page.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub credentials: &'a Credentials,
    /// The connection's non-secret settings (`url`, `project`, ... : `connection::SETTINGS`).
    pub settings: &'a Map<String, Value>,
    /// The connection's id (hex), for items that stand for the whole connection.
    pub connection: &'a str,
    /// The connection's owners (the user, the team), as hex.
    pub owners: &'a [String],
    pub kind: &'a Kind,
    /// Which of the task's API calls (`maestro_contract::providers::TaskSpec::commands`, in
    /// order) this page is of.
    pub command: usize,
    /// Region to scan; empty for a global kind on a connection without regions.
    pub region: &'a str,
    /// The previous page's `next` token.
    pub token: Option<&'a str>,
}

/// The boxed future of a provider call.
pub type ProviderFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// A cloud provider's discovery: which tasks it answers and one page of one of them.
pub trait Provider: Send + Sync + 'static {
    /// Maestro's provider name (`aws`), as in the task's `provider` argument.
    fn name(&self) -> &'static str;
    /// The kind `task` scans, or why not.
    fn kind(&self, task: &str) -> Result<Kind, ProviderError>;
    /// One page of `req.kind` in `req.region`, translated.
    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page>;
}

impl ProviderError {
    /// The error with `call` (`elbv2.describe_load_balancers`) in front of its message, so a
    /// task of several calls says which one failed.
    pub fn within(self, call: &str) -> Self {
        let with = |m: String| format!("{call}: {m}");
        match self {
            Self::Auth(m) => Self::Auth(with(m)),
            Self::Transient {
                message,
                retry_after,
            } => Self::Transient {
                message: with(message),
                retry_after,
            },
            Self::Api(m) => Self::Api(with(m)),
            Self::Unsupported(m) => Self::Unsupported(with(m)),
            Self::Invalid(m) => Self::Invalid(with(m)),
            other => other,
        }
    }
}

/// Why a provider call did not give a page. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// A task this provider does not have.
    #[error("provider {provider} has no task {task:?}")]
    UnknownTask { provider: String, task: String },
    /// The credentials were missing or refused: retrying cannot help.
    #[error("{0}")]
    Auth(String),
    /// Throttling, 5xx, network: worth retrying, after `retry_after` when the provider said.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The endpoint does not answer this call at all (HTTP 404 without an API error, an
    /// unknown action): the task's other calls go on, and the result says which was skipped.
    #[error("{0}")]
    Unsupported(String),
    /// Any other refusal by the provider's API.
    #[error("{0}")]
    Api(String),
    /// An answer that could not be read, or a request that could not be made.
    #[error("{0}")]
    Invalid(String),
}
