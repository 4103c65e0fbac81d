//! The UEFI memory map: every range with its type, page allocation out of conventional memory
//! (AllocateAnyPages, AllocateMaxAddress, AllocateAddress), FreePages of any page-aligned
//! sub-range of an allocation, and GetMemoryMap with a key that changes on every change.

use super::EfiError;
use crate::mem::{Extent, PAGE_SIZE};
use alloc::vec::Vec;
use r_efi::efi;

/// One range of the map. `allocated` marks pages a payload (or the emulator) got from
/// AllocatePages: only those may be freed, and they become conventional memory again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub ty: u32,
    pub start: u64,
    pub pages: u64,
    pub attr: u64,
    pub virt: u64,
    pub allocated: bool,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.start + self.pages * PAGE_SIZE
    }
}

/// How AllocatePages picks the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocateType {
    /// Anywhere (highest fit below 2^48).
    AnyPages,
    /// Highest fit that ends at or below the address.
    MaxAddress(u64),
    /// Exactly there.
    Address(u64),
}

/// Highest address AllocateAnyPages hands out (the spec asks for 48-bit reachable memory).
pub const ANY_PAGES_LIMIT: u64 = 1 << 48;

/// Runtime and reserved memory comes in 64 KiB units on AArch64, so 64K-page OSes can map it.
pub const RUNTIME_GRANULE: u64 = 64 * 1024;

/// The blob's runtime ranges, code then data, from `base` with `text_end` and `mem_end` as
/// offsets: on [`RUNTIME_GRANULE`] boundaries (UEFI 2.10 section 2.3.6: a 64 KiB-page OS maps
/// each range with its own permissions, else with both) when the blob lies on one and its
/// footprint is a multiple of it, the code range then also holding the start of the read-only
/// data, as EDK2's runtime drivers' code ranges do. Otherwise 4 KiB-granular, and `false`.
pub fn blob_runtime_ranges(base: u64, text_end: u64, mem_end: u64) -> ([Extent; 2], bool) {
    let granular = base.is_multiple_of(RUNTIME_GRANULE) && mem_end.is_multiple_of(RUNTIME_GRANULE);
    let code_end = if granular { text_end.next_multiple_of(RUNTIME_GRANULE).min(mem_end) } else { text_end };
    ([Extent::new(base, code_end), Extent::new(base + code_end, mem_end - code_end)], granular)
}

/// A runtime MMIO range around `[base, base + size)`, on [`RUNTIME_GRANULE`] boundaries.
pub fn runtime_mmio(base: u64, size: u64) -> Region {
    let start = base & !(RUNTIME_GRANULE - 1);
    let end = (base + size.max(1)).next_multiple_of(RUNTIME_GRANULE);
    Region { ty: efi::MEMORY_MAPPED_IO, start, pages: (end - start) / PAGE_SIZE, attr: efi::MEMORY_UC | efi::MEMORY_RUNTIME, virt: 0, allocated: false }
}

pub fn is_runtime_type(ty: u32) -> bool {
    matches!(ty, efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA | efi::ACPI_MEMORY_NVS | efi::RESERVED_MEMORY_TYPE)
}

/// Types AllocatePages and AllocatePool accept (EDK2's rule): every standard type but free
/// memory (conventional, persistent, unaccepted), and the OEM and OS ranges.
pub fn is_allocatable_type(ty: u32) -> bool {
    (ty < efi::UNACCEPTED_MEMORY_TYPE && ty != efi::CONVENTIONAL_MEMORY && ty != efi::PERSISTENT_MEMORY) || ty >= 0x7000_0000
}

#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    /// Sorted by start, never overlapping.
    regions: Vec<Region>,
    key: usize,
}

impl MemoryMap {
    /// A map from initial regions (sorted, overlap-free: the validated parameter block's map).
    pub fn new(mut regions: Vec<Region>) -> Self {
        crate::mem::sort_by_key(&mut regions, |r| r.start);
        let mut map = MemoryMap { regions, key: 1 };
        map.coalesce();
        map
    }

