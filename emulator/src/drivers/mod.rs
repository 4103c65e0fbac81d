//! Device drivers: the PL011 earlycon, the PL031 RTC, the GIC (one timer interrupt) and the
//! device-tree reader.

pub mod fdt;
pub mod gic;
pub mod pl011;
pub mod pl031;
