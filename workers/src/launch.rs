//! A worker process from `main`: the stack guard, logging and trace export, the async
//! runtime, the signals, then [`worker::run`](crate::worker::run) with the application's tasks.
//!
//! Most applications use [`Worker`](crate::Worker), which calls this; an application whose
//! tasks need state made asynchronously (a database client) calls it itself:
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::Parser;
//! use maestro_worker::tasks::Registry;
//! use maestro_worker::{AppDefaults, WorkerCli, launch};
//!
//! fn main() -> ExitCode {
//!     launch::guard_stack();
//!     let cli = WorkerCli::parse();
//!     launch::run("my-worker", &cli.log, cli.worker, AppDefaults::named("my-worker"), || async {
//!         Ok(Registry::with_diagnostics())
//!     })
//! }
//! ```

use std::error::Error;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use maestro_tasks::Registry;
use maestro_telemetry::LogArgs;

use crate::config::{AppDefaults, WorkerArgs};
use crate::shutdown::Shutdown;

/// Stack size of the threads std starts (lapin's I/O thread among them), when the operator set
/// none. lapin parses a delivery's AMQP header table recursively on its I/O thread, before the
/// worker sees the message: a table nested a few hundred levels deep overflowed the default
/// 2 MiB stack there and aborted the process, and every worker that took the message after it.
/// RabbitMQ bounds a header by its `frame_max` (128 KiB by default: at most ~19,000 levels of
/// 7 bytes); 256 MiB covers that even in a debug build (~7 KiB a level). It is address space:
/// only the pages a thread touches are memory.
pub const THREAD_STACK_BYTES: usize = 256 << 20;

/// Makes every thread of the process get [`THREAD_STACK_BYTES`] of stack, unless the operator
/// set `RUST_MIN_STACK`. Threads take their default stack size from `RUST_MIN_STACK`, read once
/// when the first one starts, and setting it from inside would be `unsafe`; so when it is
/// unset, the process replaces itself (same pid, arguments and descriptors) with one that has
/// it. Call it first in `main`, before any thread starts.
pub fn guard_stack() {
    if std::env::var_os("RUST_MIN_STACK").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let e = Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("RUST_MIN_STACK", THREAD_STACK_BYTES.to_string())
        .exec();
    eprintln!(
        "cannot set RUST_MIN_STACK by re-executing ({e}); continuing with the default thread stack"
    );
}

/// Runs a worker until it is stopped: installs logging as `service`, checks `args` (what they
/// leave unset comes from `defaults`), starts the runtime (`--threads`) on a thread of
/// [`THREAD_STACK_BYTES`], listens for SIGTERM and SIGINT, builds the registry with `tasks`
/// and runs the worker. Exit codes: 0 after a clean stop, 2 for bad configuration (flags,
/// `tasks`' error, a task's missing state), 1 when the worker failed.
pub fn run<F, Fut>(
    service: &'static str,
    log: &LogArgs,
    args: WorkerArgs,
    defaults: AppDefaults,
    tasks: F,
) -> ExitCode
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Registry, Box<dyn Error + Send + Sync>>>,
{
    // Kept until this returns, after the runtime: dropping it flushes the spans still queued.
    let _telemetry = match log.init(service) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = args.threads;
    let cfg = match args.into_config_for(&defaults) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    if threads == 0 {
        eprintln!("{service}: --threads (MAESTRO_WORKER_THREADS): must be at least 1");
        return ExitCode::from(2);
    }
    let name = service.to_owned();
    // The runtime runs on a thread of the guarded size too: the main thread's stack is the
    // shell's `ulimit -s` (8 MiB), which the worker's own header decoding outgrows first.
    let worker = std::thread::Builder::new()
        .name(service.to_owned())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || {
            // One async thread by default: the work is I/O-bound, blocking and CPU-heavy work
            // goes to the blocking pool, and on small machines the broker needs the other
            // cores (the drain benchmark runs a third faster than with one thread per core).
            let mut builder = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(threads);
                b
            };
            let runtime = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("{name}: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let shutdown = Shutdown::default();
                if let Err(e) = shutdown.listen_for_signals() {
                    eprintln!("{name}: cannot listen for signals: {e}");
                    return ExitCode::FAILURE;
                }
                let registry = match tasks().await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        return ExitCode::from(2);
                    }
                };
                // Checked again by the worker; here it is bad configuration (exit 2).
                if let Err(e) = registry.check_states() {
                    eprintln!("{name}: {e}");
                    return ExitCode::from(2);
                }
                match crate::worker::run(cfg, registry, shutdown).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(event = "worker_failed", error = %e);
                        ExitCode::FAILURE
                    }
                }
            })
        });
    match worker.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{service}: cannot start the worker thread: {e}");
            ExitCode::FAILURE
        }
    }
}
