//! The Maestro task catalogue: the jobs the fleet exists for, ported from the original Maestro
//! services and fixed where they were wrong (docs/catalogue/ says where), on the
//! `maestro-worker` runtime. The `maestro-worker` binary is this crate's: the runtime's flags
//! plus [`CatalogueArgs`].
//!
//! - `discovery`   `maestro.discovery.scan`: the scan lifecycle, inventory writes, providers
//! - `aws`         the AWS provider (SigV4; every call of Maestro's 19 AWS tasks)
//! - `report`      `maestro.report.general|pivot|upload|finish`: reports as chords of chunks
//! - `aggregation` `maestro.aggregation`: a pipeline's output as a report
//! - `webhook`     `maestro.webhook`: signed JSON deliveries
//! - `notify`      `maestro.notify`: websocket messages and audit records
//! - `delivery`    one outgoing HTTP delivery and its retry policy (webhook, notify)
//! - `scheduler`   `maestro.scheduler.run`: server-app's scheduled HTTP jobs
//! - `record`      `maestro.record`: how often each task id really ran
//!
//! Every task is a `#[task]` function. Each takes the worker's `Arc<Services>` as state (the
//! MongoDB databases, one HTTP client and the configuration, made once per worker from
//! [`CatalogueArgs`]) and its whole call as its `maestro_contract` request (`#[args]`), the type
//! the API checks the same request with; [`register`] adds the tasks and their state.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use maestro_broker::config::{ConfigError, config_error as err};
use maestro_contract::{MongoArgs, ReportsArgs};
use mongodb::Database;
use mongodb::options::ClientOptions;

use maestro_tasks::{DuplicateTask, Registry, RoutingTable};

pub mod aggregation;
pub mod analytics;
pub mod aws;
pub mod azure;
pub mod delivery;
pub mod digitalocean;
pub mod discovery;
pub mod egress;
pub mod imports;
mod mongo;
pub mod notify;
pub mod openstack;
pub mod record;
pub mod report;
pub mod scheduler;
pub mod spaces;
pub mod webhook;

/// Catalogue settings (flags of `maestro-worker`, each with its environment variable; the
/// names are Maestro's where it had them).
#[derive(Clone, Args)]
pub struct CatalogueArgs {
    #[command(flatten)]
    pub mongo: MongoArgs,

    #[command(flatten)]
    pub reports: ReportsArgs,

    /// Run the diagnostic tasks (`maestro.noop`, `echo`, `sleep`, `fail`, and `maestro.record`,
    /// which writes into any inventory collection it is given). Off in production; the test
    /// suite and the benchmarks turn it on.
    #[arg(long = "enable-diagnostics", env = "MAESTRO_ENABLE_DIAGNOSTICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_diagnostics: bool,

    /// Rows per report chunk written at once.
    #[arg(long = "insert-qtd", env = "MAESTRO_INSERT_QTD", default_value_t = 500)]
    pub insert_qtd: usize,

