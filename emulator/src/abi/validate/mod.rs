//! Validation of the parameter block before anything uses it.
//!
//! Every rule reports the field, the value it found and what it expected. Harmless defects of the
//! RFC loader (see the ABI notes) are repaired by rounding, inward for free memory and outward for
//! occupied memory, and reported as warnings; only what cannot be made safe is refused.

use super::*;
use crate::drivers::fdt;
use crate::mem::{desc_extent, Descriptors, Extent};
use core::fmt;
use r_efi::efi;

/// Read access to physical memory. The blob reads RAM directly; host tests provide buffers.
pub trait PhysMemory {
    /// The bytes at `[addr, addr + len)`, or `None` when that range cannot be read.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// A refused field: which one, the value found, and what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: &'static str,
    /// Index of the memory descriptor or config table, for fields of an array.
    pub index: Option<usize>,
    pub value: u64,
    pub expected: &'static str,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid parameter block: {}", self.field)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        write!(f, " = {:#x}: expected {}", self.value, self.expected)
    }
}

impl core::error::Error for ParamError {}

/// A defect we repaired; reported on the console, then ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamWarning {
    pub field: &'static str,
    pub index: Option<usize>,
    pub value: u64,
    pub note: &'static str,
}

impl fmt::Display for ParamWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter block: {}", self.field)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        write!(f, " = {:#x}: {}", self.value, self.note)
    }
}

fn err(field: &'static str, value: u64, expected: &'static str) -> ParamError {
    ParamError { field, index: None, value, expected }
}

/// Memory a loader may place segments in: RAM the OS owns after ExitBootServices.
pub fn is_os_ram(ty: u32) -> bool {
    matches!(ty, efi::LOADER_CODE | efi::LOADER_DATA | efi::BOOT_SERVICES_CODE | efi::BOOT_SERVICES_DATA | efi::CONVENTIONAL_MEMORY)
}

/// Memory to map as Normal write-back RAM.
pub fn is_ram(ty: u32) -> bool {
    is_os_ram(ty) || matches!(ty, efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA | efi::ACPI_RECLAIM_MEMORY | efi::ACPI_MEMORY_NVS | efi::PERSISTENT_MEMORY)
}

fn is_valid_type(ty: u32) -> bool {
    ty <= efi::UNACCEPTED_MEMORY_TYPE || ty >= 0x7000_0000
}

/// Highest physical address we accept (52-bit PA space).
pub const MAX_PHYS: u64 = 1 << 52;
/// Largest memory map we accept, in bytes and in descriptors (firmware maps have hundreds).
pub const MAX_MAP_SIZE: u64 = 1 << 20;
pub const MAX_DESCRIPTORS: u64 = 4096;
/// The earlycon drivers the emulator can print on.
pub const SUPPORTED_EARLYCONS: [&str; 2] = ["pl011", "amba-pl011"];

/// Where the running blob sits: known from the program counter, not from the parameter block.
#[derive(Clone, Copy, Debug)]
pub struct BlobPlacement {
    pub start: u64,
    pub mem_size: u64,
}

/// A parameter block that passed validation, with the repairs applied.
pub struct Validated<'a> {
    pub param: EfiEmulatorParam,
    pub param_addr: u64,
    pub map: Descriptors<'a>,
    /// Page-aligned mempool (rounded inward).
    pub mempool: Extent,
    pub stack: Extent,
    pub kernel: Extent,
    /// `[dtb, dtb + totalsize)`.
    pub dtb: Extent,
    pub uart: Extent,
    /// Physical address of the firmware's runtime services table, when there is firmware.
    pub runtime_phys: Option<u64>,
    /// `rt_info` is still to be taken from the firmware (see [`super::firmware`]).
    pub derive_firmware: bool,
}

impl Validated<'_> {
    pub fn cmdline_utf16(&self) -> &[u16] {
        &self.param.cmdline[..self.param.sz_in_byte as usize / 2]
    }
    pub fn noefi(&self) -> bool {
        self.param.noefi_boot == 1
    }
    pub fn print_enabled(&self) -> bool {
        self.param.print_enabled == 1
    }
    pub fn earlycon_name(&self) -> &str {
        earlycon_name(&self.param.earlycon_name).unwrap_or("?")
    }
}

fn earlycon_name(raw: &[u8; 16]) -> Option<&str> {
    let len = raw.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&raw[..len]).ok()
}

