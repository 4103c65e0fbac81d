//! A loader library: lays out a kexec-style boot and builds the parameter block, the way the
//! Linux kexec loader does on its `noefi` path (all RAM `EfiBootServicesData` except the mempool,
//! `desc_size` 40, command line in UTF-16), without the RFC loader's defects: exclusive range
//! ends, a page-multiple mempool, and the initrd in the DTB's `/chosen`.
//!
//! Segment order follows arm64 `kexec_file_load`: the PE file 2 MiB aligned, the initrd, the
//! DTB, the emulator blob, then the parameter segment (struct + map, stack, mempool).

use super::validate::Extent;
use super::*;
use crate::drivers::fdt::edit::Tree;
use crate::drivers::fdt::Fdt;
use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use r_efi::efi;

/// Bytes the kexec loader allocates for the struct and its memory map.
pub const PARAM_REGION: u64 = 16 * 1024;
/// Stack between the parameter block and the mempool (`sp` = param + 128 KiB).
pub const STACK_REGION: u64 = 128 * 1024;
/// The mempool is 1 MiB + the kernel's size + this.
pub const MEMPOOL_EXTRA: u64 = 256 << 20;
const MIB2: u64 = 2 << 20;

/// What a loader needs to know to place a boot.
pub struct BootSpec<'a> {
    /// The PE file, raw.
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// The machine's device tree; `/chosen` is updated like kexec does.
    pub dtb: &'a [u8],
    /// The emulator blob (its header tells its footprint).
    pub emulator: &'a [u8],
    pub cmdline: &'a str,
    /// Earlycon UART MMIO base and size.
    pub uart: (u64, u64),
    pub earlycon_name: &'a str,
    pub print: bool,
    /// RAM bytes to leave alone at the start of the first RAM range (QEMU keeps its DTB there).
    pub skip_low: u64,
    /// Extra `/chosen` properties (test hooks).
    pub extra_chosen: Vec<(String, Vec<u8>)>,
}

/// A planned boot: where each segment goes and the parameter block to place.
#[derive(Clone)]
pub struct KexecImage {
    pub kernel: Extent,
    pub initrd: Option<Extent>,
    pub dtb_addr: u64,
    /// The updated DTB.
    pub dtb: Vec<u8>,
    pub emulator: Extent,
    /// Bytes of the blob to copy (its file size).
    pub emulator_file: u64,
    pub param_addr: u64,
    pub param: EfiEmulatorParam,
    pub map: Vec<efi::MemoryDescriptor>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoaderError {
    Blob(BlobHeaderError),
    Dtb(crate::drivers::fdt::FdtError),
    NoMemory,
    DoesNotFit { needed: u64, ram: Extent },
    CmdlineTooLong(usize),
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "emulator blob: {e}"),
            Self::Dtb(e) => write!(f, "{e}"),
            Self::NoMemory => write!(f, "the device tree has no /memory"),
            Self::DoesNotFit { needed, ram } => {
                write!(f, "the boot needs {} MiB from the start of RAM {:#x}..{:#x}: give the machine more memory", needed >> 20, ram.start, ram.end())
            }
            Self::CmdlineTooLong(n) => write!(f, "command line is {n} UTF-16 units; the parameter block holds 511"),
        }
    }
}

