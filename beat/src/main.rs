//! `maestro-beat`: see `maestro_beat::config::Cli` for every flag.

use std::process::ExitCode;

use clap::Parser;
use maestro_beat::config::Cli;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.log_format, &cli.log_level) {
        eprintln!("maestro-beat: --log-level (MAESTRO_LOG_LEVEL): {e}");
        return ExitCode::from(2);
    }
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
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("maestro-beat: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!(event = "stopping", "signal received");
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

fn init_logging(format: &str, level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("{level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
    Ok(())
}