/// Reads the fixed part of the block at `param_addr`.
pub fn read_param(mem: &dyn PhysMemory, param_addr: u64) -> Result<EfiEmulatorParam, ParamError> {
    if param_addr == 0 || !param_addr.is_multiple_of(PAGE_SIZE) {
        return Err(err("param (x0)", param_addr, "a non-zero, 4 KiB-aligned physical address"));
    }
    peek_param(mem, param_addr)
}

/// Reads the fixed part of a block wherever it is, aligned or not: only to find the console
/// that reports what is wrong with it.
pub fn peek_param(mem: &dyn PhysMemory, param_addr: u64) -> Result<EfiEmulatorParam, ParamError> {
    let bytes = mem.bytes(param_addr, PARAM_SIZE).ok_or(err("param (x0)", param_addr, "readable memory"))?;
    // SAFETY: `bytes` holds PARAM_SIZE bytes; every field is an integer type, so any bit
    // pattern is a valid value; read_unaligned does not require alignment.
    Ok(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const EfiEmulatorParam) })
}

/// Checks the block header fields that locate the memory map, and returns the map's length.
/// Nothing beyond the fixed 1680 bytes is read before this succeeds.
pub fn map_len(p: &EfiEmulatorParam, param_addr: u64) -> Result<usize, ParamError> {
    let mm = &p.rt_info.memmap;
    if p.sp == 0 || !p.sp.is_multiple_of(16) {
        return Err(err("sp", p.sp, "a non-zero, 16-byte-aligned stack top"));
    }
    if mm.desc_size < MIN_DESC_SIZE || !mm.desc_size.is_multiple_of(8) || mm.desc_size > 4096 {
        return Err(err("memmap.desc_size", mm.desc_size, ">= 40, a multiple of 8, <= 4096"));
    }
    if mm.desc_ver != efi::MEMORY_DESCRIPTOR_VERSION {
        return Err(err("memmap.desc_ver", mm.desc_ver as u64, "1 (EFI_MEMORY_DESCRIPTOR_VERSION)"));
    }
    if mm.map_size == 0 || !mm.map_size.is_multiple_of(mm.desc_size) || mm.map_size > MAX_MAP_SIZE || mm.map_size / mm.desc_size > MAX_DESCRIPTORS {
        return Err(err("memmap.map_size", mm.map_size, "a non-zero multiple of desc_size, at most 1 MiB and 4096 descriptors"));
    }
    // The struct and its map live in the block's own pages, below the stack.
    let map_end = param_addr + PARAM_SIZE as u64 + mm.map_size;
    if p.sp < param_addr || p.sp - param_addr > 1 << 30 {
        return Err(err("sp", p.sp, "above the parameter block, within 1 GiB of it"));
    }
    if map_end.saturating_add(MIN_STACK_SIZE) > p.sp {
        return Err(err("memmap.map_size", mm.map_size, "a map that ends at least 64 KiB (the stack) below sp"));
    }
    Ok(mm.map_size as usize)
}

/// Validates the whole block. `warn` hears every repaired defect.
pub fn validate<'a>(mem: &'a dyn PhysMemory, param_addr: u64, blob: BlobPlacement, warn: &mut dyn FnMut(ParamWarning)) -> Result<Validated<'a>, ParamError> {
    validate_with(mem, param_addr, blob, warn, false)
}

