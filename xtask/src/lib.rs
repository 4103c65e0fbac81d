//! The efi-emulator task runner: build the blob, fetch payloads, run QEMU like kexec does.
//!
//! One QEMU runner serves `cargo xtask run`, the QEMU tests and the benchmark, so that what is
//! tested is what a user runs.
//!
//! Its parts, each using only those listed before it (no import circle among the folders, nor
//! among the files):
//! - the base: [`paths`], [`process`] (running host programs), [`cargo`] (the one cargo-command
//!   builder) and [`build`] (the blob, `efi-kexec` and the test programs);
//! - [`payloads`]: what is booted: Debian's kernels, stubs and boot loaders, the test initramfs,
//!   UKIs, the zboot and kexec_file kernels built from source, kexec stages, the bad images;
//! - [`harness`]: how it is booted under QEMU: the machine, the kexec-style hand-off, real kexec
//!   from a first kernel, EDK2 with Secure Boot, U-Boot, and the host set-up;
//! - [`bench`](mod@bench): `cargo xtask bench`;
//! - [`gate`]: `cargo xtask lint` and `cargo xtask test`, the emulator's layer lint, fuzzing.
//!
//! The binary (`main.rs`, `cli.rs`, `commands.rs`) parses the command line and calls these.

pub mod bench;
pub mod build;
pub mod cargo;
pub mod gate;
pub mod harness;
pub mod paths;
pub mod payloads;
pub mod process;
