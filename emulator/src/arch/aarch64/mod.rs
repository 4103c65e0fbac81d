//! AArch64: entry, exception vectors, MMU, caches, PSCI, timer, the earlycon, and the
//! [`Platform`](crate::efi::platform::Platform) the services run on.

pub mod esr;
pub mod memory_plan;
pub mod page_table;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod console;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod cpu;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod entry;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod exceptions;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod mmu;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod platform;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod psci;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod sha256;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod tick;
