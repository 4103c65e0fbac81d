//! The host side of the efi-emulator contract: what a loader (efi-kexec, the xtask harness, your
//! own tool) needs to hand a boot to the blob.
//!
//! - [`plan`]: lays out a kexec-style boot (segments, parameter block, DTB `/chosen`) and runs the
//!   emulator's own validator over the result;
//! - [`core_header`]: the ELF core header a crash kernel's `elfcorehdr=` points at;
//! - [`flat`]: the bare-metal ELF to the flat, position-independent blob;
//! - [`blob`]: patches a built blob (the parameter slot);
//! - [`c_header`]: renders `emulator/include/efi_emulator.h` from the Rust definitions;
//! - [`bundle`], [`cpio`]: the kexec_file bundle (kernel, initrd, command line, ESP) and the newc
//!   writer under it;
//! - [`dtb_edit`]: a device tree as an editable tree;
//! - [`signature_list`]: `db`/`dbx` contents;
//! - [`testkit`]: fixtures (a QEMU-virt-like DTB, a fake blob, a planned boot) for tests.
//!
//! The contract itself (structures, constants, the validator) lives in the `no_std` emulator
//! crate, re-exported here as [`contract`]; nothing of this crate reaches the blob.

pub use efi_emulator as contract;

pub mod blob;
pub mod bundle;
pub mod c_header;
pub mod core_header;
pub mod cpio;
pub mod dtb_edit;
pub mod flat;
pub mod plan;
pub mod signature_list;
pub mod testkit;
