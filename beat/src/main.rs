//! `maestro-beat`.

fn main() {}
