//! The smallest useful worker: two typed tasks that a Python Celery client calls by name.
//!
//! ```python
//! app = Celery(broker="amqp://", backend="rpc://")
//! app.send_task("myapp.add", args=[2, 3]).get()                      # 5
//! app.send_task("myapp.slugify", args=["Hello, World!"], kwargs={"max_len": 5}).get()  # "hello"
//! ```
//!
//! Run: `example-minimal -Q myapp --result-backend rpc://` (every flag of `maestro-worker -h`).

use maestro_worker::prelude::*;

/// Adds two integers.
#[task(name = "myapp.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Lower-case words joined by `-`, at most `max_len` characters (40 unless given).
#[task(name = "myapp.slugify")]
async fn slugify(text: String, #[arg(default = 40)] max_len: usize) -> TaskResult<String> {
    if max_len == 0 {
        return Err(TaskError::value_error("max_len must be at least 1"));
    }
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    Ok(words.join("-").chars().take(max_len).collect())
}

fn main() -> std::process::ExitCode {
    Worker::new("myapp").task(add).task(slugify).run()
}
