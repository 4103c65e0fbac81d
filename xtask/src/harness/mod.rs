//! The QEMU harness: the machine and the kexec-style hand-off into the emulator ([`run`],
//! [`trampoline`], [`qemu`]), real kexec from a first kernel ([`kexec`]), EDK2 with Secure Boot
//! ([`secure_boot`]), U-Boot ([`uboot`]), and the host tools they need ([`setup`]). It boots
//! what [`crate::payloads`] makes.

pub mod kexec;
pub mod qemu;
pub mod run;
pub mod secure_boot;
pub mod setup;
pub mod tpm;
pub mod trampoline;
pub mod uboot;
