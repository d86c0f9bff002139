//! The flags naming Maestro's MongoDB, shared by the API, beat and the catalogue's worker.

use clap::Args;

/// Default URI of Maestro's MongoDB.
pub const DEFAULT_MONGO_URI: &str = "mongodb://127.0.0.1:27017";
/// Default database of the inventory, connections and schedules (Maestro's name).
pub const DEFAULT_MONGO_DATABASE: &str = "maestro-client";
/// Default database the reports are written to.
pub const DEFAULT_REPORTS_DATABASE: &str = "maestro-reports";

/// Maestro's MongoDB: where the inventory, connections and schedules are.
#[derive(Clone, Args)]
pub struct MongoArgs {
    /// MongoDB of Maestro's inventory, connections and schedules.
    #[arg(
        long = "mongo-uri",
        env = "MAESTRO_MONGO_URI",
        default_value = DEFAULT_MONGO_URI,
        hide_env_values = true
    )]
    pub mongo_uri: String,

    /// Database of the inventory, connections and schedules.
    #[arg(
        long = "mongo-database",
        env = "MAESTRO_MONGO_DATABASE",
        default_value = DEFAULT_MONGO_DATABASE
    )]
    pub mongo_database: String,
}

/// The URI may hold a password: it is never printed.
impl std::fmt::Debug for MongoArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoArgs")
            .field("mongo_uri", &"<redacted>")
            .field("mongo_database", &self.mongo_database)
            .finish()
    }
}

/// Where the reports are written and read.
#[derive(Debug, Clone, Args)]
pub struct ReportsArgs {
    /// Database the reports are written to.
    #[arg(
        long = "reports-database",
        env = "MAESTRO_REPORTS_DATABASE",
        default_value = DEFAULT_REPORTS_DATABASE
    )]
    pub reports_database: String,
}
