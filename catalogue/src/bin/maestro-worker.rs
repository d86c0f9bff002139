//! `maestro-worker -Q <queues>`: the worker runtime's flags (`maestro_worker::WorkerArgs`)
//! plus the catalogue's (`maestro_catalogue::CatalogueArgs`), running every Maestro task, and
//! the diagnostic tasks where `--enable-diagnostics` is on.

use std::process::ExitCode;

use clap::Parser;
use maestro_catalogue::{CatalogueArgs, Services, register};
use maestro_tasks::Registry;
use maestro_telemetry::LogArgs;
use maestro_worker::{AppDefaults, WorkerArgs, launch};

/// maestro-worker: runs Celery protocol-v2 tasks, Maestro's among them, from RabbitMQ queues.
#[derive(Debug, Parser)]
#[command(name = "maestro-worker", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,

    #[command(flatten)]
    catalogue: CatalogueArgs,

    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    launch::guard_stack();
    let cli = Cli::parse();
    let catalogue = cli.catalogue;
    let defaults = AppDefaults::maestro();
    launch::run(
        "maestro-worker",
        &cli.log,
        cli.worker,
        defaults,
        || async move {
            let mut registry = if catalogue.enable_diagnostics {
                Registry::with_diagnostics()
            } else {
                Registry::new()
            };
            let svc = Services::new(catalogue).await?;
            register(&mut registry, &svc)?;
            Ok(registry)
        },
    )
}
