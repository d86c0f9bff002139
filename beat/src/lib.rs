//! maestro-beat: leader-elected periodic scheduler.
