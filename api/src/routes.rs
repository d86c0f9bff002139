//! The routing table (task name -> queue) lives in `maestro_tasks::routes`, shared with the
//! catalogue tasks that send follow-ups; the API uses it to decide where each task goes and
//! which tasks `POST /tasks/{task}` accepts.

pub use maestro_tasks::routes::*;
