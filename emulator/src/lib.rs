//! efi-emulator: UEFI boot services for PE/UEFI Linux kernels started by kexec on AArch64.
//!
//! ```text
//! loader (kexec) --x0=param--> arch::aarch64::entry (asm: vectors, FP, relocate, .bss)
//!   -> boot: console, abi::validate, banner, MMU (memory_plan + page_table)
//!   -> boot::setup: memory map, tables, protocols, config tables; load and start the kernel
//!   -> payload calls services/ shims -> portable core (efi::memory, pool, handles, events, ...)
//! ```
//!
//! The folders are the layers, bottom first; each imports only from its own layer and the ones
//! below (`cargo xtask lint` checks it against `xtask`'s layer table, shown in
//! `docs/architecture.md`):
//! - `mem`, `cell`, `bulk`, `heap`: extents and readers, the one-CPU cell, bulk copies, the heap;
//! - `drivers`: PL011, PL031, the GIC, the device-tree reader;
//! - `efi`: the portable UEFI core (memory map, pool, handles, events, variables, PE, FAT, device
//!   paths, Secure Boot's verifier), host-tested, no registers;
//! - `abi`: the hand-off contract (parameter block mirror, blob header, validation, the
//!   device-tree entry); the host side that builds it is the `efi-emulator-loader` crate;
//! - `arch::aarch64`: entry, exceptions, MMU, PSCI, timer, the `Platform` the services run on;
//! - `services`: the `extern "efiapi"` side: boot and runtime services, `protocols/` (one file
//!   per protocol), `diagnostics/`; built and tested on the host against a simulated machine;
//! - `boot`: the entry flow and the setup of boot services (blob only).
#![cfg_attr(not(any(test, feature = "host-machine")), no_std)]

extern crate alloc;
#[cfg(any(test, feature = "host-machine"))]
extern crate std;

pub mod abi;
pub mod arch;
pub mod bulk;
pub mod cell;
pub mod drivers;
pub mod efi;
pub mod mem;
#[cfg(any(test, feature = "host-machine", all(target_arch = "aarch64", target_os = "none")))]
pub mod services;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
pub mod heap;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use arch::aarch64::console;

/// The emulator's version, as the banner prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