/// [`validate()`], but with `allow_derive` a block that asks the emulator to take `rt_info` from
/// the firmware (`noefi_boot` 0, `runtime` NULL: see [`super::firmware`]) passes, with
/// `runtime_phys` None and [`Validated::derive_firmware`] true. Validate again once it is filled.
pub fn validate_with<'a>(
    mem: &'a dyn PhysMemory,
    param_addr: u64,
    blob: BlobPlacement,
    warn: &mut dyn FnMut(ParamWarning),
    allow_derive: bool,
) -> Result<Validated<'a>, ParamError> {
    let p = read_param(mem, param_addr)?;
    let map_size = map_len(&p, param_addr)?;
    let map_bytes = mem.bytes(param_addr + PARAM_SIZE as u64, map_size).ok_or(err("memmap.map_size", map_size as u64, "a map inside readable memory"))?;
    let map = Descriptors::new(map_bytes, p.rt_info.memmap.desc_size as usize);

    check_flags(&p)?;
    check_cmdline(&p)?;
    check_memory_map(&map, warn)?;

    let stack = Extent::new(p.sp - MIN_STACK_SIZE, MIN_STACK_SIZE);
    let block = Extent::new(param_addr, p.sp - param_addr);
    if !map.covers(block, is_os_ram) {
        return Err(err("param (x0)", param_addr, "the block and its stack (up to sp) inside RAM of the memory map"));
    }
    let blob_extent = Extent::new(blob.start, blob.mem_size);
    if blob_extent.overlaps(&block) {
        return Err(err("param (x0)", param_addr, "a block and stack (up to sp) clear of the emulator blob"));
    }
    if p.load_address != blob.start {
        warn(ParamWarning { field: "load_address", index: None, value: p.load_address, note: "differs from where the blob runs; using the real address" });
    }

    let mempool = check_mempool(&p, &map, warn)?;
    if mempool.overlaps(&block) || mempool.overlaps(&blob_extent) {
        return Err(err("mempool_start", p.mempool_start, "a mempool that overlaps neither the param block, its stack nor the emulator blob"));
    }

    let kernel = Extent::new(p.kernel_img_start, p.kernel_img_sz);
    if p.kernel_img_sz == 0 {
        return Err(err("kernel_img_sz", 0, "the non-zero size of the PE image"));
    }
    if p.kernel_img_start == 0 || kernel.end() > MAX_PHYS || !map.covers(kernel, is_os_ram) {
        return Err(err("kernel_img_start", p.kernel_img_start, "an image (kernel_img_start..+kernel_img_sz) inside RAM of the memory map"));
    }
    if kernel.overlaps(&mempool) {
        return Err(err("kernel_img_start", p.kernel_img_start, "an image that does not overlap the mempool"));
    }
    if kernel.overlaps(&blob_extent) || kernel.overlaps(&block) {
        return Err(err("kernel_img_start", p.kernel_img_start, "an image that overlaps neither the emulator blob nor the param block"));
    }

    let dtb = check_dtb(mem, &p, &map)?;
    if dtb.overlaps(&mempool) {
        return Err(err("dtb", p.dtb, "a DTB that does not overlap the mempool"));
    }
    if dtb.overlaps(&kernel) || dtb.overlaps(&blob_extent) || dtb.overlaps(&block) {
        return Err(err("dtb", p.dtb, "a DTB that overlaps neither the kernel image, the emulator blob nor the param block"));
    }

    let uart = check_earlycon(&p, &map, warn)?;
    let derive_firmware = allow_derive && p.noefi_boot == 0 && p.rt_info.runtime == 0;
    let runtime_phys = if derive_firmware { None } else { check_rt_info(&p, &map)? };

    Ok(Validated { param: p, param_addr, map, mempool, stack, kernel, dtb, uart, runtime_phys, derive_firmware })
}

fn check_flags(p: &EfiEmulatorParam) -> Result<(), ParamError> {
    for (field, v) in [("noefi_boot", p.noefi_boot), ("print_enabled", p.print_enabled), ("mmu_on", p.mmu_on)] {
        if v > 1 {
            return Err(err(field, v as u64, "0 or 1 (a C bool)"));
        }
    }
    if p.mmu_on != 0 {
        return Err(err("mmu_on", 1, "0: the emulator must be entered with the MMU off"));
    }
    Ok(())
}

fn check_cmdline(p: &EfiEmulatorParam) -> Result<(), ParamError> {
    let n = p.sz_in_byte as usize;
    if !n.is_multiple_of(2) || n >= CMDLINE_BYTES {
        return Err(err("sz_in_byte", n as u64, "an even byte count below 1024 (room for the NUL in cmdline[512])"));
    }
    let units = &p.cmdline[..n / 2];
    if let Some(i) = units.iter().position(|&u| u == 0) {
        return Err(err("cmdline", i as u64, "no NUL before sz_in_byte (value: the UTF-16 index of the NUL)"));
    }
    if let Some(Err(e)) = char::decode_utf16(units.iter().copied()).find(|r| r.is_err()) {
        return Err(err("cmdline", e.unpaired_surrogate() as u64, "valid UTF-16 (value: an unpaired surrogate)"));
    }
    Ok(())
}

