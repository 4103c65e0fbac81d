//! What the emulator maps, and how: the identity map built from the memory map and the DT.
//!
//! - RAM descriptors: Normal write-back, read-write-execute (the payload's code lives there);
//! - MMIO descriptors, the DT's device nodes, the UART and the TPM: Device-nGnRE, never
//!   executable;
//! - the emulator itself: text read-only+executable, rodata read-only, data and .bss
//!   read-write, never executable (W^X);
//! - runtime descriptors also at their `virt_addr`, where the first kernel moved them with
//!   SetVirtualAddressMap, unless that address is taken already.

use super::page_table::{Attributes, FrameAlloc, MapError, PageTables, VA_LIMIT};
use crate::abi::validate::{is_ram, Validated};
use crate::drivers::fdt::Fdt;
use crate::mem::{desc_extent, Extent, PAGE_SIZE};
use r_efi::efi;

/// Where the running blob's parts are, as offsets from `base` (from the linker script).
#[derive(Clone, Copy, Debug)]
pub struct BlobLayout {
    pub base: u64,
    pub text_end: u64,
    pub rw_start: u64,
    pub file_end: u64,
    pub mem_end: u64,
}

impl BlobLayout {
    pub fn extent(&self) -> Extent {
        Extent::new(self.base, self.mem_end)
    }
}

/// Something the plan skipped, for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanNote {
    /// A runtime descriptor's virtual address is already identity-mapped to something else.
    AliasCollides { index: usize, virt: u64 },
    /// A DT device node overlaps RAM; it is left as RAM.
    DeviceInRam { base: u64 },
}

fn outward(e: Extent) -> Extent {
    let start = e.start & !(PAGE_SIZE - 1);
    let end = (e.end() + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    Extent::new(start, end - start)
}

/// Fills `pt` with the emulator's identity map.
pub fn build<A: FrameAlloc>(pt: &mut PageTables<A>, v: &Validated, fdt: &Fdt, blob: &BlobLayout, note: &mut dyn FnMut(PlanNote)) -> Result<(), MapError> {
    let identity = |pt: &mut PageTables<A>, e: Extent, attrs| {
        let e = outward(e);
        pt.map(e.start, e.start, e.size, attrs)
    };
    for d in v.map.iter() {
        let e = desc_extent(&d);
        if is_ram(d.r#type) {
            identity(pt, e, Attributes::RAM)?;
        } else if matches!(d.r#type, efi::MEMORY_MAPPED_IO | efi::MEMORY_MAPPED_IO_PORT_SPACE) {
            identity(pt, e, Attributes::DEVICE)?;
        }
    }
    // Devices lie outside the span of RAM on most machines: only those inside it are checked
    // against every descriptor.
    let ram_span = v
        .map
        .iter()
        .filter(|d| is_ram(d.r#type))
        .map(|d| desc_extent(&d))
        .fold(None, |span: Option<(u64, u64)>, e| Some(span.map_or((e.start, e.end()), |(lo, hi)| (lo.min(e.start), hi.max(e.end())))));
    let in_ram = |e: &Extent| ram_span.is_some_and(|(lo, hi)| e.start < hi && lo < e.end()) && v.map.iter().any(|d| is_ram(d.r#type) && desc_extent(&d).overlaps(e));
    let root = fdt.root();
    let cells = root.cells();
    for node in root.children().filter(|n| n.is_enabled() && n.property_str("device_type") != Some("memory")) {
        for (base, size) in node.reg(cells) {
            let e = Extent::new(base, size);
            if size == 0 || e.end() > VA_LIMIT {
                continue;
            }
            if in_ram(&e) {
                note(PlanNote::DeviceInRam { base });
                continue;
            }
            identity(pt, e, Attributes::DEVICE)?;
        }
    }
    identity(pt, v.uart, Attributes::DEVICE)?;
    // The TPM may sit on a bus below the root (QEMU's platform bus), which the loop skips.
    if let Some(tpm) = fdt.tpm_tis().map(|(base, size)| Extent::new(base, size)).filter(|e| !in_ram(e) && e.end() <= VA_LIMIT) {
        identity(pt, tpm, Attributes::DEVICE)?;
    }

    let at = |off| blob.base + off;
    pt.map(blob.base, blob.base, blob.text_end, Attributes::CODE)?;
    pt.map(at(blob.text_end), at(blob.text_end), blob.rw_start - blob.text_end, Attributes::RODATA)?;
    pt.map(at(blob.rw_start), at(blob.rw_start), blob.mem_end - blob.rw_start, Attributes::DATA)?;

    for (index, d) in v.map.iter().enumerate() {
        let runtime = d.attribute & efi::MEMORY_RUNTIME != 0;
        if !runtime || d.virtual_start == 0 || d.virtual_start == d.physical_start {
            continue;
        }
        let size = d.number_of_pages * PAGE_SIZE;
        if d.virtual_start % PAGE_SIZE != 0 || d.virtual_start.saturating_add(size) > VA_LIMIT || pt.any_mapped(d.virtual_start, size) {
            note(PlanNote::AliasCollides { index, virt: d.virtual_start });
            continue;
        }
        let attrs = if d.r#type == efi::MEMORY_MAPPED_IO || d.r#type == efi::MEMORY_MAPPED_IO_PORT_SPACE { Attributes::DEVICE } else { Attributes::RAM };
        pt.map(d.virtual_start, d.physical_start & !(PAGE_SIZE - 1), size, attrs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
