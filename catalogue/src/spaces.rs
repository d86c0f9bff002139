//! The DigitalOcean Spaces discovery provider: Maestro's one Spaces task, `storage-object-list`,
//! S3's ListBuckets against the S3-compatible endpoint of each of the connection's regions
//! (`https://<region>.digitaloceanspaces.com`), signed with SigV4 from the connection's Spaces
//! access and secret keys (the AWS provider's signing and reading, [`crate::aws`]). Buckets
//! are stored as Maestro's Spaces rules wrote them: applications of family `ObjectStorage`,
//! provider `Spaces (DigitalOcean)`, in the scanned region.

use crate::aws::list_buckets_at;
use crate::discovery::{Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture};
use serde_json::Value;

/// The one task.
pub const TASK: &str = "storage-object-list";
/// Maestro's `provider` of a bucket.
pub const BUCKET_PROVIDER: &str = "Spaces (DigitalOcean)";

/// Spaces over its S3-compatible API.
pub struct SpacesProvider {
    http: reqwest::Client,
    /// One endpoint for every region (a stand-in's, e.g. moto); `None` uses Spaces' own.
    endpoint: Option<String>,
}

impl SpacesProvider {
    pub fn new(http: reqwest::Client, endpoint: Option<String>) -> Self {
        Self {
            http,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        }
    }

    fn base(&self, region: &str) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://{region}.digitaloceanspaces.com"),
        }
    }
}

/// Whether `region` has the form of a DigitalOcean datacenter slug, three letters and a number
/// (`nyc3`, `ams3`, `sgp1`): it becomes part of a host name, so nothing else may.
pub fn is_region(region: &str) -> bool {
    if !region.is_ascii() {
        return false;
    }
    let (letters, digits) = region.split_at(region.len().min(3));
    letters.len() == 3
        && letters.chars().all(|c| c.is_ascii_lowercase())
        && (1..=2).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
}

/// A bucket as AWS's are translated, relabelled as Maestro's Spaces rules wrote it (no status
/// or tags; the region is the scanned one, which the scan sets).
fn relabel(item: Value) -> Value {
    let Value::Object(mut m) = item else {
        return item;
    };
    m.insert("provider".into(), Value::String(BUCKET_PROVIDER.into()));
    m.remove("status");
    m.remove("tags");
    // The scan fills it: the connection's datacenter and the region label.
    m.insert("datacenters".into(), Value::Object(serde_json::Map::new()));
    Value::Object(m)
}

impl Provider for SpacesProvider {
    fn name(&self) -> &'static str {
        "spaces"
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        if task != TASK {
            return Err(ProviderError::UnknownTask {
                provider: "spaces".into(),
                task: task.into(),
            });
        }
        Ok(Kind {
            task: TASK,
            collection: "applications",
            global: false,
            item_regions: false,
        })
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            if !is_region(req.region) {
                return Err(ProviderError::Invalid(format!(
                    "{:?} is not a DigitalOcean region (like nyc3)",
                    req.region
                )));
            }
            let page = list_buckets_at(
                &self.http,
                "Spaces",
                &self.base(req.region),
                req.credentials,
                req.region,
                req.token,
            )
            .await
            .map_err(|e| e.within("s3.list_buckets"))?;
            Ok(Page {
                items: page.items.into_iter().map(relabel).collect(),
                next: page.next,
                partial: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_datacenter_slugs() {
        for ok in ["nyc3", "ams3", "sgp1", "fra1", "syd1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "NYC3",
            "nyc3.evil.com",
            "nyc3/",
            "1abc",
            "a",
            "nyc3 (New York)",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn buckets_relabelled_as_spaces() {
        let page = crate::aws::parse_buckets(
            "<ListAllMyBucketsResult><Buckets><Bucket><Name>static-images</Name>\
             <CreationDate>2019-07-08T12:00:00.000Z</CreationDate></Bucket></Buckets>\
             </ListAllMyBucketsResult>",
        )
        .expect("parsed");
        let b = relabel(page.items[0].clone());
        assert_eq!(b["provider"], BUCKET_PROVIDER);
        assert_eq!(b["family"], "ObjectStorage");
        assert_eq!(b["unique_id"], "static-images");
        assert_eq!(b["created_at"], "2019-07-08T12:00:00.000Z");
        assert!(b.get("status").is_none() && b.get("tags").is_none());
        let p = SpacesProvider::new(reqwest::Client::new(), None);
        assert_eq!(p.base("ams3"), "https://ams3.digitaloceanspaces.com");
        assert!(p.kind("server-list").is_err());
    }
}
