//! Completing a parameter block from the firmware itself.
//!
//! A loader in user space cannot read what the in-kernel loader of the original design put in
//! `rt_info`: the firmware's memory map (in RAM the running kernel reserved) and its system
//! table (in runtime memory outside the linear map). The emulator can, since it runs on physical
//! memory. The rule (an ABI extension no RFC loader trips over, since that loader always sets
//! `runtime` when `noefi_boot` is 0):
//!
//! `noefi_boot = 0` with `rt_info.runtime = 0` asks the emulator to fill `rt_info` itself from
//! the DTB's `/chosen` as the running kernel's EFI stub left it: `linux,uefi-system-table` and
//! `linux,uefi-mmap-{start,size,desc-size,desc-ver}`. The firmware's descriptors that are not the
//! OS's RAM (runtime, reserved, ACPI, MMIO, ...) join the loader's map, with their attributes and
//! virtual addresses, cut out of the loader's RAM descriptors; `runtime` and the firmware's
//! ACPI and SMBIOS tables come from the system table. The merged map is written in place, so
//! `memmap.buff_size` must leave room for it (`efi-kexec` gives 64 KiB). Then the block is
//! validated again, whole.

use super::validate::{is_os_ram, virt_to_phys, ParamError, PhysMemory};
use super::*;
use crate::drivers::fdt::{be_uint, Fdt};
use crate::mem::{desc_extent, split, write_desc, Descriptors, Extent};
use r_efi::efi;

/// What the running kernel's stub recorded about the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StubFacts {
    pub system_table: u64,
    pub mmap: Extent,
    pub desc_size: u64,
    pub desc_ver: u32,
}

fn err(field: &'static str, value: u64, expected: &'static str) -> ParamError {
    ParamError { field, index: None, value, expected }
}

/// The `linux,uefi-*` properties of `/chosen`, when there is a system table.
pub fn stub_facts(fdt: &Fdt) -> Option<Result<StubFacts, ParamError>> {
    let chosen = fdt.find("/chosen")?;
    let system_table = be_uint(chosen.property("linux,uefi-system-table")?)?;
    let prop = |name: &'static str| chosen.property(name).and_then(be_uint).ok_or(err(name, 0, "a property of /chosen when linux,uefi-system-table is there"));
    Some((|| {
        let facts = StubFacts {
            system_table,
            mmap: Extent::new(prop("linux,uefi-mmap-start")?, prop("linux,uefi-mmap-size")?),
            desc_size: prop("linux,uefi-mmap-desc-size")?,
            desc_ver: prop("linux,uefi-mmap-desc-ver")? as u32,
        };
        if facts.desc_size < MIN_DESC_SIZE || !facts.desc_size.is_multiple_of(8) || facts.desc_size > 4096 {
            return Err(err("linux,uefi-mmap-desc-size", facts.desc_size, ">= 40, a multiple of 8, <= 4096"));
        }
        if facts.mmap.size == 0 || !facts.mmap.size.is_multiple_of(facts.desc_size) || facts.mmap.size / facts.desc_size > validate::MAX_DESCRIPTORS {
            return Err(err("linux,uefi-mmap-size", facts.mmap.size, "a non-zero multiple of the descriptor size, at most 4096 descriptors"));
        }
        Ok(facts)
    })())
}

/// EFI_SYSTEM_RESOURCE_TABLE_GUID (the ESRT: firmware resources for capsule updates).
const ESRT_GUID: efi::Guid = efi::Guid::from_fields(0xb122a263, 0x3661, 0x4f68, 0x99, 0x29, &[0x78, 0xf8, 0xb0, 0xd6, 0x21, 0x80]);

/// Configuration tables worth passing on: what describes the machine and its firmware, and what
/// Linux keeps across its own kexec, which hands the next kernel the same system table: the
/// memreserve chain (GICv3 LPI tables, which cannot be turned off once on, live in it) and the
/// TPM event logs. Not the first kernel's initrd or random seed, nor the firmware's RT
/// properties (the emulator publishes its own) or memory attributes (they would leave the
/// emulator's runtime ranges out).
pub fn passes_on(guid: &efi::Guid) -> bool {
    use crate::efi::guids::{LINUX_EFI_MEMRESERVE, LINUX_EFI_TPM_EVENT_LOG, LINUX_EFI_TPM_FINAL_LOG};
    use r_efi::system::*;
    [ACPI_10_TABLE_GUID, ACPI_20_TABLE_GUID, SMBIOS_TABLE_GUID, SMBIOS3_TABLE_GUID, ESRT_GUID, LINUX_EFI_MEMRESERVE, LINUX_EFI_TPM_EVENT_LOG, LINUX_EFI_TPM_FINAL_LOG]
        .contains(guid)
}

