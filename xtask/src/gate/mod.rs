//! The gate: `cargo xtask lint` ([`lint`]) and `cargo xtask test` ([`test`](mod@test)), the emulator's
//! layer lint ([`layers`]), and the fuzz targets ([`fuzz`]). The top of xtask: it may use every
//! other part.

pub mod fuzz;
pub mod layers;
pub mod lint;
pub mod test;
