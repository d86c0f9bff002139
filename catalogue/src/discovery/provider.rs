//! What a provider is to discovery: it names the kind of inventory each task fills and gives
//! one page of translated items at a time. A provider makes the cloud's API calls; the scan
//! around it ([`super::Scan`]) owns the connection, the regions, paging and the writes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use super::credentials::Credentials;

/// What a provider does with a discovery task: the inventory collection it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// Maestro's task name (`server-list`).
    pub task: &'static str,
    /// Inventory collection (`servers`).
    pub collection: &'static str,
    /// Maestro's `family` of the items, where the collection holds several.
    pub family: Option<&'static str>,
    /// Scanned once per connection rather than once per region (S3 buckets).
    pub global: bool,
}

/// One page of translated items and the token of the next page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Provider-specific translated items (each has `unique_id`).
    pub items: Vec<Value>,
    /// Token for the next page; `None` on the last.
    pub next: Option<String>,
}

/// What a provider needs for one page.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub credentials: &'a Credentials,
    pub kind: &'a Kind,
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

/// Why a provider call did not give a page. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// A task Maestro knew for this provider that is not scanned here yet.
    #[error("task {task:?} is not implemented for {provider} yet")]
    NotImplemented { provider: String, task: String },
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
    /// Any other refusal by the provider's API.
    #[error("{0}")]
    Api(String),
    /// An answer that could not be read, or a request that could not be made.
    #[error("{0}")]
    Invalid(String),
}