impl core::error::Error for LoaderError {}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn desc(ty: u32, start: u64, end: u64) -> efi::MemoryDescriptor {
    efi::MemoryDescriptor { r#type: ty, physical_start: start, virtual_start: 0, number_of_pages: (end - start) / PAGE_SIZE, attribute: efi::MEMORY_WB }
}

/// Plans a boot like `kexec_file_load` with the emulator.
pub fn plan(spec: &BootSpec) -> Result<KexecImage, LoaderError> {
    let header = BlobHeader::parse(spec.emulator).map_err(LoaderError::Blob)?;
    let fdt = Fdt::new(spec.dtb).map_err(LoaderError::Dtb)?;
    let mut ram: Vec<Extent> = fdt.memory().map(|(s, n)| Extent::new(s, n)).filter(|e| e.size > 0).collect();
    ram.sort_by_key(|e| e.start);
    let first = *ram.first().ok_or(LoaderError::NoMemory)?;

    let cmdline: Vec<u16> = spec.cmdline.encode_utf16().collect();
    if cmdline.len() >= CMDLINE_BYTES / 2 {
        return Err(LoaderError::CmdlineTooLong(cmdline.len()));
    }

    let kernel = Extent::new(align_up(first.start + spec.skip_low, MIB2), spec.kernel.len() as u64);
    // Like arm64 kexec_file_load, which reserves the Image header's image_size: room for the
    // image as it runs (SizeOfImage, BSS included), so the emulator can run it in place.
    let running_size = crate::efi::pe::PeImage::parse(spec.kernel).map(|pe| pe.size_of_image as u64).unwrap_or(0);
    let mut cursor = align_up(kernel.start + kernel.size.max(running_size), PAGE_SIZE);
    let initrd = spec.initrd.map(|i| {
        let e = Extent::new(cursor, i.len() as u64);
        cursor = align_up(e.end(), PAGE_SIZE);
        e
    });

    let mut tree = Tree::parse(spec.dtb).map_err(LoaderError::Dtb)?;
    let chosen = tree.chosen_mut();
    let mut bootargs = spec.cmdline.as_bytes().to_vec();
    bootargs.push(0);
    chosen.set_property("bootargs", bootargs);
    chosen.remove_property("linux,initrd-start");
    chosen.remove_property("linux,initrd-end");
    if let Some(i) = initrd {
        chosen.set_property("linux,initrd-start", i.start.to_be_bytes().to_vec());
        chosen.set_property("linux,initrd-end", i.end().to_be_bytes().to_vec());
    }
    for (k, v) in &spec.extra_chosen {
        chosen.set_property(k, v.clone());
    }
    let dtb = tree.to_blob();
    let dtb_addr = cursor;
    cursor = align_up(dtb_addr + dtb.len() as u64, PAGE_SIZE);

    let emulator = Extent::new(cursor, header.mem_size);
    cursor = align_up(emulator.end(), PAGE_SIZE);

    let param_addr = cursor;
    let sp = param_addr + STACK_REGION;
    let mempool = Extent::new(sp, (1 << 20) + align_up(kernel.size, PAGE_SIZE) + MEMPOOL_EXTRA);
    if mempool.end() > first.end() {
        return Err(LoaderError::DoesNotFit { needed: mempool.end() - first.start, ram: first });
    }

    // The noefi memory map: every RAM range occupied until ExitBootServices, but the mempool.
    let mut map = Vec::new();
    for r in &ram {
        let (start, end) = (align_up(r.start, PAGE_SIZE), r.end() & !(PAGE_SIZE - 1));
        if r.contains(&mempool) {
            if mempool.start > start {
                map.push(desc(efi::BOOT_SERVICES_DATA, start, mempool.start));
            }
            map.push(desc(efi::CONVENTIONAL_MEMORY, mempool.start, mempool.end()));
            if end > mempool.end() {
                map.push(desc(efi::BOOT_SERVICES_DATA, mempool.end(), end));
            }
        } else if end > start {
            map.push(desc(efi::BOOT_SERVICES_DATA, start, end));
        }
    }

    let mut units = [0u16; CMDLINE_BYTES / 2];
    units[..cmdline.len()].copy_from_slice(&cmdline);
    let mut name = [0u8; 16];
    let n = spec.earlycon_name.len().min(15);
    name[..n].copy_from_slice(&spec.earlycon_name.as_bytes()[..n]);
    let map_size = (map.len() * 40) as u64;
    let param = EfiEmulatorParam {
        sp,
        load_address: emulator.start,
        sz_in_byte: (cmdline.len() * 2) as u32,
        cmdline: units,
        noefi_boot: 1,
        print_enabled: spec.print as u8,
        earlycon_name: name,
        _pad0: [0; 2],
        earlycon_reg_base: spec.uart.0,
        earlycon_reg_sz: spec.uart.1,
        mmu_on: 0,
        _pad1: [0; 7],
        pgd_root: 0,
        kernel_img_start: kernel.start,
        kernel_img_sz: kernel.size,
        dtb: dtb_addr,
        mempool_start: mempool.start,
        mempool_sz: mempool.size,
        rt_info: EfiRtInfo {
            runtime: 0,
            runtime_version: 0,
            runtime_supported_mask: 0,
            systab_nr_tables: 0,
            _pad: 0,
            systab_tables: [ConfigTableEntry { guid: efi::Guid::from_bytes(&[0; 16]), table: 0 }; MAX_SYSTAB_TABLES],
            memmap: MemMapHeader { map_size, desc_size: 40, desc_ver: 1, _pad: 0, map_key: 0, buff_size: PARAM_REGION - PARAM_SIZE as u64 },
        },
    };
    Ok(KexecImage { kernel, initrd, dtb_addr, dtb, emulator, emulator_file: spec.emulator.len() as u64, param_addr, param, map })
}

impl KexecImage {
    /// The parameter segment's bytes: the struct, then the descriptors at `desc_size` stride.
    pub fn param_bytes(&self) -> Vec<u8> {
        let stride = self.param.rt_info.memmap.desc_size as usize;
        let mut out = Vec::with_capacity(PARAM_SIZE + self.map.len() * stride);
        // SAFETY: EfiEmulatorParam is plain old data of PARAM_SIZE bytes; its padding fields are
        // named and initialized, so every byte is defined.
        let raw = unsafe { core::slice::from_raw_parts(&self.param as *const _ as *const u8, PARAM_SIZE) };
        out.extend_from_slice(raw);
        for d in &self.map {
            let start = out.len();
            out.extend_from_slice(&d.r#type.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&d.physical_start.to_le_bytes());
            out.extend_from_slice(&d.virtual_start.to_le_bytes());
            out.extend_from_slice(&d.number_of_pages.to_le_bytes());
            out.extend_from_slice(&d.attribute.to_le_bytes());
            out.resize(start + stride, 0);
        }
        out
    }

    /// Segments to place: (address, bytes, name), in kexec order.
    pub fn segments<'a>(&'a self, spec: &'a BootSpec) -> Vec<(u64, Cow<'a, [u8]>, &'static str)> {
        let mut s = Vec::new();
        s.push((self.kernel.start, Cow::Borrowed(spec.kernel), "kernel"));
        if let (Some(e), Some(bytes)) = (self.initrd, spec.initrd) {
            s.push((e.start, Cow::Borrowed(bytes), "initrd"));
        }
        s.push((self.dtb_addr, Cow::Borrowed(&self.dtb[..]), "dtb"));
        s.push((self.emulator.start, Cow::Borrowed(spec.emulator), "emulator"));
        s.push((self.param_addr, Cow::Owned(self.param_bytes()), "param"));
        s
    }

    /// A one-line summary per segment, for logs.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, e: Extent| {
            out.push_str(&alloc::format!("  {name:<9} {:#012x}..{:#012x} {:>11} B\n", e.start, e.end(), e.size));
        };
        line("kernel", self.kernel);
        if let Some(i) = self.initrd {
            line("initrd", i);
        }
        line("dtb", Extent::new(self.dtb_addr, self.dtb.len() as u64));
        line("emulator", self.emulator);
        line("param", Extent::new(self.param_addr, PARAM_REGION));
        line("stack", Extent::new(self.param_addr + PARAM_REGION, STACK_REGION - PARAM_REGION));
        line("mempool", Extent::new(self.param.mempool_start, self.param.mempool_sz));
        out
    }
}

#[cfg(test)]
mod tests;
