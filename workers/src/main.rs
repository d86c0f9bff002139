//! `maestro-worker -Q <queues>`: see `maestro_worker::config::Cli` for every flag.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use clap::Parser;
use maestro_tasks::Registry;
use maestro_tasks::catalogue::Services;
use maestro_worker::config::Cli;
use maestro_worker::shutdown::Shutdown;

/// Stack size of the threads std starts (lapin's I/O thread among them), when the operator set
/// none. lapin parses a delivery's AMQP header table recursively on its I/O thread, before this
/// code sees the message: a table nested a few hundred levels deep overflowed the default
/// 2 MiB stack there and aborted the process, and every worker that took the message after it.
/// RabbitMQ bounds a header by its `frame_max` (128 KiB by default: at most ~19,000 levels of
/// 7 bytes); 256 MiB covers that even in a debug build (~7 KiB a level). It is address space:
/// only the pages a thread touches are memory.
const THREAD_STACK_BYTES: usize = 256 << 20;

/// Threads take their default stack size from `RUST_MIN_STACK`, read once when the first one
/// starts; setting it from inside would be `unsafe`. So when it is unset, the process replaces
/// itself (same pid, same arguments and descriptors) with one that has it.
fn ensure_thread_stack() {
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
        "maestro-worker: cannot set RUST_MIN_STACK by re-executing itself ({e}); continuing with the default thread stack"
    );
}

fn main() -> ExitCode {
    ensure_thread_stack();
    // The runtime runs on a thread of that size too: the main thread's stack is the shell's
    // `ulimit -s` (8 MiB), which the worker's own header decoding outgrows first.
    let worker = std::thread::Builder::new()
        .name("maestro-worker".into())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(run);
    match worker.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("maestro-worker: cannot start the main thread: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> ExitCode {
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
