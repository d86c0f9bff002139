//! What every handler shares: config, token checker, enqueuer, result store, schedules
//! collection, metrics. Nothing here connects at construction: the broker, the result store
//! and MongoDB are reached on first use, so the API starts (and reports not ready) while they
//! are away and recovers when they return.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use maestro_results::ResultStore;
use mongodb::bson::Document;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::auth::Authenticator;
use crate::config::ApiConfig;
use crate::enqueue::Enqueuer;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long MongoDB server selection may take before a request gets 503.
pub(crate) const MONGO_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// The result store, connected on first use.
pub struct Results {
    url: secrecy::SecretString,
    store: OnceCell<ResultStore>,
    deadline: Duration,
}

impl Results {
    /// The store, connecting first if needed.
    pub async fn get(&self) -> Result<&ResultStore, ApiError> {
        let connect = self
            .store
            .get_or_try_init(|| ResultStore::connect(self.url.expose_secret(), None));
        match tokio::time::timeout(self.deadline, connect).await {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(e)) => Err(ApiError::StoreUnavailable(format!("result store: {e}"))),
            Err(_) => Err(ApiError::StoreUnavailable(format!(
                "result store did not answer within {:?}",
                self.deadline
            ))),
        }
    }
}

/// A `/readyz` answer: when it was checked, whether all is up, each dependency's state.
pub(crate) type Readiness = (std::time::Instant, bool, Vec<(&'static str, bool)>);

/// Shared state of the handlers. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ApiConfig>,
    pub auth: Arc<Authenticator>,
    pub enqueuer: Arc<Enqueuer>,
    pub results: Option<Arc<Results>>,
    pub maestro_db: Database,
    /// Where the catalogue writes reports.
    pub reports_db: Database,
    pub metrics: Arc<Metrics>,
    /// Requests being handled ([`ApiConfig::max_in_flight`] permits).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The last `/readyz` answer, reused for a second (and computed by one request at a time),
    /// so the open endpoint is no amplifier.
    pub readiness: Arc<tokio::sync::Mutex<Option<Readiness>>>,
}

impl AppState {
    /// State for `config`; connects nothing yet.
    pub async fn new(config: ApiConfig) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::default());
        let enqueuer = Enqueuer::new(
            &config.broker,
            config.amqp_connections,
            config.queue_type,
            config.publish_timeout,
            config.task_sent_events,
            metrics.clone(),
        )?;
        let mut options = ClientOptions::parse(config.mongo_uri.expose_secret())
            .await
            .map_err(|e| format!("MAESTRO_MONGO_URI: {e}"))?;
        options.app_name.get_or_insert_with(|| "maestro-api".into());
        options
            .server_selection_timeout
            .get_or_insert(MONGO_SELECTION_TIMEOUT);
        let client =
            Client::with_options(options).map_err(|e| format!("MAESTRO_MONGO_URI: {e}"))?;
        let maestro_db = client.database(&config.mongo_database);
        let reports_db = client.database(&config.reports_database);
        let results = config.result_backend.clone().map(|url| {
            Arc::new(Results {
                url,
                store: OnceCell::new(),
                deadline: config.publish_timeout.max(MONGO_SELECTION_TIMEOUT),
            })
        });
        Ok(Self {
            auth: Arc::new({
                let a = Authenticator::new(
                    config.jwt_secret.expose_secret(),
                    config.noauth.expose_secret(),
                );
                if config.jwt_require_exp {
                    a.requiring_exp()
                } else {
                    a
                }
            }),
            enqueuer: Arc::new(enqueuer),
            results,
            maestro_db,
            reports_db,
            metrics,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            readiness: Arc::default(),
            config: Arc::new(config),
        })
    }

    /// The schedules collection.
    pub fn schedules(&self) -> Collection<Document> {
        self.maestro_db
            .collection(&self.config.schedules_collection)
    }
}

/// The token checker, for the auth middleware (which needs nothing else of the state).
impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// The metrics, for the request-counting middleware.
impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}
