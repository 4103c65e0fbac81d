//! The portable UEFI core: knows UEFI, knows nothing of registers or MMIO.

pub mod pe;
