//! The bare-metal blob. Everything lives in the library; this file only makes it a binary.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use efi_emulator as _;

/// Host builds of the workspace compile this binary too; it has nothing to do there.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("efi-emulator is a bare-metal aarch64 blob: build it with `cargo xtask build`");
    std::process::exit(2);
}
