//! The AWS discovery provider: EC2 DescribeInstances, DescribeVolumes and
//! DescribeSecurityGroups (Query API, `NextToken` pages) and S3 ListBuckets, called over
//! reqwest with SigV4 signatures (`aws-sigv4`), answers read with `roxmltree` and translated
//! to Maestro inventory documents (Maestro's AWS rules: `unique_id`, `name`, `status`, `tags`,
//! `datacenters`, kind-specific fields). The common fields (roles, owner, `active`,
//! `checksum`, `updated_at`) are added by [`super::discovery`].
//!
//! Lifecycle: one [`AwsProvider`] per worker, holding the shared HTTP client; each call signs
//! one request with the connection's keys and returns one page.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use roxmltree::{Document, Node};
use serde_json::{Map, Value, json};

pub use crate::discovery::http::{REQUEST_ATTEMPTS, RESPONSE_BYTES_MAX, RETRY_AFTER_MAX};
use crate::discovery::http::{fetch, retried};
use crate::discovery::{
    Credentials, Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture,
};

pub mod calls;
pub mod rules;
pub mod tree;

use calls::calls_of;
pub use calls::{CALLS, Call, Protocol, Service, Shape};
use rules::translate;
use tree::list;

/// Smallest page size asked of any API; a smaller `--scan-qtd` is raised to it (and to each
/// API's own minimum, e.g. EC2's 5).
pub const PAGE_SIZE_MIN: usize = 1;
/// Region global services (S3 listing, CloudFront) are signed for when none applies.
pub const S3_DEFAULT_REGION: &str = "us-east-1";
/// Pages read for a call whose pages make one item (SQS queues, SES identities).
pub const MERGED_PAGES_MAX: usize = 100;

/// Maestro's `provider` value in `datacenters`.
const DC_PROVIDER: &str = "AWS";

/// AWS over its HTTP APIs.
pub struct AwsProvider {
    http: reqwest::Client,
    /// One endpoint for every service (moto, LocalStack); `None` uses AWS's regional ones.
    endpoint: Option<String>,
    page_size: usize,
}

impl AwsProvider {
    /// A provider using `http`; `endpoint` overrides every AWS endpoint (e.g. moto's
    /// `http://127.0.0.1:5000`); `page_size` is asked of every paging API, within the range
    /// each accepts.
    pub fn new(http: reqwest::Client, endpoint: Option<String>, page_size: usize) -> Self {
        Self {
            http,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            page_size: page_size.max(PAGE_SIZE_MIN),
        }
    }

    fn base(&self, svc: &Service, region: &str) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None if svc.global_endpoint => format!("https://{}.amazonaws.com", svc.host),
            None => format!("https://{}.{region}.amazonaws.com", svc.host),
        }
    }

    /// One request of `call`, retried on throttling and 5xx a few times (the scan task
    /// retries further with its own backoff); the answer's body.
    async fn request(
        &self,
        keys: &AwsKeys,
        call: &Call,
        region: &str,
        token: Option<&str>,
    ) -> Result<String, ProviderError> {
        retried(|| self.request_once(keys, call, region, token)).await
    }

    async fn request_once(
        &self,
        keys: &AwsKeys,
        call: &Call,
        region: &str,
        token: Option<&str>,
    ) -> Result<String, ProviderError> {
        let svc = call.service;
        let region = if svc.global_endpoint || region.is_empty() {
            S3_DEFAULT_REGION
        } else {
            region
        };
        let base = self.base(svc, region);
        let size = call
            .page_size
            .map(|p| (p.param, self.page_size.clamp(p.min, p.max).to_string()));
        let token = token.filter(|_| !call.token_param.is_empty());
        match svc.protocol {
            Protocol::Ec2 | Protocol::Query => {
                let body = query_form(call, size.as_ref(), token).into_bytes();
                let url = format!("{base}/");
                let content_type = "application/x-www-form-urlencoded; charset=utf-8";
                let headers = [("content-type", content_type)];
                let signed = keys.sign("POST", &url, svc.signing, region, &body, &headers)?;
                let req = self.http.post(&url).header("content-type", content_type);
                send(with_headers(req.body(body), signed)).await
            }
            Protocol::Json10 { target } => {
                let mut m = Map::new();
                if let Some((param, n)) = &size {
                    m.insert((*param).into(), json!(n.parse::<u64>().unwrap_or(1)));
                }
                if let Some(t) = token {
                    m.insert(call.token_param.into(), json!(t));
                }
                let body = Value::Object(m).to_string().into_bytes();
                let url = format!("{base}/");
                let target = format!("{target}.{}", call.action);
                let headers = [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", target.as_str()),
                ];
                let signed = keys.sign("POST", &url, svc.signing, region, &body, &headers)?;
                let mut req = self.http.post(&url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                send(with_headers(req.body(body), signed)).await
            }
            Protocol::RestJson | Protocol::RestXml => {
                let query = rest_query(call, size.as_ref(), token);
                let url = if query.is_empty() {
                    format!("{base}{}", call.action)
                } else {
                    format!("{base}{}?{query}", call.action)
                };
                let s3 = svc.host == "s3";
                let signed = if s3 {
                    keys.sign_s3(&url, region)?
                } else {
                    keys.sign("GET", &url, svc.signing, region, &[], &[])?
                };
                send(with_headers(self.http.get(&url), signed)).await
            }
        }
    }

    /// One page of `call`, or all its pages in one for the calls that make one item of them.
    async fn call_page(
        &self,
        keys: &AwsKeys,
        call: &Call,
        req: &PageRequest<'_>,
    ) -> Result<Page, ProviderError> {
        let region = req.region;
        match call.shape {
            Shape::Parsed => {
                let body = self.request(keys, call, region, req.token).await?;
                match call.access {
                    "describe_instances" => parse_instances(&body, region),
                    "describe_volumes" => parse_volumes(&body, region),
                    "describe_security_groups" => parse_security_groups(&body, region),
                    _ => parse_buckets(&body),
                }
            }
            Shape::Each | Shape::Names => {
                let body = self.request(keys, call, region, req.token).await?;
                let tree = answer_tree(call.service.protocol, &body)?;
                Ok(Page {
                    items: translate_page(call, &tree),
                    next: next_of(call, &tree),
                    partial: false,
                })
            }
            Shape::Queues | Shape::Identities => {
                let mut names = Vec::new();
                let mut token: Option<String> = None;
                for _ in 0..MERGED_PAGES_MAX {
                    let body = self.request(keys, call, region, token.as_deref()).await?;
                    let tree = answer_tree(call.service.protocol, &body)?;
                    names.extend(
                        list(&tree, call.items).into_iter().filter_map(|v| {
                            v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
                        }),
                    );
                    match next_of(call, &tree) {
                        Some(n) if token.as_deref() != Some(n.as_str()) => token = Some(n),
                        _ => break,
                    }
                }
                let item = if call.shape == Shape::Queues {
                    queues_item(&names, region)
                } else {
                    identities_item(&names, req.connection, region)
                };
                Ok(Page {
                    items: item.into_iter().collect(),
                    next: None,
                    partial: false,
                })
            }
        }
    }
}