    /// Discovery items translated per batch.
    #[arg(
        long = "translate-qtd",
        env = "MAESTRO_TRANSLATE_QTD",
        default_value_t = 50
    )]
    pub translate_qtd: usize,

    /// Websocket service (Centrifugo HTTP API) base URL; unset skips websocket notifications.
    #[arg(long = "websocket-uri", env = "MAESTRO_WEBSOCKET_URI")]
    pub websocket_uri: Option<String>,

    /// Centrifugo API key (`Authorization: apikey <secret>`).
    #[arg(
        long = "websocket-secret",
        env = "MAESTRO_WEBSOCKET_SECRET",
        hide_env_values = true
    )]
    pub websocket_secret: Option<String>,

    /// Audit service base URL; unset skips audit records.
    #[arg(long = "audit-uri", env = "MAESTRO_AUDIT_URI")]
    pub audit_uri: Option<String>,

    /// Key of the webhook HMAC-SHA256 signature header; unset sends unsigned webhooks.
    #[arg(
        long = "webhook-secret",
        env = "MAESTRO_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,

    /// Secret of the HS256 tokens Maestro stored connection credentials in.
    #[arg(long = "secretjwt", env = "MAESTRO_SECRETJWT", hide_env_values = true)]
    pub secretjwt: Option<String>,

    /// One endpoint for every AWS API discovery calls (moto, LocalStack), e.g.
    /// `http://127.0.0.1:5000`; unset uses AWS's regional endpoints.
    #[arg(long = "aws-endpoint", env = "MAESTRO_AWS_ENDPOINT")]
    pub aws_endpoint: Option<String>,

    /// DigitalOcean's API for discovery, e.g. a stand-in's `http://127.0.0.1:8081`; unset uses
    /// `https://api.digitalocean.com`.
    #[arg(long = "digitalocean-endpoint", env = "MAESTRO_DIGITALOCEAN_ENDPOINT")]
    pub digitalocean_endpoint: Option<String>,

    /// One S3-compatible endpoint for every DigitalOcean Spaces region (a stand-in such as
    /// moto); unset uses `https://<region>.digitaloceanspaces.com`.
    #[arg(long = "spaces-endpoint", env = "MAESTRO_SPACES_ENDPOINT")]
    pub spaces_endpoint: Option<String>,

    /// Azure Resource Manager for discovery (a stand-in's `http://127.0.0.1:8082`); unset uses
    /// `https://management.azure.com`.
    #[arg(long = "azure-endpoint", env = "MAESTRO_AZURE_ENDPOINT")]
    pub azure_endpoint: Option<String>,

    /// Where Azure service principals log in (a stand-in's URL); unset uses Microsoft Entra
    /// ID's `https://login.microsoftonline.com`.
    #[arg(long = "azure-login-endpoint", env = "MAESTRO_AZURE_LOGIN_ENDPOINT")]
    pub azure_login_endpoint: Option<String>,

    /// Items asked per discovery page (EC2 `MaxResults`, kept within 5..=500).
    #[arg(long = "scan-qtd", env = "MAESTRO_SCAN_QTD", default_value_t = 200)]
    pub scan_qtd: usize,

    /// Task routes `task=queue,...` over Maestro's defaults (`maestro_contract::routes`);
    /// follow-up tasks go where these say.
    #[arg(long = "routes", env = "MAESTRO_ROUTES", default_value = "")]
    pub routes: String,

    /// Maestro's discovery service, where scheduled `connections` jobs go (maestro-api, e.g.
    /// `http://maestro-api:8888`); unset fails those jobs with a clear error.
    #[arg(long = "discovery-uri", env = "MAESTRO_DISCOVERY_URI")]
    pub discovery_uri: Option<String>,

    /// Maestro's report service, where scheduled `reports` jobs go (maestro-api).
    #[arg(long = "report-uri", env = "MAESTRO_REPORT_URI")]
    pub report_uri: Option<String>,

    /// Maestro's server-app, where imports read the files users uploaded
    /// (`GET /users/upload/file`, with the private token), e.g. `http://server-app:8888`.
    #[arg(long = "server-uri", env = "MAESTRO_SERVER_URI")]
    pub server_uri: Option<String>,

    /// Maestro's analytics-front, where the analytics maps are sent (`POST /graphs`), e.g.
    /// `http://analytics-front:9999`.
    #[arg(long = "analytics-front-uri", env = "MAESTRO_ANALYTICS_FRONT_URI")]
    pub analytics_front_uri: Option<String>,

    /// Maestro's analytics service, for scheduled jobs with `source: analytics`.
    #[arg(long = "analytics-uri", env = "MAESTRO_ANALYTICS_URI")]
    pub analytics_uri: Option<String>,

    /// Secret of Maestro's private token (HS256), sent to those services.
    #[arg(
        long = "secret-jwt-private",
        env = "MAESTRO_SECRETJWT_PRIVATE",
        hide_env_values = true
    )]
    pub secret_jwt_private: Option<String>,

    /// The private token's `noauth` claim.
    #[arg(long = "noauth", env = "MAESTRO_NOAUTH", hide_env_values = true)]
    pub noauth: Option<String>,

    /// server-app's schedules (in MAESTRO_MONGO_DATABASE): a scheduled job that fails its
    /// precheck is disabled there, and chained schedules are read from it.
    #[arg(
        long = "schedules-collection",
        env = "MAESTRO_SCHEDULES_COLLECTION",
        default_value = maestro_contract::schedule::DEFAULT_COLLECTION
    )]
    pub schedules_collection: String,

    /// Destinations a webhook (or a scheduled webhook job) may reach besides public addresses:
    /// comma-separated host names, `*.domain`, IP addresses and CIDR networks
    /// (`hooks.internal,10.20.0.0/16`). The configured Maestro services are not checked.
    #[arg(
        long = "egress-allow",
        env = "MAESTRO_EGRESS_ALLOW",
        default_value = ""
    )]
    pub egress_allow: String,

    /// Seconds an outgoing HTTP request may take.
    #[arg(
        long = "http-timeout",
        env = "MAESTRO_HTTP_TIMEOUT",
        default_value_t = 10
    )]
    pub http_timeout_secs: u64,
}