fn check_memory_map(map: &Descriptors, warn: &mut dyn FnMut(ParamWarning)) -> Result<(), ParamError> {
    for (i, d) in map.iter().enumerate() {
        let e = |field, value, expected| ParamError { field, index: Some(i), value, expected };
        if !is_valid_type(d.r#type) {
            return Err(e("memmap.type", d.r#type as u64, "a UEFI memory type (0..=15, or an OEM/OS value >= 0x70000000)"));
        }
        if d.number_of_pages == 0 || d.number_of_pages > MAX_PHYS / PAGE_SIZE {
            return Err(e("memmap.num_pages", d.number_of_pages, "a non-zero page count inside the 52-bit address space"));
        }
        if d.physical_start >= MAX_PHYS || desc_extent(&d).end() > MAX_PHYS {
            return Err(e("memmap.phys_addr", d.physical_start, "a range inside the 52-bit physical address space"));
        }
        if d.physical_start % PAGE_SIZE != 0 {
            // The RFC loader splits around an unaligned mempool: the next descriptor starts
            // mid-page. The mempool is rounded inward below, so that page stays occupied.
            warn(ParamWarning { field: "memmap.phys_addr", index: Some(i), value: d.physical_start, note: "not page aligned; treated as starting at the page below" });
        }
    }
    // Overlaps, once every descriptor is known to be in range. Compare page-rounded ranges:
    // an unaligned start overlapping its neighbour's last partial page is the defect above,
    // not a real overlap.
    let shrink = |x: Extent| Extent::new(align_up(x.start, PAGE_SIZE), x.size.saturating_sub(x.start % PAGE_SIZE) & !(PAGE_SIZE - 1));
    let overlap = |i: usize, d: &efi::MemoryDescriptor| ParamError {
        field: "memmap.phys_addr",
        index: Some(i),
        value: d.physical_start,
        expected: "descriptors that do not overlap each other",
    };
    // Sorted by address (as loaders and firmware write it), one sweep that remembers the
    // furthest end so far finds any overlap: linear in maps of thousands of descriptors.
    // Otherwise every pair is compared.
    let sorted = (1..map.len()).all(|i| map.get(i - 1).physical_start <= map.get(i).physical_start);
    if sorted {
        let mut reach: Option<(usize, u64)> = None;
        for (i, d) in map.iter().enumerate() {
            let here = shrink(desc_extent(&d));
            if here.size == 0 {
                continue;
            }
            match reach {
                Some((j, end)) if here.start < end => return Err(overlap(j, &map.get(j))),
                Some((_, end)) if end >= here.end() => {}
                _ => reach = Some((i, here.end())),
            }
        }
        return Ok(());
    }
    for (i, d) in map.iter().enumerate() {
        let here = shrink(desc_extent(&d));
        if map.iter().skip(i + 1).any(|other| here.overlaps(&shrink(desc_extent(&other)))) {
            return Err(overlap(i, &d));
        }
    }
    Ok(())
}

fn check_mempool(p: &EfiEmulatorParam, map: &Descriptors, warn: &mut dyn FnMut(ParamWarning)) -> Result<Extent, ParamError> {
    if p.mempool_start == 0 {
        return Err(err("mempool_start", 0, "the non-zero start of the heap"));
    }
    let start = align_up(p.mempool_start, PAGE_SIZE);
    let end = p.mempool_start.checked_add(p.mempool_sz).ok_or(err("mempool_sz", p.mempool_sz, "a size that does not wrap around"))? & !(PAGE_SIZE - 1);
    if start != p.mempool_start {
        warn(ParamWarning { field: "mempool_start", index: None, value: p.mempool_start, note: "not page aligned; rounded up" });
    }
    if end != p.mempool_start + p.mempool_sz {
        warn(ParamWarning { field: "mempool_sz", index: None, value: p.mempool_sz, note: "end not page aligned; rounded down" });
    }
    if end <= start || end - start < MIN_MEMPOOL_SIZE {
        return Err(err("mempool_sz", p.mempool_sz, "at least 1 MiB of whole pages"));
    }
    let pool = Extent::new(start, end - start);
    let holders = map.iter().filter(|d| d.r#type == efi::CONVENTIONAL_MEMORY).filter(|d| {
        let e = desc_extent(d);
        // The RFC loader may leave the descriptor's end unaligned like the pool's.
        Extent::new(e.start & !(PAGE_SIZE - 1), align_up(e.end(), PAGE_SIZE) - (e.start & !(PAGE_SIZE - 1))).contains(&pool)
    });
    if holders.count() != 1 {
        return Err(err("mempool_start", p.mempool_start, "a mempool inside exactly one EfiConventionalMemory descriptor"));
    }
    Ok(pool)
}

fn check_dtb(mem: &dyn PhysMemory, p: &EfiEmulatorParam, map: &Descriptors) -> Result<Extent, ParamError> {
    if p.dtb == 0 || !p.dtb.is_multiple_of(8) {
        return Err(err("dtb", p.dtb, "a non-zero, 8-byte-aligned address"));
    }
    if !map.covers(Extent::new(p.dtb, fdt::HEADER_SIZE as u64), is_os_ram) {
        return Err(err("dtb", p.dtb, "a DTB inside RAM of the memory map"));
    }
    let header = mem.bytes(p.dtb, fdt::HEADER_SIZE).ok_or(err("dtb", p.dtb, "readable memory"))?;
    let total = fdt::total_size(header).map_err(|e| err("dtb", e.value, e.expected))?;
    let extent = Extent::new(p.dtb, total as u64);
    if !map.covers(extent, is_os_ram) {
        return Err(err("dtb totalsize", total as u64, "a DTB that lies inside RAM of the memory map"));
    }
    let blob = mem.bytes(p.dtb, total).ok_or(err("dtb", p.dtb, "readable memory"))?;
    fdt::Fdt::new(blob).map_err(|e| err("dtb", e.value, e.expected))?;
    Ok(extent)
}

fn check_earlycon(p: &EfiEmulatorParam, map: &Descriptors, warn: &mut dyn FnMut(ParamWarning)) -> Result<Extent, ParamError> {
    if p.earlycon_reg_base == 0 {
        return Err(err("earlycon_reg_base", 0, "the non-zero MMIO base of the UART"));
    }
    let name = earlycon_name(&p.earlycon_name);
    if !name.is_some_and(|n| SUPPORTED_EARLYCONS.contains(&n)) {
        let first = crate::mem::le_u64(&p.earlycon_name, 0).unwrap_or_default();
        return Err(err("earlycon_name", first, "\"pl011\" or \"amba-pl011\", NUL-terminated (value: its first 8 bytes)"));
    }
    let mut size = p.earlycon_reg_sz;
    if size == 0 {
        warn(ParamWarning { field: "earlycon_reg_sz", index: None, value: 0, note: "zero; assuming the 4 KiB of a PL011" });
        size = PAGE_SIZE;
    }
    let uart = Extent::new(p.earlycon_reg_base & !(PAGE_SIZE - 1), align_up(size, PAGE_SIZE));
    if map.iter().any(|d| is_ram(d.r#type) && desc_extent(&d).overlaps(&uart)) {
        return Err(err("earlycon_reg_base", p.earlycon_reg_base, "an MMIO address outside RAM"));
    }
    Ok(uart)
}

fn check_rt_info(p: &EfiEmulatorParam, map: &Descriptors) -> Result<Option<u64>, ParamError> {
    let rt = &p.rt_info;
    if rt.systab_nr_tables as usize > MAX_SYSTAB_TABLES {
        return Err(err("rt_info.systab_nr_tables", rt.systab_nr_tables as u64, "at most 20"));
    }
    for (i, t) in rt.systab_tables[..rt.systab_nr_tables as usize].iter().enumerate() {
        if t.table == 0 {
            return Err(ParamError { field: "rt_info.systab_tables.table", index: Some(i), value: 0, expected: "a non-NULL table pointer" });
        }
    }
    if p.noefi_boot == 1 {
        if rt.runtime != 0 {
            return Err(err("rt_info.runtime", rt.runtime, "NULL when noefi_boot is 1 (no firmware behind us)"));
        }
        return Ok(None);
    }
    if rt.runtime == 0 {
        return Err(no_runtime_table());
    }
    match virt_to_phys(map, rt.runtime) {
        Some(phys) => Ok(Some(phys)),
        None => Err(err("rt_info.runtime", rt.runtime, "an address inside a runtime services descriptor (virtual or physical)")),
    }
}

/// `noefi_boot` 0 with a NULL `runtime` and nothing in the DTB to take the table from.
pub fn no_runtime_table() -> ParamError {
    err(
        "rt_info.runtime",
        0,
        "the firmware's runtime services table when noefi_boot is 0 (NULL asks the emulator to take it from the DTB's /chosen/linux,uefi-system-table, which is missing)",
    )
}

/// Translates an address the first kernel used for firmware memory into a physical one, through
/// the runtime descriptors' `virt_addr`. Identity-mapped firmware translates to itself.
pub fn virt_to_phys(map: &Descriptors, addr: u64) -> Option<u64> {
    let runtime = |d: &efi::MemoryDescriptor| d.attribute & efi::MEMORY_RUNTIME != 0 || matches!(d.r#type, efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA);
    // The firmware's map is read here before any check: sizes saturate, sums are checked.
    for d in map.iter().filter(runtime) {
        let size = desc_extent(&d).size;
        if d.virtual_start != 0 && addr >= d.virtual_start && addr - d.virtual_start < size {
            return d.physical_start.checked_add(addr - d.virtual_start);
        }
    }
    map.iter().filter(runtime).find(|d| desc_extent(d).contains(&Extent::new(addr, 1))).map(|_| addr)
}

/// Rounds up to a power-of-two `align`; saturates instead of wrapping for hostile values.
pub const fn align_up(v: u64, align: u64) -> u64 {
    v.saturating_add(align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests;