/// The request parameters of `call`: its fixed ones, the page size, the page token.
fn request_pairs(
    call: &Call,
    size: Option<&(&str, String)>,
    token: Option<&str>,
) -> form_urlencoded::Serializer<'static, String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in call.params {
        form.append_pair(k, v);
    }
    if let Some((param, n)) = size {
        form.append_pair(param, n);
    }
    if let Some(t) = token {
        form.append_pair(call.token_param, t);
    }
    form
}

/// The form body of a query API call (built apart: the serializer is not `Send`).
fn query_form(call: &Call, size: Option<&(&str, String)>, token: Option<&str>) -> String {
    let fixed = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", call.action)
        .append_pair("Version", call.service.version)
        .finish();
    let rest = request_pairs(call, size, token).finish();
    if rest.is_empty() {
        fixed
    } else {
        format!("{fixed}&{rest}")
    }
}

/// The query string of a REST call.
fn rest_query(call: &Call, size: Option<&(&str, String)>, token: Option<&str>) -> String {
    // AWS's signature wants `%20`, not `+`, for spaces.
    request_pairs(call, size, token)
        .finish()
        .replace('+', "%20")
}

/// An answer as one JSON tree: XML read as AWS's SDKs shape it ([`tree::from_xml`]), JSON as
/// it is.
fn answer_tree(protocol: Protocol, body: &str) -> Result<Value, ProviderError> {
    match protocol {
        Protocol::Json10 { .. } | Protocol::RestJson => serde_json::from_str(body)
            .map_err(|e| ProviderError::Invalid(format!("AWS answer is not JSON: {e}"))),
        Protocol::Ec2 | Protocol::Query | Protocol::RestXml => {
            Ok(tree::from_xml(parse(body)?.root_element()))
        }
    }
}

fn next_of(call: &Call, tree: &Value) -> Option<String> {
    if call.next.is_empty() {
        return None;
    }
    tree::text(tree, call.next)
}

/// The items of one answer of an `Each` or `Names` call.
fn translate_page(call: &Call, tree: &Value) -> Vec<Value> {
    let application = call_entity(call) == Some("applications");
    list(tree, call.items)
        .into_iter()
        .filter_map(|el| {
            let mut item = match call.shape {
                Shape::Names => {
                    let name = el.as_str()?;
                    let mut t = translate(&json!({"TableName": name}), &call.naming, call.rules)?;
                    t["name"] = json!(format!("DynamoDB - {name}"));
                    t
                }
                _ => translate(el, &call.naming, call.rules)?,
            };
            if application {
                item["own"] = json!(1);
            }
            Some(item)
        })
        .collect()
}

/// The contract's collection of `call`.
fn call_entity(call: &Call) -> Option<&'static str> {
    maestro_contract::providers::provider("aws")?
        .tasks
        .iter()
        .find(|t| t.name == call.task)?
        .commands
        .iter()
        .find(|c| c.access == call.access && c.command == command_of(call))
        .map(|c| c.entity)
}

/// The boto3 client name of `call` (`elbv2`, `ses`), as the contract names commands.
fn command_of(call: &Call) -> &'static str {
    match (call.service.host, call.service.version) {
        ("elasticloadbalancing", "2015-12-01") => "elbv2",
        ("elasticloadbalancing", _) => "elb",
        ("email", _) => "ses",
        (host, _) => host,
    }
}

/// Every queue of the region as one item (Maestro's `QueueSQS`): named by the account the
/// URLs hold, keyed by account and region (Maestro keyed by account only, so a second region
/// overwrote the first).
fn queues_item(urls: &[String], region: &str) -> Option<Value> {
    let first = urls.first()?;
    // https://sqs.<region>.amazonaws.com/<account>/<queue>
    let after_scheme = first.split_once("://").map_or(first.as_str(), |(_, r)| r);
    let account = after_scheme
        .split('/')
        .nth(1)
        .filter(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("account");
    let queues: Vec<&str> = urls
        .iter()
        .filter_map(|u| u.trim_end_matches('/').rsplit('/').next())
        .collect();
    Some(json!({
        "name": format!("SQS - {account}"),
        "unique_id": format!("{account}_{region}"),
        "urls": urls,
        "queues": queues,
        "tags": [],
        "own": 1,
        "datacenters": {},
    }))
}

/// Every SES identity of the region as one item (Maestro's `IdentitySES`), keyed by the
/// connection and region (Maestro: the connection only).
fn identities_item(identities: &[String], connection: &str, region: &str) -> Option<Value> {
    if identities.is_empty() {
        return None;
    }
    Some(json!({
        "name": "SES - SMTP",
        "unique_id": format!("{connection}_ses_{region}"),
        "domain": identities,
        "tags": [],
        "own": 1,
        "datacenters": {},
    }))
}

/// Whether `region` has AWS's form: `<area>-<direction>-<n>` in lower case (`us-east-1`,
/// `ap-southeast-2`, `us-gov-west-1`, `cn-north-1`).
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    region.len() <= 32
        && parts.len() >= 3
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

impl AwsProvider {
    /// The kind `task` scans, or that AWS has no such task.
    fn kind_of(task: &str) -> Result<Kind, ProviderError> {
        let unknown = || ProviderError::UnknownTask {
            provider: "aws".into(),
            task: task.into(),
        };
        let first = calls_of(task).next().ok_or_else(unknown)?;
        let collection = call_entity(first).ok_or_else(unknown)?;
        Ok(Kind {
            task: first.task,
            collection,
            global: first.service.once,
            item_regions: false,
        })
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        Self::kind_of(task)
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            let keys = AwsKeys::from_credentials(req.credentials)?;
            // The region becomes part of a host name: only AWS's own form may.
            if !req.region.is_empty() && !is_region(req.region) {
                return Err(ProviderError::Invalid(format!(
                    "{:?} is not an AWS region (like us-east-1)",
                    req.region
                )));
            }
            let call = calls_of(req.kind.task).nth(req.command).ok_or_else(|| {
                ProviderError::UnknownTask {
                    provider: "aws".into(),
                    task: format!("{} (call {})", req.kind.task, req.command),
                }
            })?;
            self.call_page(&keys, call, &req)
                .await
                .map_err(|e| e.within(&format!("{}.{}", command_of(call), call.access)))
        })
    }
}