/// Secrets and the MongoDB URI (which may hold a password) are never printed.
impl std::fmt::Debug for CatalogueArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("CatalogueArgs")
            .field("mongo", &self.mongo)
            .field("reports", &self.reports)
            .field("enable_diagnostics", &self.enable_diagnostics)
            .field("insert_qtd", &self.insert_qtd)
            .field("translate_qtd", &self.translate_qtd)
            .field("websocket_uri", &self.websocket_uri)
            .field("websocket_secret", &set(&self.websocket_secret))
            .field("audit_uri", &self.audit_uri)
            .field("webhook_secret", &set(&self.webhook_secret))
            .field("secretjwt", &set(&self.secretjwt))
            .field("aws_endpoint", &self.aws_endpoint)
            .field("digitalocean_endpoint", &self.digitalocean_endpoint)
            .field("spaces_endpoint", &self.spaces_endpoint)
            .field("azure_endpoint", &self.azure_endpoint)
            .field("azure_login_endpoint", &self.azure_login_endpoint)
            .field("scan_qtd", &self.scan_qtd)
            .field("routes", &self.routes)
            .field("discovery_uri", &self.discovery_uri)
            .field("report_uri", &self.report_uri)
            .field("analytics_uri", &self.analytics_uri)
            .field("server_uri", &self.server_uri)
            .field("analytics_front_uri", &self.analytics_front_uri)
            .field("secret_jwt_private", &set(&self.secret_jwt_private))
            .field("noauth", &set(&self.noauth))
            .field("schedules_collection", &self.schedules_collection)
            .field("egress_allow", &self.egress_allow)
            .field("http_timeout_secs", &self.http_timeout_secs)
            .finish()
    }
}

/// What catalogue tasks share.
pub struct Services {
    pub cfg: CatalogueArgs,
    /// `MAESTRO_MONGO_DATABASE`: inventory, connections.
    pub inventory: Database,
    /// `MAESTRO_REPORTS_DATABASE`: report rows.
    pub reports: Database,
    /// For the services the operator configured (Maestro's, Centrifugo, audit, AWS).
    pub http: reqwest::Client,
    /// For URLs from callers and stored documents: public destinations (and the operator's
    /// `MAESTRO_EGRESS_ALLOW`) only, checked on the addresses it connects to
    /// ([`egress`]). Neither client follows redirects.
    pub outbound: reqwest::Client,
    pub egress: Arc<egress::EgressPolicy>,
    /// Where follow-up tasks go.
    pub routes: RoutingTable,
    /// Maestro's services, for scheduled jobs (`MAESTRO_<SOURCE>_URI`).
    pub discovery_uri: Option<reqwest::Url>,
    pub report_uri: Option<reqwest::Url>,
    pub analytics_uri: Option<reqwest::Url>,
    /// server-app, where uploaded files are read.
    pub server_uri: Option<reqwest::Url>,
    /// analytics-front, where maps are sent.
    pub analytics_front_uri: Option<reqwest::Url>,
}

