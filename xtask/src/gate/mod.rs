//! The gate: `cargo xtask lint` and `cargo xtask test`, the emulator's layer lint, and the fuzz
//! targets.

pub mod fuzz;
pub mod layers;
pub mod lint;
pub mod test;