/// S3's ListBuckets from the S3-compatible endpoint `base` of a service named `who` in
/// messages (DigitalOcean Spaces: `https://nyc3.digitaloceanspaces.com`), signed for `region`
/// with the connection's access and secret keys: one page of buckets, translated as AWS's
/// (the caller relabels them).
pub(crate) async fn list_buckets_at(
    http: &reqwest::Client,
    who: &str,
    base: &str,
    credentials: &Credentials,
    region: &str,
    token: Option<&str>,
) -> Result<Page, ProviderError> {
    let keys = AwsKeys::from_credentials(credentials)?;
    let url = match token {
        Some(t) => format!(
            "{base}/?{}",
            // AWS's signature wants `%20`, not `+`, for spaces (as `rest_query`).
            form_urlencoded::Serializer::new(String::new())
                .append_pair("continuation-token", t)
                .finish()
                .replace('+', "%20")
        ),
        None => format!("{base}/"),
    };
    let signed = keys.sign_s3(&url, region)?;
    let body = send_as(who, with_headers(http.get(&url), signed)).await?;
    parse_buckets(&body)
}

/// GETs any S3 `url` (a bucket listing, an object), signed for `region` with the connection's
/// keys (claims `access` and `secret`); the answer's body, or the error classified as S3's
/// (`who` names the service). Throttling and 5xx are tried again within the request.
pub(crate) async fn s3_get(
    http: &reqwest::Client,
    who: &str,
    url: &str,
    credentials: &Credentials,
    region: &str,
) -> Result<String, ProviderError> {
    let keys = AwsKeys::from_credentials(credentials)?;
    retried(|| async {
        let signed = keys.sign_s3(url, region)?;
        send_as(who, with_headers(http.get(url), signed)).await
    })
    .await
}

/// The connection's AWS keys, from its decoded credential claims. Debug never shows them.
struct AwsKeys {
    creds: AwsCredentials,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsKeys(redacted)")
    }
}

