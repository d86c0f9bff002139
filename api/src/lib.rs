//! maestro-api: the authenticated REST API that enqueues Maestro jobs.
