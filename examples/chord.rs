//! A worker whose task fans out: `myapp.sum_of_squares(n)` sends `myapp.square(x)` for each x
//! below `n` as a chord whose callback `myapp.total` adds the squares. It returns the callback's
//! task id, where the sum arrives. Chords need the MongoDB result backend:
//! `example-chord -Q myapp --result-backend mongodb://localhost/myapp`.

use maestro_worker::prelude::*;

/// Most members of one chord.
const MEMBERS_MAX: u32 = 10_000;

#[task(name = "myapp.square")]
async fn square(x: i64) -> TaskResult<i64> {
    x.checked_mul(x)
        .ok_or_else(|| TaskError::value_error(format!("{x} squared overflows")))
}

/// The chord's callback: the members' results, in order.
#[task(name = "myapp.total")]
async fn total(values: Vec<i64>) -> i64 {
    values.iter().sum()
}

#[task(name = "myapp.sum_of_squares")]
async fn sum_of_squares(ctx: &TaskContext, n: u32) -> TaskResult<String> {
    if n == 0 || n > MEMBERS_MAX {
        return Err(TaskError::value_error(format!(
            "n must be 1 to {MEMBERS_MAX}, got {n}"
        )));
    }
    let members = (0..i64::from(n)).map(square::new);
    ctx.chord(members, total::partial()).await
}

fn main() -> std::process::ExitCode {
    Worker::new("myapp")
        .task(square)
        .task(total)
        .task(sum_of_squares)
        .run()
}