/// What the completion found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The "firmware" is an earlier efi-emulator (a kexec chain): the block becomes
    /// `noefi_boot` 1, so the next payload gets this emulator's own services, and the tables
    /// the earlier one had that pass on go on.
    pub previous_emulator: bool,
    /// Firmware descriptors added to the map.
    pub firmware_descriptors: usize,
    /// Configuration tables the firmware has, and how many pass on.
    pub config_tables: usize,
    pub passed_on: usize,
    /// The system table's revision.
    pub revision: u32,
}

/// Bytes of an EFI system table (64-bit).
pub const SYSTAB_SIZE: usize = 120;
const DESC: usize = MIN_DESC_SIZE as usize;

/// Firmware descriptors that join the loader's map: everything that is not the OS's RAM.
fn joins(d: &efi::MemoryDescriptor) -> bool {
    !is_os_ram(d.r#type)
}

/// What of an earlier emulator's map joins the next one: the ranges that hold the tables passed
/// on (ACPI, reserved), not its runtime ranges or MMIO, which the new emulator describes itself
/// (its PL031 would collide with the old one's).
fn joins_from_emulator(d: &efi::MemoryDescriptor) -> bool {
    joins(d) && !matches!(d.r#type, efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA | efi::MEMORY_MAPPED_IO | efi::MEMORY_MAPPED_IO_PORT_SPACE)
}

/// Merges the firmware's map into the loader's, in `buffer` (the block's map buffer, whose first
/// `loader_len` bytes are the loader's 40-byte descriptors), without a heap: the merged map is
/// staged after the loader's, sorted there, and moved to the front. Returns its length in bytes.
pub fn merge_maps(buffer: &mut [u8], loader_len: usize, firmware: &Descriptors, mempool: Extent) -> Result<usize, ParamError> {
    merge_maps_keeping(buffer, loader_len, firmware, mempool, joins)
}

/// [`merge_maps`] of the firmware descriptors `keep` takes.
fn merge_maps_keeping(buffer: &mut [u8], loader_len: usize, firmware: &Descriptors, mempool: Extent, keep: fn(&efi::MemoryDescriptor) -> bool) -> Result<usize, ParamError> {
    let holes = || firmware.iter().filter(keep).map(|d| desc_extent(&d));
    let (loader_bytes, staging) = buffer.split_at_mut(loader_len);
    let loader = Descriptors::new(loader_bytes, DESC);
    if let Some(h) = holes().find(|h| h.overlaps(&mempool)) {
        return Err(err("mempool_start", h.start, "a mempool clear of the firmware's runtime, reserved, ACPI and MMIO ranges (value: the firmware range)"));
    }
    let total = loader.iter().map(|d| split(desc_extent(&d), holes).count()).sum::<usize>() + holes().count();
    if total * DESC > staging.len() || total as u64 > validate::MAX_DESCRIPTORS {
        return Err(err("memmap.buff_size", (loader_len + staging.len()) as u64, "room for the loader's map and the merged one after it"));
    }
    let mut n = 0;
    let mut push = |d: efi::MemoryDescriptor| {
        write_desc(&mut staging[n * DESC..(n + 1) * DESC], &d);
        n += 1;
    };
    for d in loader.iter() {
        for piece in split(desc_extent(&d), holes) {
            push(efi::MemoryDescriptor { physical_start: piece.start, number_of_pages: piece.size / PAGE_SIZE, ..d });
        }
    }
    for d in firmware.iter().filter(keep) {
        push(d);
    }
    // Insertion sort by address: maps are short and nearly sorted.
    let start_of = |b: &[u8], i: usize| u64::from_le_bytes(b[i * DESC + 8..i * DESC + 16].try_into().unwrap());
    for i in 1..n {
        let mut j = i;
        while j > 0 && start_of(staging, j - 1) > start_of(staging, j) {
            for k in 0..DESC {
                staging.swap((j - 1) * DESC + k, j * DESC + k);
            }
            j -= 1;
        }
    }
    buffer.copy_within(loader_len..loader_len + n * DESC, 0);
    Ok(n * DESC)
}

/// The block's map buffer, `[param + 1680, + buff_size)`, checked to end 64 KiB below `sp`.
pub fn map_buffer(p: &EfiEmulatorParam, param_addr: u64) -> Result<Extent, ParamError> {
    let buffer = Extent::new(param_addr + PARAM_SIZE as u64, p.rt_info.memmap.buff_size);
    if buffer.size < p.rt_info.memmap.map_size || buffer.end().saturating_add(MIN_STACK_SIZE) > p.sp {
        return Err(err("memmap.buff_size", buffer.size, "room for the merged map after the struct, ending 64 KiB below sp"));
    }
    Ok(buffer)
}

/// Fills `p.rt_info` (see the module docs): merges the firmware's map (`firmware_map`, its raw
/// bytes) into the block's map `buffer`, and reads the system table through `mem`.
pub fn complete(p: &mut EfiEmulatorParam, buffer: &mut [u8], firmware_map: &[u8], facts: &StubFacts, mem: &dyn PhysMemory) -> Result<Completion, ParamError> {
    if facts.desc_ver != efi::MEMORY_DESCRIPTOR_VERSION {
        return Err(err("linux,uefi-mmap-desc-ver", facts.desc_ver as u64, "1"));
    }
    if p.rt_info.memmap.desc_size != MIN_DESC_SIZE {
        return Err(err("memmap.desc_size", p.rt_info.memmap.desc_size, "40 when the emulator is to merge the firmware's map into it"));
    }
    let firmware = Descriptors::new(firmware_map, facts.desc_size as usize);
    let systab = mem.bytes(facts.system_table, SYSTAB_SIZE).ok_or(err("linux,uefi-system-table", facts.system_table, "the system table in readable memory"))?;
    // Inside buffers of checked sizes: a short read cannot happen, and would read as 0.
    let u64_at = |b: &[u8], o: usize| crate::mem::le_u64(b, o).unwrap_or_default();
    if u64_at(systab, 0) != crate::efi::guids::SYSTEM_TABLE_SIGNATURE {
        return Err(err("linux,uefi-system-table", facts.system_table, "an EFI system table (signature \"IBI SYST\")"));
    }
    let revision = u32::from_le_bytes(systab[8..12].try_into().unwrap());
    let count = u64_at(systab, 104) as usize;
    let tables_va = u64_at(systab, 112);
    if vendor_is(mem, &firmware, u64_at(systab, 24), crate::efi::guids::FIRMWARE_VENDOR) {
        // A kexec chain: the payload gets this emulator's own services, and what the earlier
        // one passed on or was given goes on (the memreserve chain with the GICv3 LPI tables,
        // ACPI, SMBIOS, TPM logs), with the ranges that hold them. Its tables sit where it put
        // them: it never moves.
        p.noefi_boot = 1;
        let tables = mem.bytes(tables_va, count.min(256) * 24).ok_or(err("system table ConfigurationTable", tables_va, "configuration tables in readable memory"))?;
        let (passed_on, _) = pass_on(p, tables);
        p.rt_info.systab_nr_tables = passed_on as u32;
        let mempool = Extent::new(p.mempool_start, p.mempool_sz);
        p.rt_info.memmap.map_size = merge_maps_keeping(buffer, p.rt_info.memmap.map_size as usize, &firmware, mempool, joins_from_emulator)? as u64;
        let kept = firmware.iter().filter(joins_from_emulator).count();
        return Ok(Completion { previous_emulator: true, firmware_descriptors: kept, config_tables: count, passed_on, revision });
    }
    let mempool = Extent::new(p.mempool_start, p.mempool_sz);
    let map_bytes = merge_maps(buffer, p.rt_info.memmap.map_size as usize, &firmware, mempool)?;
    p.rt_info.memmap.map_size = map_bytes as u64;
    let merged = Descriptors::new(&buffer[..map_bytes], DESC);

    // The system table's pointers are virtual addresses since the first kernel's
    // SetVirtualAddressMap: translated through the runtime descriptors.
    let runtime = u64_at(systab, 88);
    let tables_pa = virt_to_phys(&merged, tables_va).unwrap_or(tables_va);
    let tables = mem.bytes(tables_pa, count.min(256) * 24).ok_or(err("system table ConfigurationTable", tables_va, "configuration tables in readable memory"))?;
    let (passed_on, props) = pass_on(p, tables);
    // A firmware without an RT properties table offers every service.
    let supported = props.and_then(|va| mem.bytes(virt_to_phys(&merged, va).unwrap_or(va), 8)).map_or(0x3fff, |b| u32::from_le_bytes(b[4..8].try_into().unwrap()));
    p.rt_info.runtime = runtime;
    p.rt_info.runtime_version = revision;
    p.rt_info.runtime_supported_mask = supported;
    p.rt_info.systab_nr_tables = passed_on as u32;
    Ok(Completion { previous_emulator: false, firmware_descriptors: firmware.iter().filter(joins).count(), config_tables: count, passed_on, revision })
}

/// Copies the configuration tables that pass on ([`passes_on`]) from `tables` (the system
/// table's array) into the block; the count, and where the RT properties table is (as the
/// array says: a firmware's virtual address).
fn pass_on(p: &mut EfiEmulatorParam, tables: &[u8]) -> (usize, Option<u64>) {
    let (mut passed_on, mut props) = (0, None);
    for entry in tables.chunks_exact(24) {
        let guid = efi::Guid::from_bytes(entry[..16].try_into().unwrap());
        let table = crate::mem::le_u64(entry, 16).unwrap_or_default();
        if guid == r_efi::system::RT_PROPERTIES_TABLE_GUID {
            props = Some(table);
        } else if passes_on(&guid) && passed_on < MAX_SYSTAB_TABLES && table != 0 {
            p.rt_info.systab_tables[passed_on] = ConfigTableEntry { guid, table };
            passed_on += 1;
        }
    }
    (passed_on, props)
}

/// The PL011 ACPI's SPCR table names (interface type 3, PL011, or 0x0e, the SBSA generic UART,
/// a PL011 subset): the console of a machine whose device tree holds only `/chosen`. Found
/// through the system table's ACPI 2.0 RSDP and its XSDT; `firmware` translates the system
/// table's virtual pointers.
pub fn spcr_uart(facts: &StubFacts, firmware: &Descriptors, mem: &dyn PhysMemory) -> Option<u64> {
    let u64_at = |b: &[u8], o: usize| crate::mem::le_u64(b, o);
    let systab = mem.bytes(facts.system_table, SYSTAB_SIZE)?;
    let (count, tables_va) = (u64_at(systab, 104)? as usize, u64_at(systab, 112)?);
    let tables = mem.bytes(virt_to_phys(firmware, tables_va).unwrap_or(tables_va), count.min(256) * 24)?;
    let rsdp = tables.chunks_exact(24).find(|e| efi::Guid::from_bytes(e[..16].try_into().unwrap()) == r_efi::system::ACPI_20_TABLE_GUID).and_then(|e| u64_at(e, 16))?;
    let rsdp = mem.bytes(rsdp, 36).filter(|r| r.starts_with(b"RSD PTR "))?;
    let xsdt_at = u64_at(rsdp, 24)?;
    let header = mem.bytes(xsdt_at, 36).filter(|x| x.starts_with(b"XSDT"))?;
    let len = (crate::mem::le_u32(header, 4)? as usize).clamp(36, 36 + 8 * 256);
    let xsdt = mem.bytes(xsdt_at, len)?;
    xsdt[36..].chunks_exact(8).filter_map(|e| u64_at(e, 0)).find_map(|table| spcr_pl011(mem.bytes(table, 52)?))
}

/// The base of the UART an SPCR table names, when it is a PL011 (interface type 3) or an SBSA
/// generic UART (0x0e, and 0x0d, the one that takes only 32-bit accesses: the emulator's PL011
/// accesses are all 32-bit), both PL011 subsets; `spcr` is the table from its signature on.
pub fn spcr_pl011(spcr: &[u8]) -> Option<u64> {
    let base = crate::mem::le_u64(spcr, 44)?;
    (spcr.get(..4)? == b"SPCR" && matches!(*spcr.get(36)?, 0x03 | 0x0d | 0x0e) && base != 0).then_some(base)
}

/// True when the NUL-terminated UTF-16 string at `va` (a firmware address) is `name`.
fn vendor_is(mem: &dyn PhysMemory, firmware: &Descriptors, va: u64, name: &str) -> bool {
    let pa = virt_to_phys(firmware, va).unwrap_or(va);
    let expected = name.encode_utf16().chain(core::iter::once(0));
    let Some(bytes) = mem.bytes(pa, (name.len() + 1) * 2) else { return false };
    bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).eq(expected)
}

#[cfg(test)]
mod tests;
