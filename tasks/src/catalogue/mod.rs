//! The Maestro task catalogue: the jobs the fleet exists for, ported from the original Maestro
//! services (see `../shared/reference/maestro-originals.md`) and fixed where they were wrong.
//!
//! Every task holds an `Arc<Services>`: the MongoDB databases, one HTTP client and the
//! configuration, made once per worker from [`CatalogueArgs`].

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mongodb::Database;
use mongodb::options::ClientOptions;

use crate::registry::Registry;
use crate::routes::RoutingTable;

pub mod aggregation;
pub mod aws;
pub mod delivery;
pub mod discovery;
pub mod notify;
pub mod record;
pub mod report;
pub mod webhook;

/// Catalogue settings (flags of `maestro-worker`, each with its environment variable; the
/// names are Maestro's where it had them).
#[derive(Clone, Args)]
pub struct CatalogueArgs {
    /// MongoDB of Maestro's inventory, connections and schedules.
    #[arg(
        long = "mongo-uri",
        env = "MAESTRO_MONGO_URI",
        default_value = "mongodb://127.0.0.1:27017",
        hide_env_values = true
    )]
    pub mongo_uri: String,

    /// Database of the inventory and connections.
    #[arg(
        long = "mongo-database",
        env = "MAESTRO_MONGO_DATABASE",
        default_value = "maestro-client"
    )]
    pub mongo_database: String,

    /// Database the reports are written to.
    #[arg(
        long = "reports-database",
        env = "MAESTRO_REPORTS_DATABASE",
        default_value = "maestro-reports"
    )]
    pub reports_database: String,

    /// Rows per report chunk written at once.
    #[arg(long = "insert-qtd", env = "MAESTRO_INSERT_QTD", default_value_t = 500)]
    pub insert_qtd: usize,

    /// Rows per page when reports are read back.
    #[arg(
        long = "report-result-qtd",
        env = "MAESTRO_REPORT_RESULT_QTD",
        default_value_t = 1500
    )]
    pub report_result_qtd: usize,

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

    /// Items asked per discovery page (EC2 `MaxResults`, kept within 5..=500).
    #[arg(long = "scan-qtd", env = "MAESTRO_SCAN_QTD", default_value_t = 200)]
    pub scan_qtd: usize,

    /// Task routes `task=queue,...` over the defaults (`maestro_tasks::routes`); follow-up
    /// tasks go where these say.
    #[arg(long = "routes", env = "MAESTRO_ROUTES", default_value = "")]
    pub routes: String,

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
            .field("mongo_uri", &"<redacted>")
            .field("mongo_database", &self.mongo_database)
            .field("reports_database", &self.reports_database)
            .field("insert_qtd", &self.insert_qtd)
            .field("report_result_qtd", &self.report_result_qtd)
            .field("translate_qtd", &self.translate_qtd)
            .field("websocket_uri", &self.websocket_uri)
            .field("websocket_secret", &set(&self.websocket_secret))
            .field("audit_uri", &self.audit_uri)
            .field("webhook_secret", &set(&self.webhook_secret))
            .field("secretjwt", &set(&self.secretjwt))
            .field("aws_endpoint", &self.aws_endpoint)
            .field("scan_qtd", &self.scan_qtd)
            .field("routes", &self.routes)
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
    pub http: reqwest::Client,
    /// Where follow-up tasks go.
    pub routes: RoutingTable,
}

impl Services {
    /// The queue of `task` per the routing table, else Celery's default queue.
    pub fn queue_for(&self, task: &str) -> &str {
        self.routes
            .queue_for(task)
            .unwrap_or(crate::routes::QUEUE_CELERY)
    }
}

impl Services {
    /// Checks the settings and makes the clients (nothing connects until first used, so a
    /// worker starts while MongoDB is away; tasks needing it retry).
    pub async fn new(cfg: CatalogueArgs) -> Result<Arc<Self>, String> {
        if cfg.insert_qtd == 0 {
            return Err("--insert-qtd (MAESTRO_INSERT_QTD): must be at least 1".into());
        }
        if cfg.report_result_qtd == 0 {
            return Err(
                "--report-result-qtd (MAESTRO_REPORT_RESULT_QTD): must be at least 1".into(),
            );
        }
        if cfg.translate_qtd == 0 {
            return Err("--translate-qtd (MAESTRO_TRANSLATE_QTD): must be at least 1".into());
        }
        let routes = RoutingTable::with_overrides(&cfg.routes)
            .map_err(|e| format!("--routes (MAESTRO_ROUTES): {e}"))?;
        let mut opts = ClientOptions::parse(&cfg.mongo_uri)
            .await
            .map_err(|e| format!("--mongo-uri (MAESTRO_MONGO_URI): {e}"))?;
        opts.app_name.get_or_insert_with(|| "maestro-worker".into());
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        let client = mongodb::Client::with_options(opts)
            .map_err(|e| format!("--mongo-uri (MAESTRO_MONGO_URI): {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.http_timeout_secs.max(1)))
            .user_agent(concat!("maestro-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            inventory: client.database(&cfg.mongo_database),
            reports: client.database(&cfg.reports_database),
            cfg,
            http,
            routes,
        }))
    }
}

/// Registers every catalogue task.
pub fn register(registry: &mut Registry, svc: &Arc<Services>) -> Result<(), String> {
    for task in report::all(svc) {
        registry.register(task)?;
    }
    registry.register(Arc::new(webhook::Webhook::new(svc.clone())))?;
    registry.register(Arc::new(notify::Notify::new(svc.clone())))?;
    registry.register(Arc::new(aggregation::Aggregation::new(svc.clone())))?;
    registry.register(Arc::new(record::Record::new(svc.clone())))?;
    for task in discovery::all(svc)? {
        registry.register(task)?;
    }
    Ok(())
}
