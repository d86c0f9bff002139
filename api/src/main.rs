//! `maestro-api`: see `maestro_api::config::Cli` for every flag.

use std::process::ExitCode;

use clap::Parser;
use maestro_api::{AppState, Cli, app};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Kept until main returns, after the runtime: dropping it flushes the spans still queued.
    let _telemetry = match cli.log.init("maestro-api") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maestro-api: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match cli.into_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("maestro-api: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maestro-api: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listen = cfg.listen;
        let broker = cfg.broker_display.clone();
        let state = match AppState::new(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("maestro-api: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("maestro-api: --port (MAESTRO_PORT): cannot listen on {listen}: {e}");
                return ExitCode::from(2);
            }
        };
        let mut signals = match maestro_telemetry::Signals::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("maestro-api: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let enqueuer = state.enqueuer.clone();
        tracing::info!(event = "listening", addr = %listen, broker = %broker);
        let limits = maestro_api::serve::Limits {
            header_read_timeout: state.config.header_read_timeout,
            max_connections: state.config.max_connections,
        };
        // On SIGTERM or SIGINT the server stops accepting and finishes what it answers.
        maestro_api::serve::serve(listener, app(state), limits, async move {
            signals.recv().await;
        })
        .await;
        enqueuer.close();
        tracing::info!(event = "stopped");
        ExitCode::SUCCESS
    })
}