impl AwsKeys {
    /// Claims `access` + `secret` (Maestro's), or `access_key` + `secret_key`; an optional
    /// `session_token` for temporary credentials.
    fn from_credentials(c: &Credentials) -> Result<Self, ProviderError> {
        let access = c.string(&["access", "access_key", "aws_access_key_id"]);
        let secret = c.string(&["secret", "secret_key", "aws_secret_access_key"]);
        let (Some(access), Some(secret)) = (access, secret) else {
            return Err(ProviderError::Auth(
                "the connection's credentials have no access/secret keys \
                 (claims access and secret, or access_key and secret_key)"
                    .into(),
            ));
        };
        let session = c.string(&["session_token"]).map(str::to_owned);
        Ok(Self {
            creds: AwsCredentials::new(access, secret, session, None, "maestro-connection"),
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, ...) for one request; `headers` are
    /// signed too and must be sent as given.
    fn sign(
        &self,
        method: &str,
        url: &str,
        service: &str,
        region: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, ProviderError> {
        self.sign_with(
            method,
            url,
            service,
            region,
            body,
            headers,
            SigningSettings::default(),
        )
    }

    /// S3's flavour: `x-amz-content-sha256` sent, paths neither normalised nor encoded twice.
    fn sign_s3(&self, url: &str, region: &str) -> Result<Vec<(String, String)>, ProviderError> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        self.sign_with("GET", url, "s3", region, &[], &[], settings)
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_with(
        &self,
        method: &str,
        url: &str,
        service: &str,
        region: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        settings: SigningSettings,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let identity: Identity = self.creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| ProviderError::Invalid(format!("signing parameters: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| ProviderError::Invalid(format!("request to sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ProviderError::Invalid(format!("signing: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

fn with_headers(
    mut req: reqwest::RequestBuilder,
    headers: Vec<(String, String)>,
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req
}

/// Sends one request and returns the body of a 2xx answer; errors are classified for the
/// caller (transient, auth, other).
async fn send(req: reqwest::RequestBuilder) -> Result<String, ProviderError> {
    send_as("AWS", req).await
}

/// [`send`] to an S3-compatible service named `who` in its messages (`Spaces`).
async fn send_as(who: &str, req: reqwest::RequestBuilder) -> Result<String, ProviderError> {
    let answer = fetch(who, req).await?;
    if answer.status.is_success() {
        return Ok(answer.body);
    }
    let (code, message) = error_of(&answer.body);
    Err(classify_as(
        who,
        answer.status.as_u16(),
        &code,
        &message,
        answer.retry_after,
    ))
}

/// The `Code` and `Message` of an AWS error answer (EC2's `<Response><Errors><Error>` and
/// S3's `<Error>` alike).
fn error_of(xml: &str) -> (String, String) {
    let Ok(doc) = Document::parse(xml) else {
        return (String::new(), String::new());
    };
    let find = |name: &str| {
        doc.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .and_then(|n| n.text())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    (find("Code"), find("Message"))
}

const AUTH_CODES: [&str; 9] = [
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "OptInRequired",
    "ExpiredToken",
    "Blocked",
];

const THROTTLE_CODES: [&str; 8] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "SlowDown",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
];

/// Codes of an endpoint that has no such call (a listing call names no resource, so its 404
/// without a code is the same).
const UNSUPPORTED_CODES: [&str; 4] = [
    "InvalidAction",
    "UnknownOperationException",
    "UnsupportedOperation",
    "NotImplemented",
];

/// What a non-2xx AWS answer means for the scan.
/// [`classify_as`] for AWS itself.
#[cfg(test)]
fn classify(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> ProviderError {
    classify_as("AWS", status, code, message, retry_after)
}

fn classify_as(
    who: &str,
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> ProviderError {
    let what = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{code} (HTTP {status}): {message}")
    };
    if AUTH_CODES.contains(&code) || (code.is_empty() && (status == 401 || status == 403)) {
        ProviderError::Auth(format!(
            "{who} refused the connection's credentials: {what}"
        ))
    } else if UNSUPPORTED_CODES.contains(&code) || (code.is_empty() && status == 404) {
        ProviderError::Unsupported(format!("the endpoint does not answer this call: {what}"))
    } else if THROTTLE_CODES.contains(&code) || status == 429 || status >= 500 {
        ProviderError::Transient {
            message: format!("{who} is throttling or unavailable: {what}"),
            retry_after,
        }
    } else {
        ProviderError::Api(format!("{who} answered {what}"))
    }
}

fn parse(xml: &str) -> Result<Document<'_>, ProviderError> {
    Document::parse(xml).map_err(|e| ProviderError::Invalid(format!("AWS answer is not XML: {e}")))
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text<'a>(n: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(n, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn path<'a, 'i>(n: Node<'a, 'i>, names: &[&str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(n, |n, name| child(n, name))
}

fn path_text<'a>(n: Node<'a, '_>, names: &[&str]) -> Option<&'a str> {
    let (last, init) = names.split_last()?;
    text(path(n, init)?, last)
}

/// The `<item>` children of EC2 list element `name`.
fn items<'a, 'i>(n: Node<'a, 'i>, name: &str) -> impl Iterator<Item = Node<'a, 'i>> {
    child(n, name)
        .into_iter()
        .flat_map(|c| c.children())
        .filter(|c| c.is_element() && c.tag_name().name() == "item")
}

fn put(doc: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        doc.insert(key.into(), Value::String(v.into()));
    }
}

fn put_bool(doc: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        doc.insert(key.into(), Value::Bool(v == "true"));
    }
}

fn put_int(doc: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(n) = value.and_then(|v| v.parse::<i64>().ok()) {
        doc.insert(key.into(), Value::from(n));
    }
}

/// `tagSet` as Maestro's `[{key, value}]` (tags with an empty value are kept, unlike
/// Maestro's, which dropped them).
fn tags(n: Node<'_, '_>) -> Vec<Value> {
    items(n, "tagSet")
        .filter_map(|t| {
            let key = text(t, "key")?;
            Some(json!({"key": key, "value": text(t, "value").unwrap_or_default()}))
        })
        .collect()
}

/// The value of tag `key`, compared without case (Maestro's `arrCatcher`); empty is none.
fn tag<'a>(tags: &'a [Value], key: &str) -> Option<&'a str> {
    rules::tag(tags, key).filter(|v| !v.is_empty())
}

/// Common fields every translated item has: name/role/environment from tags, tags.
fn tagged(doc: &mut Map<String, Value>, tags: Vec<Value>) {
    put(doc, "name", tag(&tags, "name"));
    put(doc, "role", tag(&tags, "role"));
    put(doc, "environment", tag(&tags, "environment"));
    doc.insert("tags".into(), Value::Array(tags));
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn next_token(root: Node<'_, '_>, name: &str) -> Option<String> {
    text(root, name).map(str::to_owned)
}

/// DescribeInstances: one item per instance (reservations flattened).
pub fn parse_instances(xml: &str, region: &str) -> Result<Page, ProviderError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    let mut out = Vec::new();
    for reservation in items(root, "reservationSet") {
        for i in items(reservation, "instancesSet") {
            if let Some(item) = translate_instance(i, region) {
                out.push(item);
            }
        }
    }
    Ok(Page {
        items: out,
        next: next_token(root, "nextToken"),
        partial: false,
    })
}

fn translate_instance(i: Node<'_, '_>, region: &str) -> Option<Value> {
    let id = text(i, "instanceId")?;
    let state = path_text(i, &["instanceState", "name"]).unwrap_or_default();
    let mut d = Map::new();
    d.insert("unique_id".into(), Value::String(id.into()));
    tagged(&mut d, tags(i));
    d.entry("name")
        .or_insert_with(|| Value::String(id.to_owned()));
    // Maestro's mapping; other states keep their own word, capitalized.
    let status = match state {
        "running" | "pending" => "Active".to_owned(),
        "stopping" | "stopped" => "Stopped".to_owned(),
        other => capitalized(other),
    };
    d.insert("status".into(), Value::String(status));
    d.insert(
        "active".into(),
        Value::Bool(!matches!(state, "shutting-down" | "terminated")),
    );
    put(&mut d, "created_at", text(i, "launchTime"));
    put(&mut d, "ipv4_private", text(i, "privateIpAddress"));
    put(&mut d, "ipv4_public", text(i, "ipAddress"));
    put(&mut d, "dns_private", text(i, "privateDnsName"));
    put(&mut d, "dns_public", text(i, "dnsName"));
    put_bool(&mut d, "ebs_optimized", text(i, "ebsOptimized"));
    if let Some(key) = text(i, "keyName") {
        d.insert("auth".into(), json!([{"name": key, "type": "PKI"}]));
    }
    let storage: Vec<Value> = items(i, "blockDeviceMapping")
        .map(|b| {
            let mut s = Map::new();
            put(&mut s, "device_name", text(b, "deviceName"));
            if let Some(ebs) = child(b, "ebs") {
                put(&mut s, "unique_id", text(ebs, "volumeId"));
                put(&mut s, "status", text(ebs, "status"));
                put(&mut s, "attach_time", text(ebs, "attachTime"));
                put_bool(
                    &mut s,
                    "delete_termination",
                    text(ebs, "deleteOnTermination"),
                );
            }
            Value::Object(s)
        })
        .collect();
    d.insert("storage".into(), Value::Array(storage));
    let groups: Vec<Value> = items(i, "groupSet")
        .map(|g| {
            let mut s = Map::new();
            put(&mut s, "group_id", text(g, "groupId"));
            put(&mut s, "group_name", text(g, "groupName"));
            Value::Object(s)
        })
        .collect();
    let mut metas = Map::new();
    metas.insert("security_groups".into(), Value::Array(groups));
    put(
        &mut metas,
        "iam_instance_profile",
        path_text(i, &["iamInstanceProfile", "arn"]),
    );
    d.insert("metas".into(), Value::Object(metas));

    let mut dc = datacenter(region);
    put(
        &mut dc,
        "zone",
        path_text(i, &["placement", "availabilityZone"]),
    );
    dc.insert("type".into(), Value::String("Virtual".into()));
    put(&mut dc, "instance", text(i, "instanceType"));
    put(&mut dc, "instance_id", Some(id));
    put(&mut dc, "subnet_id", text(i, "subnetId"));
    put(&mut dc, "vpc_id", text(i, "vpcId"));
    put(
        &mut dc,
        "virtualization_type",
        text(i, "virtualizationType"),
    );
    put(&mut dc, "hypervisor", text(i, "hypervisor"));
    put(&mut dc, "root_device_type", text(i, "rootDeviceType"));
    put(&mut dc, "image_id", text(i, "imageId"));
    put(&mut dc, "architecture", text(i, "architecture"));
    put(&mut dc, "state", Some(state).filter(|s| !s.is_empty()));
    put(
        &mut dc,
        "state_reason",
        path_text(i, &["stateReason", "message"]),
    );
    put(
        &mut dc,
        "cloudwatch_monitoring",
        path_text(i, &["monitoring", "state"]),
    );
    d.insert("datacenters".into(), Value::Object(dc));
    Some(Value::Object(d))
}

fn datacenter(region: &str) -> Map<String, Value> {
    let mut dc = Map::new();
    dc.insert("provider".into(), Value::String(DC_PROVIDER.into()));
    if !region.is_empty() {
        dc.insert("region".into(), Value::String(region.into()));
    }
    dc
}

/// DescribeVolumes.
pub fn parse_volumes(xml: &str, region: &str) -> Result<Page, ProviderError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    let out = items(root, "volumeSet")
        .filter_map(|v| translate_volume(v, region))
        .collect();
    Ok(Page {
        items: out,
        next: next_token(root, "nextToken"),
        partial: false,
    })
}

fn translate_volume(v: Node<'_, '_>, region: &str) -> Option<Value> {
    let id = text(v, "volumeId")?;
    let state = text(v, "status").unwrap_or_default();
    let mut d = Map::new();
    d.insert("unique_id".into(), Value::String(id.into()));
    tagged(&mut d, tags(v));
    d.entry("name")
        .or_insert_with(|| Value::String(id.to_owned()));
    let status = match state {
        "creating" | "in-use" => "Active".to_owned(),
        "available" => "Available".to_owned(),
        "deleting" | "deleted" => "Deleted".to_owned(),
        "error" => "Error".to_owned(),
        other => capitalized(other),
    };
    d.insert("status".into(), Value::String(status));
    d.insert(
        "active".into(),
        Value::Bool(!matches!(state, "deleting" | "deleted" | "error")),
    );
    put(&mut d, "created_at", text(v, "createTime"));
    put_int(&mut d, "size", text(v, "size"));
    put(&mut d, "snapshot_id", text(v, "snapshotId"));
    put(&mut d, "volume_type", text(v, "volumeType"));
    put_int(&mut d, "iops", text(v, "iops"));
    put_bool(&mut d, "encrypted", text(v, "encrypted"));
    put(&mut d, "kms_key_id", text(v, "kmsKeyId"));
    put(&mut d, "availability_zone", text(v, "availabilityZone"));
    let attachments: Vec<Value> = items(v, "attachmentSet")
        .map(|a| {
            let mut s = Map::new();
            put(&mut s, "instance_id", text(a, "instanceId"));
            put(&mut s, "device", text(a, "device"));
            put(&mut s, "status", text(a, "status"));
            put(&mut s, "attach_time", text(a, "attachTime"));
            put_bool(
                &mut s,
                "delete_on_termination",
                text(a, "deleteOnTermination"),
            );
            Value::Object(s)
        })
        .collect();
    d.insert("attachments".into(), Value::Array(attachments));
    let mut dc = datacenter(region);
    put(&mut dc, "zone", text(v, "availabilityZone"));
    d.insert("datacenters".into(), Value::Object(dc));
    Some(Value::Object(d))
}

/// DescribeSecurityGroups.
pub fn parse_security_groups(xml: &str, region: &str) -> Result<Page, ProviderError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    let out = items(root, "securityGroupInfo")
        .filter_map(|g| translate_security_group(g, region))
        .collect();
    Ok(Page {
        items: out,
        next: next_token(root, "nextToken"),
        partial: false,
    })
}

fn permissions(g: Node<'_, '_>, name: &str) -> Value {
    Value::Array(
        items(g, name)
            .map(|p| {
                let mut s = Map::new();
                put(&mut s, "ip_protocol", text(p, "ipProtocol"));
                put_int(&mut s, "from_port", text(p, "fromPort"));
                put_int(&mut s, "to_port", text(p, "toPort"));
                let ranges: Vec<Value> = items(p, "ipRanges")
                    .filter_map(|r| text(r, "cidrIp").map(|c| Value::String(c.into())))
                    .collect();
                s.insert("ip_ranges".into(), Value::Array(ranges));
                let v6: Vec<Value> = items(p, "ipv6Ranges")
                    .filter_map(|r| text(r, "cidrIpv6").map(|c| Value::String(c.into())))
                    .collect();
                s.insert("ipv6_ranges".into(), Value::Array(v6));
                let groups: Vec<Value> = items(p, "groups")
                    .filter_map(|r| text(r, "groupId").map(|c| Value::String(c.into())))
                    .collect();
                s.insert("groups".into(), Value::Array(groups));
                Value::Object(s)
            })
            .collect(),
    )
}

fn translate_security_group(g: Node<'_, '_>, region: &str) -> Option<Value> {
    let id = text(g, "groupId")?;
    let mut d = Map::new();
    d.insert("unique_id".into(), Value::String(id.into()));
    tagged(&mut d, tags(g));
    // Maestro named a security group after its group name, not its Name tag.
    put(&mut d, "name", text(g, "groupName").or(Some(id)));
    put(&mut d, "group_name", text(g, "groupName"));
    put(&mut d, "description", text(g, "groupDescription"));
    put(&mut d, "vpc_id", text(g, "vpcId"));
    put(&mut d, "owner_id", text(g, "ownerId"));
    d.insert("family".into(), Value::String("SecurityGroup".into()));
    d.insert("status".into(), Value::String("Active".into()));
    d.insert("active".into(), Value::Bool(true));
    d.insert("ip_permissions".into(), permissions(g, "ipPermissions"));
    d.insert(
        "ip_permissions_egress".into(),
        permissions(g, "ipPermissionsEgress"),
    );
    d.insert("datacenters".into(), Value::Object(datacenter(region)));
    Some(Value::Object(d))
}

/// S3 ListBuckets (all buckets of the account, whatever the region signed for).
pub fn parse_buckets(xml: &str) -> Result<Page, ProviderError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    let out = child(root, "Buckets")
        .into_iter()
        .flat_map(|b| b.children())
        .filter(|b| b.is_element() && b.tag_name().name() == "Bucket")
        .filter_map(|b| {
            let name = text(b, "Name")?;
            let mut d = Map::new();
            d.insert("unique_id".into(), Value::String(name.into()));
            d.insert("name".into(), Value::String(name.into()));
            put(&mut d, "created_at", text(b, "CreationDate"));
            d.insert("provider".into(), Value::String("S3 (AWS)".into()));
            d.insert("family".into(), Value::String("ObjectStorage".into()));
            d.insert("status".into(), Value::String("Active".into()));
            d.insert("active".into(), Value::Bool(true));
            d.insert("own".into(), Value::from(1));
            d.insert("tags".into(), Value::Array(Vec::new()));
            let dc = datacenter(text(b, "BucketRegion").unwrap_or_default());
            d.insert("datacenters".into(), Value::Object(dc));
            Some(Value::Object(d))
        })
        .collect();
    Ok(Page {
        items: out,
        next: next_token(root, "ContinuationToken"),
        partial: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_have_aws_form() {
        for ok in [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "us-east-1 (N. Virginia)",
            "evil.com/x-1",
            "US-EAST-1",
            "a-b-c",
            "127.0.0.1",
            "us-east-1.attacker.example",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn the_calls_are_the_contracts() {
        let aws = maestro_contract::providers::provider("aws").expect("aws");
        let contract: Vec<(&str, &str, &str)> = aws
            .tasks
            .iter()
            .flat_map(|t| {
                t.commands
                    .iter()
                    .map(move |c| (t.name, c.command, c.access))
            })
            .collect();
        let here: Vec<(&str, &str, &str)> = CALLS
            .iter()
            .map(|c| (c.task, command_of(c), c.access))
            .collect();
        assert_eq!(
            here, contract,
            "one call here per command of the contract, in order"
        );
        assert_eq!((aws.task_names().len(), CALLS.len()), (19, 29));
        for t in aws.tasks {
            assert!(t.runs, "{}", t.name);
            let kind = AwsProvider::kind_of(t.name).expect("scanned");
            assert_eq!(kind.collection, t.commands[0].entity, "{}", t.name);
            assert!(
                t.commands.iter().all(|c| c.entity == kind.collection),
                "{}: one collection per task",
                t.name
            );
            let once: Vec<bool> = calls_of(t.name).map(|c| c.service.once).collect();
            assert!(once.iter().all(|o| *o == kind.global), "{}", t.name);
        }
        for c in CALLS {
            if c.shape != Shape::Parsed {
                assert!(!c.items.is_empty(), "{} has an item path", c.access);
            }
            if let Some(p) = c.page_size {
                assert!(p.min >= 1 && p.min <= p.max, "{}", c.access);
                assert!(!c.token_param.is_empty(), "{} pages", c.access);
            }
        }
        assert!(matches!(
            AwsProvider::kind_of("flavor-list"),
            Err(ProviderError::UnknownTask { .. })
        ));
    }

    const INSTANCES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r1</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-0abc</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-1.ec2.internal</privateDnsName>
          <dnsName></dnsName>
          <keyName>ops</keyName>
          <instanceType>t3.micro</instanceType>
          <launchTime>2024-01-02T03:04:05.000Z</launchTime>
          <placement><availabilityZone>us-east-1a</availabilityZone></placement>
          <monitoring><state>disabled</state></monitoring>
          <subnetId>subnet-1</subnetId>
          <vpcId>vpc-1</vpcId>
          <privateIpAddress>10.0.0.1</privateIpAddress>
          <groupSet><item><groupId>sg-1</groupId><groupName>web</groupName></item></groupSet>
          <blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>vol-1</volumeId><status>attached</status><deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>
          <tagSet>
            <item><key>Name</key><value>web-1</value></item>
            <item><key>environment</key><value>prod</value></item>
          </tagSet>
          <ebsOptimized>false</ebsOptimized>
        </item>
        <item>
          <instanceId>i-0def</instanceId>
          <instanceState><code>48</code><name>terminated</name></instanceState>
          <tagSet/>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>tok-2</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn instances_translate_to_maestro_servers() {
        let page = parse_instances(INSTANCES, "us-east-1").expect("parsed");
        assert_eq!(page.next.as_deref(), Some("tok-2"));
        assert_eq!(page.items.len(), 2);
        let s = &page.items[0];
        assert_eq!(s["unique_id"], "i-0abc");
        assert_eq!(s["name"], "web-1");
        assert_eq!(s["environment"], "prod");
        assert_eq!(s["status"], "Active");
        assert_eq!(s["active"], true);
        assert_eq!(
            s["tags"],
            json!([{"key": "Name", "value": "web-1"}, {"key": "environment", "value": "prod"}])
        );
        assert_eq!(s["datacenters"]["provider"], "AWS");
        assert_eq!(s["datacenters"]["region"], "us-east-1");
        assert_eq!(s["datacenters"]["zone"], "us-east-1a");
        assert_eq!(s["datacenters"]["instance"], "t3.micro");
        assert_eq!(s["ipv4_private"], "10.0.0.1");
        assert!(s.get("dns_public").is_none(), "empty elements are left out");
        assert_eq!(s["storage"][0]["unique_id"], "vol-1");
        assert_eq!(s["storage"][0]["delete_termination"], true);
        assert_eq!(s["metas"]["security_groups"][0]["group_id"], "sg-1");
        let t = &page.items[1];
        assert_eq!(t["name"], "i-0def");
        assert_eq!(t["status"], "Terminated");
        assert_eq!(t["active"], false);
        assert_eq!(t["tags"], json!([]));
    }

    #[test]
    fn volumes_groups_and_buckets_translate() {
        let v = r#"<DescribeVolumesResponse><volumeSet><item><volumeId>vol-9</volumeId>
            <size>8</size><availabilityZone>eu-west-1b</availabilityZone><status>in-use</status>
            <attachmentSet><item><instanceId>i-1</instanceId><device>/dev/sdf</device></item></attachmentSet>
            <volumeType>gp3</volumeType><encrypted>true</encrypted>
            <tagSet><item><key>name</key><value>data</value></item></tagSet></item></volumeSet>
            </DescribeVolumesResponse>"#;
        let page = parse_volumes(v, "eu-west-1").expect("parsed");
        assert_eq!(page.next, None);
        let d = &page.items[0];
        assert_eq!(d["name"], "data");
        assert_eq!(d["size"], 8);
        assert_eq!(d["status"], "Active");
        assert_eq!(d["encrypted"], true);
        assert_eq!(d["attachments"][0]["instance_id"], "i-1");
        assert_eq!(d["datacenters"]["zone"], "eu-west-1b");

        let g = r#"<DescribeSecurityGroupsResponse><securityGroupInfo><item>
            <ownerId>123</ownerId><groupId>sg-9</groupId><groupName>ssh</groupName>
            <groupDescription>ssh in</groupDescription><vpcId>vpc-1</vpcId>
            <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>
            <groups/><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges></item></ipPermissions>
            <ipPermissionsEgress/></item></securityGroupInfo><nextToken>n</nextToken>
            </DescribeSecurityGroupsResponse>"#;
        let page = parse_security_groups(g, "eu-west-1").expect("parsed");
        assert_eq!(page.next.as_deref(), Some("n"));
        let d = &page.items[0];
        assert_eq!(d["name"], "ssh");
        assert_eq!(d["family"], "SecurityGroup");
        assert_eq!(d["ip_permissions"][0]["from_port"], 22);
        assert_eq!(d["ip_permissions"][0]["ip_ranges"], json!(["10.0.0.0/8"]));

        let b = r#"<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Owner><ID>x</ID></Owner><Buckets><Bucket><Name>logs</Name>
            <CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>
            </ListAllMyBucketsResult>"#;
        let page = parse_buckets(b).expect("parsed");
        assert_eq!(page.items[0]["unique_id"], "logs");
        assert_eq!(page.items[0]["family"], "ObjectStorage");
        assert_eq!(page.items[0]["datacenters"], json!({"provider": "AWS"}));
    }

    #[test]
    fn errors_are_classified_without_echoing_keys() {
        let ec2 = r#"<Response><Errors><Error><Code>AuthFailure</Code>
            <Message>AWS was not able to validate the provided access credentials</Message>
            </Error></Errors><RequestID>x</RequestID></Response>"#;
        let (code, msg) = error_of(ec2);
        assert!(matches!(
            classify(401, &code, &msg, None),
            ProviderError::Auth(_)
        ));
        let throttled = classify(503, "RequestLimitExceeded", "slow down", None);
        assert!(matches!(throttled, ProviderError::Transient { .. }));
        assert!(matches!(
            classify(500, "", "", None),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            classify(400, "InvalidParameterValue", "bad", None),
            ProviderError::Api(_)
        ));
        let keys = AwsKeys::from_credentials(&Credentials::from_claims(
            json!({"access": "AKIAEXAMPLE", "secret": "s3cr3t"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ))
        .expect("keys");
        assert!(!format!("{keys:?}").contains("s3cr3t"));
        let headers = keys
            .sign(
                "POST",
                "http://127.0.0.1:5000/",
                "ec2",
                "us-east-1",
                b"Action=DescribeInstances",
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .expect("signed");
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/ec2/aws4_request"), "{auth}");
        assert!(!auth.contains("s3cr3t"));
    }

    /// The answer of `task`'s call `n` as the scan reads it.
    fn page_of(task: &str, n: usize, body: &str) -> Page {
        let call = calls_of(task).nth(n).expect("call");
        let tree = answer_tree(call.service.protocol, body).expect("answer");
        Page {
            items: translate_page(call, &tree),
            next: next_of(call, &tree),
            partial: false,
        }
    }

    #[test]
    fn calls_moto_lacks_translate_from_awss_documented_answers() {
        // CloudSearch DescribeDomains, the example of AWS's API reference.
        let page = page_of(
            "search-list",
            0,
            r#"<DescribeDomainsResponse xmlns="http://cloudsearch.amazonaws.com/doc/2013-01-01/">
              <DescribeDomainsResult><DomainStatusList><member>
                <Created>true</Created><DomainId>1234567890/movies</DomainId>
                <SearchService><Endpoint>search-movies-rr2f34ofg56xneuemujamut52i.us-east-1.cloudsearch.amazonaws.com</Endpoint></SearchService>
                <ARN>arn:aws:cloudsearch:us-east-1:1234567890:domain/movies</ARN>
                <SearchInstanceCount>1</SearchInstanceCount><Deleted>false</Deleted>
                <DocService><Endpoint>doc-movies-rr2f34ofg56xneuemujamut52i.us-east-1.cloudsearch.amazonaws.com</Endpoint></DocService>
                <DomainName>movies</DomainName><Processing>false</Processing>
                <SearchInstanceType>search.m1.small</SearchInstanceType>
                <SearchPartitionCount>1</SearchPartitionCount>
                <RequiresIndexDocuments>false</RequiresIndexDocuments>
              </member></DomainStatusList></DescribeDomainsResult>
              <ResponseMetadata><RequestId>c4f3d0a5-8b9a-11e2-a8a6-09d3c1e0bbaa</RequestId></ResponseMetadata>
            </DescribeDomainsResponse>"#,
        );
        assert_eq!(page.next, None);
        let d = &page.items[0];
        assert_eq!(d["unique_id"], "1234567890/movies");
        assert_eq!(d["name"], "movies");
        assert_eq!(d["engine"], "CloudSearch");
        assert_eq!(d["own"], 1);
        assert_eq!(d["deleted"], false);
        assert_eq!(
            d["role"]["arn"],
            "arn:aws:cloudsearch:us-east-1:1234567890:domain/movies"
        );
        assert_eq!(d["role"]["search_instance_count"], 1);
        assert_eq!(d["role"]["search_instance_type"], "search.m1.small");
        assert!(
            d["role"]["doc_service"]["Endpoint"]
                .as_str()
                .is_some_and(|e| e.starts_with("doc-movies"))
        );

        // CloudFront ListStreamingDistributions (RTMP), AWS's example.
        let page = page_of(
            "cdns-list",
            1,
            r#"<StreamingDistributionList xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
              <Marker></Marker><NextMarker>EMLARXS9EXAMPLE</NextMarker><MaxItems>1</MaxItems>
              <IsTruncated>true</IsTruncated><Quantity>1</Quantity>
              <Items><StreamingDistributionSummary>
                <Id>EGTXBD79EXAMPLE</Id>
                <ARN>arn:aws:cloudfront::123456789012:streaming-distribution/EGTXBD79EXAMPLE</ARN>
                <Status>Deployed</Status><LastModifiedTime>2012-05-19T19:37:58Z</LastModifiedTime>
                <DomainName>s5c39gqb8ow64r.cloudfront.net</DomainName>
                <S3Origin><DomainName>mybucket.s3.amazonaws.com</DomainName>
                  <OriginAccessIdentity>origin-access-identity/cloudfront/E74FTE3AEXAMPLE</OriginAccessIdentity></S3Origin>
                <Aliases><Quantity>1</Quantity><Items><CNAME>example.com</CNAME></Items></Aliases>
                <TrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></TrustedSigners>
                <Comment>example comment</Comment><PriceClass>PriceClass_All</PriceClass>
                <Enabled>true</Enabled>
              </StreamingDistributionSummary></Items>
            </StreamingDistributionList>"#,
        );
        assert_eq!(page.next.as_deref(), Some("EMLARXS9EXAMPLE"));
        let d = &page.items[0];
        assert_eq!(d["unique_id"], "EGTXBD79EXAMPLE");
        assert_eq!(d["name"], "s5c39gqb8ow64r.cloudfront.net");
        assert_eq!(d["type"], "RTMP");
        assert_eq!(d["status"], "Deployed");
        assert_eq!(d["active"], true);
        assert_eq!(d["created_at"], "2012-05-19T19:37:58Z");
        assert_eq!(d["role"]["price_class"], "PriceClass_All");
        assert_eq!(d["role"]["enabled"], true);
        assert_eq!(d["role"]["aliases"]["CNAME"], "example.com");
        assert_eq!(
            d["role"]["s3_origin"]["DomainName"],
            "mybucket.s3.amazonaws.com"
        );
    }

    #[test]
    fn json_answers_page_by_their_own_tokens() {
        let page = page_of(
            "dynamodb-list",
            0,
            r#"{"TableNames":["orders","users"],"LastEvaluatedTableName":"users"}"#,
        );
        assert_eq!(page.next.as_deref(), Some("users"));
        assert_eq!(page.items[1]["unique_id"], "users");
        assert_eq!(page.items[1]["name"], "DynamoDB - users");
        let page = page_of(
            "gateway-list",
            0,
            r#"{"item":[{"id":"a1b2","name":"orders","createdDate":1700000000,
                "description":"orders API","endpointConfiguration":{"types":["EDGE"]}}],
                "position":"p2"}"#,
        );
        assert_eq!(page.next.as_deref(), Some("p2"));
        let api = &page.items[0];
        assert_eq!(api["unique_id"], "a1b2");
        assert_eq!(api["created_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(api["role"]["endpoint_configuration"]["types"][0], "EDGE");
        let layers = page_of(
            "serverless-support-list",
            0,
            r#"{"Layers":[{"LayerName":"deps","LayerArn":"arn:aws:lambda:us-east-1:1:layer:deps",
                "LatestMatchingVersion":{"LayerVersionArn":"arn:aws:lambda:us-east-1:1:layer:deps:3",
                "Version":3,"CreatedDate":"2024-01-02T03:04:05.000+0000",
                "CompatibleRuntimes":["python3.12"]}}]}"#,
        );
        assert_eq!(layers.next, None);
        let l = &layers.items[0];
        assert_eq!(l["unique_id"], "arn:aws:lambda:us-east-1:1:layer:deps:3");
        assert_eq!(l["version"], 3);
        assert_eq!(l["runtimes"], json!(["python3.12"]));
        assert!(matches!(
            answer_tree(Protocol::RestJson, "<html>"),
            Err(ProviderError::Invalid(_))
        ));
    }

    #[test]
    fn merged_items_stand_for_the_region() {
        let q = queues_item(
            &[
                "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs".into(),
                "https://sqs.eu-west-1.amazonaws.com/123456789012/mail".into(),
            ],
            "eu-west-1",
        )
        .expect("item");
        assert_eq!(q["unique_id"], "123456789012_eu-west-1");
        assert_eq!(q["name"], "SQS - 123456789012");
        assert_eq!(q["queues"], json!(["jobs", "mail"]));
        assert!(queues_item(&[], "eu-west-1").is_none());
        let s = identities_item(&["example.com".into()], "c1", "us-east-1").expect("item");
        assert_eq!(s["unique_id"], "c1_ses_us-east-1");
        assert!(identities_item(&[], "c1", "us-east-1").is_none());
        assert!(matches!(
            classify(404, "", "", None),
            ProviderError::Unsupported(_)
        ));
        assert!(matches!(
            classify(400, "InvalidAction", "no such action", None),
            ProviderError::Unsupported(_)
        ));
        let e = ProviderError::Api("boom".into()).within("rds.describe_db_instances");
        assert_eq!(e.to_string(), "rds.describe_db_instances: boom");
    }

    /// A local HTTP endpoint answering each request with the next of `answers` (status,
    /// body), counting the requests; stands in for AWS's throttling, which moto cannot do.
    async fn canned(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        let answers = std::sync::Arc::new(answers);
        let app = axum::Router::new().fallback(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            async move {
                let (status, body) = answers[n.min(answers.len() - 1)];
                (
                    axum::http::StatusCode::from_u16(status).unwrap_or_default(),
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), count)
    }

    fn vpcs_request<'a>(kind: &'a Kind, creds: &'a Credentials) -> PageRequest<'a> {
        PageRequest {
            credentials: creds,
            settings: Box::leak(Box::default()),
            connection: "c1",
            owners: &[],
            kind,
            command: 0,
            region: "us-east-1",
            token: None,
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_and_refusals_are_not() {
        use std::sync::atomic::Ordering;
        const THROTTLED: &str = "<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
            <Message>Request limit exceeded.</Message></Error></Errors></Response>";
        const VPCS: &str = "<DescribeVpcsResponse><vpcSet><item><vpcId>vpc-1</vpcId>\
            <state>available</state></item></vpcSet></DescribeVpcsResponse>";
        const REFUSED: &str = "<Response><Errors><Error><Code>UnauthorizedOperation</Code>\
            <Message>not allowed</Message></Error></Errors></Response>";
        let creds = Credentials::from_claims(
            json!({"access": "AKIAEXAMPLE", "secret": "s3cr3t"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let kind = AwsProvider::kind_of("network-list").expect("kind");

        let (url, count) = canned(vec![(503, THROTTLED), (500, ""), (200, VPCS)]).await;
        let p = AwsProvider::new(reqwest::Client::new(), Some(url), 200);
        let page = p
            .page(vpcs_request(&kind, &creds))
            .await
            .expect("third try");
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(page.items[0]["unique_id"], "vpc-1");
        assert_eq!(page.items[0]["status"], "Available");

        let (url, count) = canned(vec![(503, THROTTLED)]).await;
        let p = AwsProvider::new(reqwest::Client::new(), Some(url), 200);
        let e = p
            .page(vpcs_request(&kind, &creds))
            .await
            .expect_err("gives up");
        assert_eq!(count.load(Ordering::SeqCst), REQUEST_ATTEMPTS);
        assert!(matches!(e, ProviderError::Transient { .. }), "{e:?}");
        assert!(e.to_string().starts_with("ec2.describe_vpcs: "), "{e}");

        let (url, count) = canned(vec![(403, REFUSED)]).await;
        let p = AwsProvider::new(reqwest::Client::new(), Some(url), 200);
        let e = p
            .page(vpcs_request(&kind, &creds))
            .await
            .expect_err("refused");
        assert_eq!(count.load(Ordering::SeqCst), 1, "a refusal is not retried");
        assert!(matches!(e, ProviderError::Auth(_)), "{e:?}");
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn page_sizes_stay_within_each_apis_range() {
        let p = AwsProvider::new(reqwest::Client::new(), None, 1);
        let rds = calls_of("dbs-list").next().expect("rds");
        let size = rds
            .page_size
            .map(|s| p.page_size.clamp(s.min, s.max))
            .expect("pages");
        assert_eq!(size, 20, "RDS asks at least 20");
        let body = query_form(rds, Some(&("MaxRecords", size.to_string())), Some("m 1"));
        assert_eq!(
            body,
            "Action=DescribeDBInstances&Version=2014-10-31&MaxRecords=20&Marker=m+1"
        );
        let lambda = calls_of("serverless-list").next().expect("lambda");
        assert_eq!(
            rest_query(lambda, Some(&("MaxItems", "50".into())), Some("a b/c")),
            "MaxItems=50&Marker=a%20b%2Fc"
        );
        assert_eq!(
            p.base(&calls::CLOUDFRONT, "eu-west-1"),
            "https://cloudfront.amazonaws.com"
        );
        assert_eq!(
            p.base(&calls::SES, "eu-west-1"),
            "https://email.eu-west-1.amazonaws.com"
        );
    }
}
