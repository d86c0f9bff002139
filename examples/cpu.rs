//! A CPU-bound task on the blocking pool, where it cannot stall the async tasks beside it:
//! `myapp.count_primes(limit)` counts the primes below `limit`, checking the soft time limit
//! as it goes, and `myapp.ping()` answers at once while it runs.
//! `example-cpu -Q myapp --result-backend rpc://`

use maestro_worker::prelude::*;

/// Largest `limit` accepted: beyond it the sieve would need gigabytes.
const LIMIT_MAX: u64 = 1_000_000_000;

/// How many numbers are sieved between two looks at the soft time limit.
const CHECK_EVERY: u64 = 1 << 16;

/// The primes below `limit` (a sieve of Eratosthenes), stopped by the soft time limit.
#[task(name = "myapp.count_primes", blocking)]
fn count_primes(ctx: &TaskContext, limit: u64) -> TaskResult<u64> {
    if limit > LIMIT_MAX {
        return Err(TaskError::value_error(format!(
            "limit must be at most {LIMIT_MAX}, got {limit}"
        )));
    }
    let n = usize::try_from(limit).map_err(|e| TaskError::value_error(e.to_string()))?;
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if (i as u64).is_multiple_of(CHECK_EVERY) && ctx.soft_limit_reached() {
            return Err(ctx.soft_limit_error());
        }
        if composite[i] {
            continue;
        }
        count += 1;
        let mut j = i.saturating_mul(i);
        while j < n {
            composite[j] = true;
            j += i;
        }
    }
    Ok(count)
}

#[task(name = "myapp.ping")]
async fn ping() -> &'static str {
    "pong"
}

fn main() -> std::process::ExitCode {
    Worker::new("myapp").task(count_primes).task(ping).run()
}