impl Services {
    /// server-app's schedules.
    pub fn schedules(&self) -> mongodb::Collection<mongodb::bson::Document> {
        self.inventory.collection(&self.cfg.schedules_collection)
    }

    /// The queue of `task` per the routing table, else Celery's default queue.
    pub fn queue_for(&self, task: &str) -> &str {
        self.routes
            .queue_for(task)
            .unwrap_or(maestro_contract::names::QUEUE_CELERY)
    }
}

impl Services {
    /// Checks the settings and makes the clients (nothing connects until first used, so a
    /// worker starts while MongoDB is away; tasks needing it retry).
    pub async fn new(cfg: CatalogueArgs) -> Result<Arc<Self>, ConfigError> {
        if cfg.insert_qtd == 0 {
            return Err(err(
                "--insert-qtd",
                "MAESTRO_INSERT_QTD",
                "must be at least 1",
            ));
        }
        if cfg.translate_qtd == 0 {
            return Err(err(
                "--translate-qtd",
                "MAESTRO_TRANSLATE_QTD",
                "must be at least 1",
            ));
        }
        if let Some(e) = &cfg.aws_endpoint {
            http_url("--aws-endpoint", "MAESTRO_AWS_ENDPOINT", e)?;
        }
        if let Some(e) = &cfg.spaces_endpoint {
            http_url("--spaces-endpoint", "MAESTRO_SPACES_ENDPOINT", e)?;
        }
        if let Some(e) = &cfg.azure_endpoint {
            http_url("--azure-endpoint", "MAESTRO_AZURE_ENDPOINT", e)?;
        }
        if let Some(e) = &cfg.azure_login_endpoint {
            http_url("--azure-login-endpoint", "MAESTRO_AZURE_LOGIN_ENDPOINT", e)?;
        }
        if let Some(e) = &cfg.digitalocean_endpoint {
            http_url(
                "--digitalocean-endpoint",
                "MAESTRO_DIGITALOCEAN_ENDPOINT",
                e,
            )?;
        }
        let service = |flag, var, v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| http_url(flag, var, s))
                .transpose()
        };
        let discovery_uri = service(
            "--discovery-uri",
            "MAESTRO_DISCOVERY_URI",
            &cfg.discovery_uri,
        )?;
        let report_uri = service("--report-uri", "MAESTRO_REPORT_URI", &cfg.report_uri)?;
        let analytics_uri = service(
            "--analytics-uri",
            "MAESTRO_ANALYTICS_URI",
            &cfg.analytics_uri,
        )?;
        let server_uri = service("--server-uri", "MAESTRO_SERVER_URI", &cfg.server_uri)?;
        let analytics_front_uri = service(
            "--analytics-front-uri",
            "MAESTRO_ANALYTICS_FRONT_URI",
            &cfg.analytics_front_uri,
        )?;
        maestro_contract::check::check_collection(
            "schedules_collection",
            &cfg.schedules_collection,
        )
        .map_err(|e| {
            err(
                "--schedules-collection",
                "MAESTRO_SCHEDULES_COLLECTION",
                e.reason,
            )
        })?;
        let routes = maestro_contract::routes::maestro_with(&cfg.routes)
            .map_err(|e| err("--routes", "MAESTRO_ROUTES", e))?;
        let bad_uri =
            |e: mongodb::error::Error| err("--mongo-uri", "MAESTRO_MONGO_URI", e.to_string());
        let mut opts = ClientOptions::parse(&cfg.mongo.mongo_uri)
            .await
            .map_err(bad_uri)?;
        opts.app_name.get_or_insert_with(|| "maestro-worker".into());
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        let client = mongodb::Client::with_options(opts).map_err(bad_uri)?;
        let egress = Arc::new(
            egress::EgressPolicy::parse(&cfg.egress_allow)
                .map_err(|e| err("--egress-allow", "MAESTRO_EGRESS_ALLOW", e))?,
        );
        let http_client = || {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(cfg.http_timeout_secs.max(1)))
                .user_agent(concat!("maestro-worker/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
        };
        let built = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| {
                err(
                    "--http-timeout",
                    "MAESTRO_HTTP_TIMEOUT",
                    format!("HTTP client: {e}"),
                )
            })
        };
        let http = built(http_client())?;
        let outbound = built(
            http_client()
                .no_proxy()
                .dns_resolver(Arc::new(egress::GuardedResolver::new(egress.clone()))),
        )?;
        Ok(Arc::new(Self {
            inventory: client.database(&cfg.mongo.mongo_database),
            reports: client.database(&cfg.reports.reports_database),
            cfg,
            http,
            outbound,
            egress,
            routes,
            discovery_uri,
            report_uri,
            analytics_uri,
            server_uri,
            analytics_front_uri,
        }))
    }
}

