//! Discovery: which tasks each provider's connections may scan, and the scan request.
//!
//! The permission table is the one the API enforces on `PUT /crawler/{provider}/{conn_id}/
//! {task}` and the worker on `maestro.discovery.scan`; the catalogue's providers answer the
//! tasks they implement and refuse the rest with `NotImplementedError`.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};

use crate::check::check_id;

/// The tasks each provider's connections may scan.
pub const PROVIDER_TASKS: [(&str, &[&str]); 4] = [
    (
        "aws",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "loadbalance-list",
            "dbs-list",
            "snapshot-list",
            "image-list",
        ],
    ),
    (
        "openstack",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "flavor-list",
            "image-list",
        ],
    ),
    (
        "azure",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "loadbalance-list",
            "dbs-list",
        ],
    ),
    (
        "gcp",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "dbs-list",
        ],
    ),
];

/// The provider's allowed tasks, or an error naming `provider`.
pub fn provider_tasks(provider: &str) -> Result<&'static [&'static str], FieldError> {
    PROVIDER_TASKS
        .iter()
        .find(|(p, _)| *p == provider)
        .map(|(_, tasks)| *tasks)
        .ok_or_else(|| {
            let known: Vec<&str> = PROVIDER_TASKS.iter().map(|(p, _)| *p).collect();
            FieldError::value(
                "provider",
                format!("provider {provider:?} is not one of {}", known.join(", ")),
            )
        })
}

/// `maestro.discovery.scan(provider, conn_id, task)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Maestro's provider name (`aws`).
    pub provider: String,
    /// The connection's id (in `connections`).
    pub conn_id: String,
    /// A task the provider allows (`server-list`).
    pub task: String,
}

impl ScanRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 3] = ["provider", "conn_id", "task"];

    /// Checks the provider allows the task and the connection id is an identifier.
    pub fn validate(&self) -> Result<(), FieldError> {
        let allowed = provider_tasks(&self.provider)?;
        check_id("conn_id", &self.conn_id)?;
        if !allowed.contains(&self.task.as_str()) {
            return Err(FieldError::value(
                "task",
                format!(
                    "provider {} does not allow task {:?} (allowed: {})",
                    self.provider,
                    self.task,
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(provider: &str, conn_id: &str, task: &str) -> Option<String> {
        let r = ScanRequest {
            provider: provider.into(),
            conn_id: conn_id.into(),
            task: task.into(),
        };
        r.validate().err().map(|e| e.field)
    }

    #[test]
    fn discovery_permissions() {
        assert_eq!(field("aws", "5f1c0a", "server-list"), None);
        assert_eq!(field("aws", "c1", "flavor-list").as_deref(), Some("task"));
        assert_eq!(
            field("vmware", "c1", "server-list").as_deref(),
            Some("provider")
        );
        assert_eq!(
            field("aws", "a b", "server-list").as_deref(),
            Some("conn_id")
        );
    }
}
