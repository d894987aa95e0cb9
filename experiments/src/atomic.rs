//! Atomic file writes: write a sibling temporary file, flush it to disk, rename it over the
//! target. A reader (or a crash) sees either the old file or the complete new one, never a torn one.
//! One implementation, shared with the training checkpoints (`voltarena_agents::checkpoint`).

pub use voltarena_agents::checkpoint::write_atomic as write;
