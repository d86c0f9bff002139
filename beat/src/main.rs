//! `maestro-beat`: see `maestro_beat::config::Cli` for every flag.

use std::process::ExitCode;

use clap::Parser;
use maestro_beat::config::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Kept until main returns, after the runtime: dropping it flushes the spans still queued.
    let _telemetry = match cli.log.init("maestro-beat") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maestro-beat: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match cli.into_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("maestro-beat: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maestro-beat: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut signals = match maestro_telemetry::Signals::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("maestro-beat: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(async move {
            let signal = signals.recv().await;
            tracing::info!(event = "stopping", signal, "signal received");
            stop_tx.send_replace(true);
        });
        match maestro_beat::beat::run(cfg, stop_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(event = "beat_failed", error = %e);
                eprintln!("maestro-beat: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
