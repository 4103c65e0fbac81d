//! The hand-off contract between a loader (kexec) and the emulator blob.
//!
//! Two structures cross that boundary:
//! - [`EfiEmulatorParam`]: what the loader tells the emulator (byte-exact mirror of the Linux RFC's
//!   `struct efi_emulator_param`, described in `docs/abi.md`);
//! - [`BlobHeader`]: what the blob tells the loader (the fixed header at offset 0 of the blob).

use core::mem::{offset_of, size_of};
use r_efi::efi::{Guid, MemoryDescriptor};

pub mod bundle;
pub mod crash;
pub mod dtb_entry;
pub mod firmware;
pub mod image;
pub mod options;
#[cfg(test)]
pub mod testkit;
pub mod tpm_log;
pub mod validate;

/// Size of the fixed part of the parameter block; the memory map's descriptors follow it.
pub const PARAM_SIZE: usize = 1680;
/// Smallest memory descriptor stride we accept (`EFI_MEMORY_DESCRIPTOR` is 40 bytes).
pub const MIN_DESC_SIZE: u64 = 40;
/// Capacity of `cmdline` in bytes (512 UTF-16 units).
pub const CMDLINE_BYTES: usize = 1024;
/// The longest command line the next kernel takes (arm64's COMMAND_LINE_SIZE, less the NUL), in
/// bytes. One that does not fit `cmdline` (511 UTF-16 units) comes in `/chosen` as
/// [`LONG_CMDLINE_CHOSEN`].
pub const MAX_CMDLINE_BYTES: usize = 2047;
/// `/chosen` property (UTF-8, NUL-terminated) with a command line longer than `cmdline` holds;
/// `sz_in_byte` is then 0.
pub const LONG_CMDLINE_CHOSEN: &str = "efi-emulator,cmdline";
/// Capacity of `rt_info.systab_tables`.
pub const MAX_SYSTAB_TABLES: usize = 20;
/// The page size of the UEFI memory map and of our translation granule.
pub use crate::mem::PAGE_SIZE;

/// `struct efi_rt_info`: what the first kernel knew about the firmware.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EfiRtInfo {
    pub runtime: u64,
    pub runtime_version: u32,
    pub runtime_supported_mask: u32,
    pub systab_nr_tables: u32,
    pub _pad: u32,
    pub systab_tables: [ConfigTableEntry; MAX_SYSTAB_TABLES],
    pub memmap: MemMapHeader,
}

/// One entry of `rt_info.systab_tables`: `efi_config_table_t` as the kernel stores it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConfigTableEntry {
    pub guid: Guid,
    pub table: u64,
}

/// `struct efi_memory_map_data`-like header in front of the descriptors.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemMapHeader {
    pub map_size: u64,
    pub desc_size: u64,
    pub desc_ver: u32,
    pub _pad: u32,
    pub map_key: u64,
    pub buff_size: u64,
}

/// `struct efi_emulator_param`. Kernel `bool`s are read as `u8`: only 0 and 1 are valid Rust
/// bools, and the loader may hand us anything.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EfiEmulatorParam {
    pub sp: u64,
    pub load_address: u64,
    pub sz_in_byte: u32,
    pub cmdline: [u16; CMDLINE_BYTES / 2],
    pub noefi_boot: u8,
    pub print_enabled: u8,
    pub earlycon_name: [u8; 16],
    pub _pad0: [u8; 2],
    pub earlycon_reg_base: u64,
    pub earlycon_reg_sz: u64,
    pub mmu_on: u8,
    pub _pad1: [u8; 7],
    pub pgd_root: u64,
    pub kernel_img_start: u64,
    pub kernel_img_sz: u64,
    pub dtb: u64,
    pub mempool_start: u64,
    pub mempool_sz: u64,
    pub rt_info: EfiRtInfo,
}

