//! The gate: the emulator's layer lint and the fuzz targets.

pub mod fuzz;
pub mod layers;
