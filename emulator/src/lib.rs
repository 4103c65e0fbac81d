//! efi-emulator: UEFI boot services for PE/UEFI Linux kernels started by kexec on AArch64.
//!
//! ```text
//! loader (kexec) --x0=param--> arch::aarch64::entry (asm: vectors, FP, relocate, .bss)
//!   -> boot::efi_emulator_main: console, abi::validate, banner, MMU (memory_plan + page_table)
//!   -> services::setup: memory map, tables, protocols, config tables
//!   -> services::image: load the kernel image, start it on its own stack
//!   -> payload calls services/ shims -> portable core (efi::memory, pool, handles, events, ...)
//! ```
//!
//! - `abi`: the hand-off contract (parameter block mirror, blob header, validation) and, with the
//!   `loader` feature, a host library that builds parameter blocks like the kexec loader.
//! - `efi`: the UEFI core. Its state (memory map, pool, handles, events, variables, PE loader,
//!   device paths) is portable and host-tested; `services` is the `extern "efiapi"` side.
//! - `drivers`: PL011 and the device-tree reader.
//! - `arch::aarch64`: entry, exceptions, MMU, PSCI, timer; page tables are built portably.
//!
//! Everything outside `services`, `arch::aarch64::{cpu, entry, exceptions, mmu, psci}`,
//! `console` and `boot` builds on the host and is unit-tested there.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod arch;
pub mod bulk;
pub mod cell;
pub mod drivers;
pub mod efi;
pub mod mem;
#[cfg(any(test, all(target_arch = "aarch64", target_os = "none")))]
pub mod services;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod heap;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use arch::aarch64::console;

/// The emulator's version, as the banner prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