    /// Changes with every change of the map.
    pub fn key(&self) -> usize {
        self.key
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region holding `addr`.
    pub fn find(&self, addr: u64) -> Option<&Region> {
        self.regions.iter().find(|r| r.start <= addr && addr < r.end())
    }

    /// Total pages of conventional memory.
    pub fn free_pages(&self) -> u64 {
        self.regions.iter().filter(|r| r.ty == efi::CONVENTIONAL_MEMORY).map(|r| r.pages).sum()
    }

    fn changed(&mut self) {
        self.key = self.key.wrapping_add(1).max(1);
        self.coalesce();
    }

    fn coalesce(&mut self) {
        let mut out: Vec<Region> = Vec::with_capacity(self.regions.len());
        for r in self.regions.drain(..) {
            match out.last_mut() {
                Some(last) if last.end() == r.start && last.ty == r.ty && last.attr == r.attr && last.allocated == r.allocated && last.virt == 0 && r.virt == 0 => {
                    last.pages += r.pages
                }
                _ => out.push(r),
            }
        }
        self.regions = out;
    }

    /// Gives `[start, start + pages)` the type `ty` (and `allocated`), splitting regions at the
    /// edges. Every page must already be in the map.
    pub fn retype(&mut self, start: u64, pages: u64, ty: u32, allocated: bool) -> Result<(), EfiError> {
        let end = start + pages * PAGE_SIZE;
        if !self.covered(start, end, |_| true) {
            return Err(EfiError::NotFound);
        }
        let mut out = Vec::with_capacity(self.regions.len() + 2);
        for r in self.regions.drain(..) {
            if r.end() <= start || r.start >= end {
                out.push(r);
                continue;
            }
            if r.start < start {
                out.push(Region { pages: (start - r.start) / PAGE_SIZE, ..r });
            }
            let (s, e) = (r.start.max(start), r.end().min(end));
            let mut attr = r.attr & !efi::MEMORY_RUNTIME;
            if is_runtime_type(ty) && ty != efi::RESERVED_MEMORY_TYPE {
                attr |= efi::MEMORY_RUNTIME;
            }
            out.push(Region { ty, start: s, pages: (e - s) / PAGE_SIZE, attr, virt: 0, allocated });
            if r.end() > end {
                out.push(Region { start: end, pages: (r.end() - end) / PAGE_SIZE, ..r });
            }
        }
        self.regions = out;
        self.changed();
        Ok(())
    }

    /// Adds a range the map does not have yet (MMIO the OS must map for runtime services).
    pub fn add(&mut self, region: Region) -> Result<(), EfiError> {
        if self.regions.iter().any(|r| r.start < region.end() && region.start < r.end()) {
            return Err(EfiError::AccessDenied);
        }
        let at = self.regions.partition_point(|r| r.start < region.start);
        self.regions.insert(at, region);
        self.changed();
        Ok(())
    }

    fn covered(&self, start: u64, end: u64, pred: impl Fn(&Region) -> bool) -> bool {
        let mut cursor = start;
        for r in &self.regions {
            if r.end() <= cursor {
                continue;
            }
            if r.start > cursor || !pred(r) {
                return false;
            }
            cursor = r.end();
            if cursor >= end {
                return true;
            }
        }
        cursor >= end
    }

    /// AllocatePages: `pages` of conventional memory, aligned to `align` bytes.
    pub fn allocate(&mut self, how: AllocateType, ty: u32, pages: u64, align: u64) -> Result<u64, EfiError> {
        if !is_allocatable_type(ty) {
            return Err(EfiError::InvalidParameter);
        }
        if pages == 0 {
            return Err(EfiError::InvalidParameter);
        }
        let (align, pages) = if is_runtime_type(ty) { (align.max(RUNTIME_GRANULE), pages.next_multiple_of(RUNTIME_GRANULE / PAGE_SIZE)) } else { (align.max(PAGE_SIZE), pages) };
        let size = pages.checked_mul(PAGE_SIZE).ok_or(EfiError::OutOfResources)?;
        let start = match how {
            AllocateType::Address(addr) => {
                if addr % PAGE_SIZE != 0 {
                    return Err(EfiError::InvalidParameter);
                }
                if addr % align != 0 {
                    // A runtime type at an address off its 64 KiB granule (EDK2: not found).
                    return Err(EfiError::NotFound);
                }
                if addr.checked_add(size).is_none() || !self.covered(addr, addr + size, |r| r.ty == efi::CONVENTIONAL_MEMORY) {
                    return Err(EfiError::NotFound);
                }
                addr
            }
            AllocateType::AnyPages => self.highest_fit(size, align, ANY_PAGES_LIMIT).ok_or(EfiError::OutOfResources)?,
            AllocateType::MaxAddress(max) => {
                let limit = max.saturating_add(1);
                if limit < size {
                    return Err(EfiError::NotFound);
                }
                self.highest_fit(size, align, limit).ok_or(EfiError::NotFound)?
            }
        };
        self.retype(start, pages, ty, true)?;
        Ok(start)
    }

    /// The highest `align`-aligned start of `size` free bytes ending at or below `limit`.
    fn highest_fit(&self, size: u64, align: u64, limit: u64) -> Option<u64> {
        self.regions.iter().rev().filter(|r| r.ty == efi::CONVENTIONAL_MEMORY).find_map(|r| {
            let top = r.end().min(limit);
            let start = top.checked_sub(size)? / align * align;
            (start >= r.start).then_some(start)
        })
    }

    /// FreePages: any page-aligned part of earlier allocations goes back to conventional memory.
    /// Runtime types are freed in whole 64 KiB granules, as they were allocated.
    pub fn free(&mut self, start: u64, pages: u64) -> Result<(), EfiError> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(EfiError::InvalidParameter);
        }
        if pages == 0 {
            return Err(EfiError::InvalidParameter);
        }
        let granule = RUNTIME_GRANULE / PAGE_SIZE;
        let pages = match self.find(start) {
            Some(r) if r.allocated && is_runtime_type(r.ty) => {
                if !start.is_multiple_of(RUNTIME_GRANULE) {
                    return Err(EfiError::InvalidParameter);
                }
                pages.next_multiple_of(granule)
            }
            _ => pages,
        };
        let end = start.checked_add(pages.checked_mul(PAGE_SIZE).ok_or(EfiError::InvalidParameter)?).ok_or(EfiError::InvalidParameter)?;
        if !self.covered(start, end, |r| r.allocated) {
            return Err(EfiError::NotFound);
        }
        self.retype(start, pages, efi::CONVENTIONAL_MEMORY, false)
    }

    /// The map as GetMemoryMap reports it: neighbours of the same type and attributes merged.
    pub fn descriptors(&self) -> Vec<efi::MemoryDescriptor> {
        let mut out: Vec<efi::MemoryDescriptor> = Vec::with_capacity(self.regions.len());
        for r in &self.regions {
            match out.last_mut() {
                Some(d) if d.r#type == r.ty && d.attribute == r.attr && d.physical_start + d.number_of_pages * PAGE_SIZE == r.start && d.virtual_start == 0 && r.virt == 0 => {
                    d.number_of_pages += r.pages
                }
                _ => out.push(efi::MemoryDescriptor { r#type: r.ty, physical_start: r.start, virtual_start: r.virt, number_of_pages: r.pages, attribute: r.attr }),
            }
        }
        out
    }

    /// GetMemoryMap into `buf` at `desc_size` stride: the bytes written, or
    /// [`EfiError::BufferTooSmall`] with the size needed.
    pub fn write_descriptors(&self, buf: Option<&mut [u8]>, desc_size: usize) -> Result<usize, (EfiError, usize)> {
        let descs = self.descriptors();
        let needed = descs.len() * desc_size;
        let Some(buf) = buf.filter(|b| b.len() >= needed) else {
            return Err((EfiError::BufferTooSmall, needed));
        };
        for (d, out) in descs.iter().zip(buf.chunks_exact_mut(desc_size)) {
            out.fill(0);
            out[0..4].copy_from_slice(&d.r#type.to_le_bytes());
            out[8..16].copy_from_slice(&d.physical_start.to_le_bytes());
            out[16..24].copy_from_slice(&d.virtual_start.to_le_bytes());
            out[24..32].copy_from_slice(&d.number_of_pages.to_le_bytes());
            out[32..40].copy_from_slice(&d.attribute.to_le_bytes());
        }
        Ok(needed)
    }
}

#[cfg(test)]
mod tests;
