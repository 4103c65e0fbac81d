//! The protocols the emulator serves.

pub mod device_path;