// The ABI is byte-exact: any drift here breaks every loader built against the C header.
const _: () = {
    assert!(size_of::<EfiEmulatorParam>() == PARAM_SIZE);
    assert!(offset_of!(EfiEmulatorParam, sp) == 0);
    assert!(offset_of!(EfiEmulatorParam, load_address) == 8);
    assert!(offset_of!(EfiEmulatorParam, sz_in_byte) == 16);
    assert!(offset_of!(EfiEmulatorParam, cmdline) == 20);
    assert!(offset_of!(EfiEmulatorParam, noefi_boot) == 1044);
    assert!(offset_of!(EfiEmulatorParam, print_enabled) == 1045);
    assert!(offset_of!(EfiEmulatorParam, earlycon_name) == 1046);
    assert!(offset_of!(EfiEmulatorParam, earlycon_reg_base) == 1064);
    assert!(offset_of!(EfiEmulatorParam, earlycon_reg_sz) == 1072);
    assert!(offset_of!(EfiEmulatorParam, mmu_on) == 1080);
    assert!(offset_of!(EfiEmulatorParam, pgd_root) == 1088);
    assert!(offset_of!(EfiEmulatorParam, kernel_img_start) == 1096);
    assert!(offset_of!(EfiEmulatorParam, kernel_img_sz) == 1104);
    assert!(offset_of!(EfiEmulatorParam, dtb) == 1112);
    assert!(offset_of!(EfiEmulatorParam, mempool_start) == 1120);
    assert!(offset_of!(EfiEmulatorParam, mempool_sz) == 1128);
    assert!(offset_of!(EfiEmulatorParam, rt_info) == 1136);
    assert!(size_of::<EfiRtInfo>() == 544);
    assert!(size_of::<ConfigTableEntry>() == 24);
    assert!(offset_of!(ConfigTableEntry, table) == 16);
    assert!(1136 + offset_of!(EfiRtInfo, runtime_version) == 1144);
    assert!(1136 + offset_of!(EfiRtInfo, runtime_supported_mask) == 1148);
    assert!(1136 + offset_of!(EfiRtInfo, systab_nr_tables) == 1152);
    assert!(1136 + offset_of!(EfiRtInfo, systab_tables) == 1160);
    assert!(1136 + offset_of!(EfiRtInfo, memmap) == 1640);
    assert!(1640 + offset_of!(MemMapHeader, desc_size) == 1648);
    assert!(1640 + offset_of!(MemMapHeader, desc_ver) == 1656);
    assert!(1640 + offset_of!(MemMapHeader, map_key) == 1664);
    assert!(1640 + offset_of!(MemMapHeader, buff_size) == 1672);
    assert!(size_of::<MemoryDescriptor>() == 40);
};

/// What a loader decides of a parameter block; [`EfiEmulatorParam::new`] makes the rest as the
/// kexec loader does (no firmware tables yet, 40-byte descriptors of version 1, `mmu_on` 0).
pub struct BlockFields<'a> {
    pub sp: u64,
    pub load_address: u64,
    /// UTF-16, without a NUL; at most 511 units.
    pub cmdline: &'a [u16],
    /// The running kernel was booted by UEFI firmware: `noefi_boot` 0, `rt_info` to be taken
    /// from the DTB by the emulator.
    pub firmware: bool,
    pub print: bool,
    pub earlycon_name: &'a str,
    pub uart: (u64, u64),
    pub kernel: crate::mem::Extent,
    pub dtb: u64,
    pub mempool: crate::mem::Extent,
    /// Bytes of descriptors, and of room for them after the struct.
    pub map_size: u64,
    pub buff_size: u64,
}

impl EfiEmulatorParam {
    pub fn new(f: &BlockFields) -> Self {
        let mut units = [0u16; CMDLINE_BYTES / 2];
        let len = f.cmdline.len().min(units.len() - 1);
        units[..len].copy_from_slice(&f.cmdline[..len]);
        let mut name = [0u8; 16];
        let n = f.earlycon_name.len().min(15);
        name[..n].copy_from_slice(&f.earlycon_name.as_bytes()[..n]);
        EfiEmulatorParam {
            sp: f.sp,
            load_address: f.load_address,
            sz_in_byte: (len * 2) as u32,
            cmdline: units,
            noefi_boot: !f.firmware as u8,
            print_enabled: f.print as u8,
            earlycon_name: name,
            _pad0: [0; 2],
            earlycon_reg_base: f.uart.0,
            earlycon_reg_sz: f.uart.1,
            mmu_on: 0,
            _pad1: [0; 7],
            pgd_root: 0,
            kernel_img_start: f.kernel.start,
            kernel_img_sz: f.kernel.size,
            dtb: f.dtb,
            mempool_start: f.mempool.start,
            mempool_sz: f.mempool.size,
            rt_info: EfiRtInfo {
                runtime: 0,
                runtime_version: 0,
                runtime_supported_mask: 0,
                systab_nr_tables: 0,
                _pad: 0,
                systab_tables: [ConfigTableEntry { guid: r_efi::efi::Guid::from_bytes(&[0; 16]), table: 0 }; MAX_SYSTAB_TABLES],
                memmap: MemMapHeader { map_size: f.map_size, desc_size: MIN_DESC_SIZE, desc_ver: 1, _pad: 0, map_key: 0, buff_size: f.buff_size },
            },
        }
    }
}

/// Offset of the first memory descriptor from the start of the parameter block.
pub const MEMMAP_OFFSET: usize = PARAM_SIZE;

