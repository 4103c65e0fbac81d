//! The QEMU harness: the machine, the kexec-style hand-off into the emulator, real kexec from a
//! first kernel, EDK2 and U-Boot, and the host tools they need.

pub mod kexec;
pub mod qemu;
pub mod run;
pub mod secure_boot;
pub mod setup;
pub mod trampoline;
pub mod uboot;
