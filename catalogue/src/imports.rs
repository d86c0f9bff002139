//! Discovery's imports: Maestro's `File`, `Ansible` and `Terraform` providers, which read
//! inventory from files rather than a cloud's API. Each connection names its method (an
//! upload to server-app, a directory over SSH, a prefix of an S3 bucket: [`source`]); each
//! task takes its kind of item from every file ([`formats`]) and the scan around it stores and
//! retires them as for any provider, so a host gone from the files is marked inactive.
//!
//! A scan that finds no file at all, or a file it cannot read (not JSON, not one of Maestro's
//! inventory files, not Ansible's facts, not a Terraform state of format 4), fails and retires
//! nothing: a wrong path or a truncated file never empties an inventory. A host Ansible could
//! not reach keeps its items as they were.
//!
//! Lifecycle: three [`ImportProvider`]s per worker (one per format), sharing the services.

pub mod formats;
pub mod source;

use std::sync::Arc;

use serde_json::Value;

use crate::Services;
use crate::discovery::{Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture};
use formats::Refusal;
use source::{Method, Wanted};

/// Which files an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Maestro's JSON inventory files.
    File,
    /// Ansible's setup facts, one host per file.
    Ansible,
    /// Terraform state files (0.12 and later).
    Terraform,
}

impl Format {
    /// The provider's key (`maestro_contract::providers`).
    pub fn key(self) -> &'static str {
        match self {
            Format::File => "file",
            Format::Ansible => "ansible",
            Format::Terraform => "terraform",
        }
    }

    fn wanted(self) -> Wanted {
        match self {
            Format::File => Wanted {
                extensions: &[".json"],
            },
            Format::Ansible => Wanted { extensions: &[] },
            Format::Terraform => Wanted {
                extensions: &[".tfstate"],
            },
        }
    }
}

/// One import task: the collection it fills and what it takes from a file.
#[derive(Clone, Copy)]
pub struct Task {
    pub format: Format,
    pub task: &'static str,
    pub collection: &'static str,
    items: fn(&Value) -> Result<Vec<Value>, Refusal>,
}

const fn task(
    format: Format,
    task: &'static str,
    collection: &'static str,
    items: fn(&Value) -> Result<Vec<Value>, Refusal>,
) -> Task {
    Task {
        format,
        task,
        collection,
        items,
    }
}

/// Maestro's eleven import tasks, in the contract's order per provider.
pub const TASKS: [Task; 11] = [
    task(Format::File, "server-import", "servers", |d| {
        formats::file_items(d, "servers", formats::SERVER_FIELDS, "ipv4_private")
    }),
    task(Format::File, "applications-import", "applications", |d| {
        formats::file_items(d, "applications", formats::APPLICATION_FIELDS, "name")
    }),
    task(Format::File, "volumes-import", "volumes", |d| {
        formats::file_items(d, "volumes", formats::VOLUME_FIELDS, "name")
    }),
    task(Format::File, "snapshots-import", "snapshots", |d| {
        formats::file_items(d, "snapshots", formats::SNAPSHOT_FIELDS, "name")
    }),
    task(Format::File, "images-import", "images", |d| {
        formats::file_items(d, "images", formats::IMAGE_FIELDS, "name")
    }),
    task(Format::File, "flavors-import", "flavors", |d| {
        formats::file_items(d, "flavors", formats::FLAVOR_FIELDS, "name")
    }),
    task(
        Format::Ansible,
        "server-list",
        "servers",
        formats::ansible_server,
    ),
    task(
        Format::Ansible,
        "volumes-list",
        "volumes",
        formats::ansible_volumes,
    ),
    task(
        Format::Terraform,
        "server-list",
        "servers",
        formats::terraform_servers,
    ),
    task(
        Format::Terraform,
        "volumes-list",
        "volumes",
        formats::terraform_instance_volumes,
    ),
    task(
        Format::Terraform,
        "storage-list",
        "volumes",
        formats::terraform_ebs_volumes,
    ),
];

/// An import provider: one format, read by any method.
pub struct ImportProvider {
    format: Format,
    svc: Arc<Services>,
}

impl ImportProvider {
    pub fn new(format: Format, svc: Arc<Services>) -> Self {
        Self { format, svc }
    }

    fn task(&self, name: &str) -> Result<&'static Task, ProviderError> {
        TASKS
            .iter()
            .find(|t| t.format == self.format && t.task == name)
            .ok_or_else(|| ProviderError::UnknownTask {
                provider: self.format.key().into(),
                task: name.into(),
            })
    }

    async fn read(&self, req: &PageRequest<'_>, task: &Task) -> Result<Page, ProviderError> {
        let service = req.settings.get("service").and_then(Value::as_str);
        let wanted = self.format.wanted();
        let creds = req.credentials;
        let files = match Method::of(service, creds)? {
            Method::Upload => source::upload(&self.svc, creds, req.owners, req.token).await?,
            Method::Ssh => source::ssh(&self.svc, creds, wanted, req.token).await?,
            Method::S3 => source::s3(&self.svc, creds, wanted, req.token).await?,
        };
        let mut items = Vec::new();
        let mut partial = false;
        for file in files.files {
            let doc: Value = serde_json::from_slice(&file.bytes).map_err(|e| {
                ProviderError::Api(format!("file {:?} is not JSON: {e}", file.name))
            })?;
            // A host Ansible could not reach this time: its items are not read, and nothing
            // of this task is retired on its account.
            if self.format == Format::Ansible && formats::unreachable(&doc) {
                partial = true;
                continue;
            }
            let found = (task.items)(&doc)
                .map_err(|why| ProviderError::Api(format!("file {:?}: {why}", file.name)))?;
            items.extend(found);
        }
        Ok(Page {
            items,
            next: files.next,
            partial,
        })
    }
}

impl Provider for ImportProvider {
    fn name(&self) -> &'static str {
        self.format.key()
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        let t = self.task(task)?;
        Ok(Kind {
            task: t.task,
            collection: t.collection,
            global: true,
            item_regions: true,
        })
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            let task = self.task(req.kind.task)?;
            self.read(&req, task).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_are_the_contracts() {
        for format in [Format::File, Format::Ansible, Format::Terraform] {
            let p = maestro_contract::providers::provider(format.key()).expect("provider");
            let here: Vec<(&str, &str)> = TASKS
                .iter()
                .filter(|t| t.format == format)
                .map(|t| (t.task, t.collection))
                .collect();
            let contract: Vec<(&str, &str)> = p
                .tasks
                .iter()
                .map(|t| (t.name, t.commands[0].entity))
                .collect();
            assert_eq!(here, contract, "{}", format.key());
        }
    }
}
