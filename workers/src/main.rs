//! `maestro-worker -Q <queues>`: see `maestro_worker::config::Cli` for every flag.

use std::process::ExitCode;

use clap::Parser;
use maestro_tasks::Registry;
use maestro_tasks::catalogue::Services;
use maestro_worker::config::Cli;
use maestro_worker::shutdown::Shutdown;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Kept until main returns, after the runtime: dropping it flushes the spans still queued.
    let _telemetry =
        match maestro_telemetry::init("maestro-worker", &cli.log_format, &cli.log_level) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("maestro-worker: {e}");
                return ExitCode::from(2);
            }
        };
    let threads = cli.threads;
    let catalogue = cli.catalogue.clone();
    let cfg = match cli.into_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("maestro-worker: {e}");
            return ExitCode::from(2);
        }
    };
    // One async thread by default: the work is I/O-bound, blocking and CPU-heavy work goes
    // to the blocking pool, and on small machines the broker needs the other cores (the
    // drain benchmark runs a third faster than with one thread per core).
    let mut builder = match threads {
        0 => {
            eprintln!("maestro-worker: --threads (MAESTRO_WORKER_THREADS): must be at least 1");
            return ExitCode::from(2);
        }
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maestro-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = Shutdown::default();
        if let Err(e) = shutdown.listen_for_signals() {
            eprintln!("maestro-worker: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
        let mut registry = Registry::with_diagnostics();
        let registered = match Services::new(catalogue).await {
            Ok(svc) => maestro_tasks::catalogue::register(&mut registry, &svc),
            Err(e) => Err(e),
        };
        if let Err(e) = registered {
            eprintln!("maestro-worker: {e}");
            return ExitCode::from(2);
        }
        match maestro_worker::worker::run(cfg, registry, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(event = "worker_failed", error = %e);
                ExitCode::FAILURE
            }
        }
    })
}
