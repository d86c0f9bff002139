//! `maestro-api`.

fn main() {}
