//! Device drivers: the PL011 earlycon, the PL031 RTC, the GIC (one timer interrupt), a TPM 2.0
//! behind a TIS, and the device-tree reader.

pub mod fdt;
pub mod gic;
pub mod pl011;
pub mod pl031;
pub mod tpm_tis;