/// Magic at offset 8 of the blob.
pub const BLOB_MAGIC: [u8; 8] = *b"EFIEMU64";
/// Version of this hand-off contract (parameter block + blob header).
pub const ABI_VERSION: u32 = 1;
/// Size of [`BlobHeader`]. The first 64 bytes are the original header; `param_slot` was added
/// after them, and a loader that only knows 64 bytes still starts the blob the same way.
pub const BLOB_HEADER_SIZE: u32 = 72;
/// Stack the emulator needs below `param->sp`; the kexec loader gives 128 KiB.
pub const MIN_STACK_SIZE: u64 = 64 * 1024;
/// Smallest mempool the emulator accepts: its page tables and own data come from it too.
pub const MIN_MEMPOOL_SIZE: u64 = 1024 * 1024;
/// `BlobHeader::flags`: the blob relocates itself and runs at any 4 KiB-aligned address.
pub const BLOB_FLAG_POSITION_INDEPENDENT: u32 = 1 << 0;
/// `BlobHeader::flags`: entered with `x0 = 0`, the blob takes its parameter block from
/// `param_slot`. arm64 `kexec_load(2)` enters an image with `x0 = 0` (only `kexec_file_load`
/// fills `x0`), so a user-space loader writes the block's address into its copy of the blob.
pub const BLOB_FLAG_PARAM_SLOT: u32 = 1 << 1;
/// Offset of `param_slot` in the blob.
pub const PARAM_SLOT_OFFSET: usize = 64;

/// The fixed header at offset 0 of the blob. A loader reads it to learn how much memory to
/// reserve; the first word is a branch over it, so jumping to offset 0 starts the emulator.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    /// `b` over the header: the loader jumps to offset 0.
    pub code0: u32,
    /// Bytes of code at the start of the blob (page aligned); the rest is never executed.
    /// Informational (the Image form's PE sections); 0 in blobs that predate it.
    pub text_size: u32,
    /// [`BLOB_MAGIC`].
    pub magic: [u8; 8],
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// [`BLOB_HEADER_SIZE`].
    pub header_size: u32,
    /// Bytes of the flat binary: what the loader copies.
    pub file_size: u64,
    /// Bytes to reserve from the load address: the file plus `.bss`, page aligned.
    pub mem_size: u64,
    /// Bytes of stack the emulator needs below `param->sp`.
    pub stack_size: u64,
    /// Where to jump, relative to the load address (always 0).
    pub entry_offset: u64,
    /// `BLOB_FLAG_*`.
    pub flags: u32,
    pub reserved1: u32,
    /// 0 in the file. A loader that cannot pass `x0` writes the parameter block's physical
    /// address here; the blob reads it only when entered with `x0 = 0`.
    pub param_slot: u64,
}

const _: () = {
    assert!(size_of::<BlobHeader>() == BLOB_HEADER_SIZE as usize);
    assert!(offset_of!(BlobHeader, magic) == 8);
    assert!(offset_of!(BlobHeader, abi_version) == 16);
    assert!(offset_of!(BlobHeader, header_size) == 20);
    assert!(offset_of!(BlobHeader, file_size) == 24);
    assert!(offset_of!(BlobHeader, mem_size) == 32);
    assert!(offset_of!(BlobHeader, stack_size) == 40);
    assert!(offset_of!(BlobHeader, entry_offset) == 48);
    assert!(offset_of!(BlobHeader, flags) == 56);
    assert!(offset_of!(BlobHeader, param_slot) == PARAM_SLOT_OFFSET);
};

/// Why a blob header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BlobHeaderError {
    TooShort(usize),
    HeaderSize(u32),
    NoParamSlot,
    BadMagic([u8; 8]),
    AbiVersion(u32),
    FileSize { header: u64, actual: u64 },
}

impl core::fmt::Display for BlobHeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "blob is {n} bytes, shorter than its {BLOB_HEADER_SIZE}-byte header"),
            Self::NoParamSlot => write!(f, "blob has no param_slot (flag 0x2): it cannot be entered with x0 = 0 by kexec_load"),
            Self::HeaderSize(n) => write!(f, "blob header_size is {n}, this loader needs at least {BLOB_HEADER_SIZE}"),
            Self::BadMagic(m) => write!(f, "blob magic is {m:02x?}, expected \"EFIEMU64\""),
            Self::AbiVersion(v) => write!(f, "blob ABI version is {v}, this loader speaks {ABI_VERSION}"),
            Self::FileSize { header, actual } => {
                write!(f, "blob header says file_size {header}, but the file has {actual} bytes")
            }
        }
    }
}

impl core::error::Error for BlobHeaderError {}

