//! Architecture support. Only AArch64 exists; its portable parts (page-table builder, mapping
//! plan, ESR decoding) also build and test on the host.

pub mod aarch64;
