//! GUIDs and constants the core publishes or recognises that `r-efi` does not name.

use r_efi::efi::Guid;

/// UEFI 2.10, the revision our tables claim.
pub const REVISION_2_10: u32 = (2 << 16) | 100;
pub const SYSTEM_TABLE_SIGNATURE: u64 = 0x5453_5953_2049_4249; // "IBI SYST"
/// The system table's FirmwareVendor.
pub const FIRMWARE_VENDOR: &str = "efi-emulator";

/// VenMedia node of the Linux initrd LoadFile2 device path.
pub const LINUX_EFI_INITRD_MEDIA: Guid = Guid::from_fields(0x5568e427, 0x68fc, 0x4f3d, 0xac, 0x74, &[0xca, 0x55, 0x52, 0x31, 0xcc, 0x68]);
/// The flattened device tree configuration table.
pub const DEVICE_TREE: Guid = Guid::from_fields(0xb1b621d5, 0xf19c, 0x41a5, 0x83, 0x0b, &[0xd9, 0x15, 0x2c, 0x69, 0xaa, 0xe0]);
/// Linux's persistent memory reservations (GICv3 LPI tables among them): a chain of
/// `struct linux_efi_memreserve` every kernel walks and reserves early.
pub const LINUX_EFI_MEMRESERVE: Guid = Guid::from_fields(0x888eb0c6, 0x8ede, 0x4ff5, 0xa8, 0xf0, &[0x9a, 0xee, 0x5c, 0xb9, 0x77, 0xc2]);
/// Linux's copy of the TPM event log, and the TCG2 final-events log.
pub const LINUX_EFI_TPM_EVENT_LOG: Guid = Guid::from_fields(0xb7799cb0, 0xeca2, 0x4943, 0x96, 0x67, &[0x1f, 0xae, 0x07, 0xb7, 0x47, 0xfa]);
pub const LINUX_EFI_TPM_FINAL_LOG: Guid = Guid::from_fields(0x1e2ed096, 0x30e2, 0x4254, 0xbd, 0x89, &[0x86, 0x3b, 0xbe, 0xf8, 0x23, 0x25]);
/// EFI_RT_PROPERTIES_TABLE.
pub const RT_PROPERTIES_TABLE: Guid = Guid::from_fields(0xeb66918a, 0x7eef, 0x402a, 0x84, 0x2e, &[0x93, 0x1d, 0x21, 0xc3, 0x8a, 0xe9]);

/// `EFI_RT_SUPPORTED_*` bits of the RT properties table.
pub mod rt_supported {
    pub const GET_TIME: u32 = 0x0001;
    pub const SET_TIME: u32 = 0x0002;
    pub const GET_WAKEUP_TIME: u32 = 0x0004;
    pub const SET_WAKEUP_TIME: u32 = 0x0008;
    pub const GET_VARIABLE: u32 = 0x0010;
    pub const GET_NEXT_VARIABLE_NAME: u32 = 0x0020;
    pub const SET_VARIABLE: u32 = 0x0040;
    pub const SET_VIRTUAL_ADDRESS_MAP: u32 = 0x0080;
    pub const CONVERT_POINTER: u32 = 0x0100;
    pub const GET_NEXT_HIGH_MONOTONIC_COUNT: u32 = 0x0200;
    pub const RESET_SYSTEM: u32 = 0x0400;
    pub const UPDATE_CAPSULE: u32 = 0x0800;
    pub const QUERY_CAPSULE_CAPABILITIES: u32 = 0x1000;
    pub const QUERY_VARIABLE_INFO: u32 = 0x2000;
}
