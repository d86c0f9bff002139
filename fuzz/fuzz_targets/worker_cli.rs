//! A worker's flags: `WorkerCli::try_parse_from` with arbitrary arguments, then `into_config`.
#![no_main]

use std::sync::LazyLock;

use clap::{CommandFactory, Parser};
use libfuzzer_sys::fuzz_target;
use maestro_worker::WorkerCli;

static CMD: LazyLock<clap::Command> = LazyLock::new(WorkerCli::command);

fuzz_target!(|data: &[u8]| {
    let args = maestro_fuzz::cli_args("maestro-worker", &CMD, data);
    if let Ok(cli) = WorkerCli::try_parse_from(&args) {
        let _ = cli.worker.into_config();
    }
});
