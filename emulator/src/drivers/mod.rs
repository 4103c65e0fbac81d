//! Device drivers: the PL011 earlycon and the device-tree reader.

pub mod fdt;
pub mod pl011;
