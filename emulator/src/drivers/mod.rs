//! Device drivers: the PL011 earlycon, the PL031 RTC and the device-tree reader.

pub mod fdt;
pub mod pl011;
pub mod pl031;