/// `value` as an http(s) URL with a host, or the error naming the flag.
fn http_url(
    flag: &'static str,
    var: &'static str,
    value: &str,
) -> Result<reqwest::Url, ConfigError> {
    let bad = |why: String| err(flag, var, why);
    let url = reqwest::Url::parse(value).map_err(|e| bad(format!("{value:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(format!("{value:?} is not an http(s) URL with a host")));
    }
    Ok(url)
}

/// Registers every catalogue task (`maestro.record` only with `--enable-diagnostics`) and the
/// state they need: `svc`, the discovery providers, notify's skip notices.
pub fn register(registry: &mut Registry, svc: &Arc<Services>) -> Result<(), DuplicateTask> {
    registry.insert_state(svc.clone());
    registry.add(report::general)?;
    registry.add(report::pivot)?;
    registry.add(report::upload)?;
    registry.add(report::finish)?;
    registry.add(webhook::webhook)?;
    registry.insert_state(notify::SkipNotices::default());
    registry.add(notify::notify)?;
    registry.add(aggregation::aggregation)?;
    registry.add(analytics::graph)?;
    if svc.cfg.enable_diagnostics {
        registry.add(record::record)?;
    }
    registry.add(scheduler::scheduler_run)?;
    let aws = aws::AwsProvider::new(
        svc.http.clone(),
        svc.cfg.aws_endpoint.clone(),
        svc.cfg.scan_qtd,
    );
    let digitalocean = digitalocean::DigitalOceanProvider::new(
        svc.http.clone(),
        svc.cfg.digitalocean_endpoint.clone(),
        svc.cfg.scan_qtd,
    );
    let spaces = spaces::SpacesProvider::new(svc.http.clone(), svc.cfg.spaces_endpoint.clone());
    // The endpoints are URLs: the configuration was checked when the services were made.
    let url = |e: &Option<String>| e.as_deref().and_then(|e| reqwest::Url::parse(e).ok());
    let azure = azure::AzureProvider::new(
        svc.http.clone(),
        url(&svc.cfg.azure_endpoint),
        url(&svc.cfg.azure_login_endpoint),
    );
    // OpenStack's Keystone and endpoints are the connection's: the guarded client.
    let openstack = openstack::OpenStackProvider::new(
        svc.outbound.clone(),
        svc.egress.clone(),
        svc.cfg.scan_qtd,
    );
    registry.insert_state(discovery::Providers(vec![
        Arc::new(aws),
        Arc::new(digitalocean),
        Arc::new(spaces),
        Arc::new(openstack),
        Arc::new(azure),
        Arc::new(imports::ImportProvider::new(
            imports::Format::File,
            svc.clone(),
        )),
        Arc::new(imports::ImportProvider::new(
            imports::Format::Ansible,
            svc.clone(),
        )),
        Arc::new(imports::ImportProvider::new(
            imports::Format::Terraform,
            svc.clone(),
        )),
    ]));
    registry.add(discovery::scan)?;
    Ok(())
}
