//! The protocols the emulator publishes, one file each: consoles and the serial port, the ESP
//! (BlockIo, DiskIo, SimpleFileSystem), the initrd (LoadFile2), device-path text and utilities,
//! memory attributes, RNG, decompression, collation, reset notification, Secure Boot's
//! Security/Security2 with the policy behind them, and measured boot's TCG2.

pub mod console;
pub mod decompress;
pub mod device_path_from_text;
pub mod device_path_to_text;
pub mod device_path_utilities;
pub mod esp;
pub mod initrd;
pub mod memory_attribute;
pub mod reset_notification;
pub mod rng;
pub mod security;
pub mod serial_io;
pub mod tcg2;
pub mod unicode_collation;