impl BlobHeader {
    /// Reads and checks the header of a blob held in memory.
    pub fn parse(blob: &[u8]) -> Result<Self, BlobHeaderError> {
        if blob.len() < BLOB_HEADER_SIZE as usize {
            return Err(BlobHeaderError::TooShort(blob.len()));
        }
        // The length was checked above: every field is there.
        let u32_at = |o: usize| crate::mem::le_u32(blob, o).unwrap_or_default();
        let u64_at = |o: usize| crate::mem::le_u64(blob, o).unwrap_or_default();
        let header = BlobHeader {
            code0: u32_at(0),
            text_size: u32_at(4),
            magic: blob[8..16].try_into().unwrap(),
            abi_version: u32_at(16),
            header_size: u32_at(20),
            file_size: u64_at(24),
            mem_size: u64_at(32),
            stack_size: u64_at(40),
            entry_offset: u64_at(48),
            flags: u32_at(56),
            reserved1: u32_at(60),
            param_slot: u64_at(64),
        };
        if header.magic != BLOB_MAGIC {
            return Err(BlobHeaderError::BadMagic(header.magic));
        }
        if header.abi_version != ABI_VERSION {
            return Err(BlobHeaderError::AbiVersion(header.abi_version));
        }
        if header.header_size < BLOB_HEADER_SIZE {
            return Err(BlobHeaderError::HeaderSize(header.header_size));
        }
        if header.file_size != blob.len() as u64 {
            return Err(BlobHeaderError::FileSize { header: header.file_size, actual: blob.len() as u64 });
        }
        Ok(header)
    }
}

/// Human name of a UEFI memory type, as the banner's memory map table shows it.
pub fn memory_type_name(ty: u32) -> &'static str {
    use r_efi::efi::*;
    match ty {
        RESERVED_MEMORY_TYPE => "Reserved",
        LOADER_CODE => "LoaderCode",
        LOADER_DATA => "LoaderData",
        BOOT_SERVICES_CODE => "BootServicesCode",
        BOOT_SERVICES_DATA => "BootServicesData",
        RUNTIME_SERVICES_CODE => "RuntimeServicesCode",
        RUNTIME_SERVICES_DATA => "RuntimeServicesData",
        CONVENTIONAL_MEMORY => "Conventional",
        UNUSABLE_MEMORY => "Unusable",
        ACPI_RECLAIM_MEMORY => "ACPIReclaim",
        ACPI_MEMORY_NVS => "ACPINVS",
        MEMORY_MAPPED_IO => "MMIO",
        MEMORY_MAPPED_IO_PORT_SPACE => "MMIOPortSpace",
        PAL_CODE => "PalCode",
        PERSISTENT_MEMORY => "Persistent",
        UNACCEPTED_MEMORY_TYPE => "Unaccepted",
        0x7000_0000..=0x7fff_ffff => "OEM",
        0x8000_0000..=0xffff_ffff => "OSV",
        _ => "Invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(file_size: u64) -> [u8; 72] {
        let mut b = [0u8; 72];
        b[8..16].copy_from_slice(&BLOB_MAGIC);
        b[16..20].copy_from_slice(&ABI_VERSION.to_le_bytes());
        b[20..24].copy_from_slice(&BLOB_HEADER_SIZE.to_le_bytes());
        b[56..60].copy_from_slice(&(BLOB_FLAG_POSITION_INDEPENDENT | BLOB_FLAG_PARAM_SLOT).to_le_bytes());
        b[24..32].copy_from_slice(&file_size.to_le_bytes());
        b
    }

    #[test]
    fn blob_header_round_trip_and_errors() {
        let b = header_bytes(72);
        let h = BlobHeader::parse(&b).unwrap();
        assert_eq!(h.header_size, 72);
        assert_eq!(h.param_slot, 0);
        assert_eq!(BlobHeader::parse(&b[..10]), Err(BlobHeaderError::TooShort(10)));
        let mut bad = b;
        bad[8] = b'X';
        assert!(matches!(BlobHeader::parse(&bad), Err(BlobHeaderError::BadMagic(_))));
        let mut v2 = b;
        v2[16] = 2;
        assert_eq!(BlobHeader::parse(&v2), Err(BlobHeaderError::AbiVersion(2)));
        let short = header_bytes(100);
        assert_eq!(BlobHeader::parse(&short), Err(BlobHeaderError::FileSize { header: 100, actual: 72 }));
        let mut old = b;
        old[20] = 64;
        assert_eq!(BlobHeader::parse(&old), Err(BlobHeaderError::HeaderSize(64)));
    }

    #[test]
    fn memory_type_names() {
        assert_eq!(memory_type_name(7), "Conventional");
        assert_eq!(memory_type_name(4), "BootServicesData");
        assert_eq!(memory_type_name(0x8000_0001), "OSV");
        assert_eq!(memory_type_name(0x20), "Invalid");
    }
}
