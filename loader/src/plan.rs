//! A loader library: lays out a kexec-style boot and builds the parameter block, the way the
//! Linux kexec loader does on its `noefi` path (all RAM `EfiBootServicesData` except the mempool,
//! `desc_size` 40, command line in UTF-16), without the RFC loader's defects: exclusive range
//! ends, a page-multiple mempool, and the initrd in the DTB's `/chosen`.
//!
//! Segment order follows arm64 `kexec_file_load`: the PE file 2 MiB aligned, the initrd, the
//! DTB, the emulator blob, then the parameter segment (struct + map; the stack and the mempool
//! follow it uncopied). They go into the free RAM of a [`MemoryLayout`] (several banks, holes,
//! ranges the running kernel holds), from the bottom or the top ([`Placement`]); ranges that must
//! survive stay `EfiReservedMemoryType` in the map. [`KexecImage::validate_as_emulator`] runs the
//! emulator's own validator over the result, so a loader refuses what the emulator would.

use crate::dtb_edit::Tree;
use core::fmt;
use efi_emulator::abi::*;
use efi_emulator::drivers::fdt::Fdt;
use efi_emulator::mem::Extent;
use r_efi::efi;
use std::borrow::Cow;

/// Bytes the kexec loader allocates for the struct and its memory map.
pub const PARAM_REGION: u64 = 16 * 1024;
/// The same when the emulator is to merge the firmware's memory map into it (see
/// [`efi_emulator::abi::firmware`]): room for about 1,600 descriptors, 64 KiB of stack still below `sp`.
pub const FIRMWARE_PARAM_REGION: u64 = 64 * 1024;
/// Stack between the parameter block and the mempool (`sp` = param + 128 KiB).
pub const STACK_REGION: u64 = 128 * 1024;
/// Stack the emulator keeps however large the map: a region for about 1,600 descriptors.
const MIN_STACK: u64 = 64 * 1024;
/// The mempool is 1 MiB + the kernel's size + this.
pub const MEMPOOL_EXTRA: u64 = 256 << 20;
const MIB2: u64 = 2 << 20;

/// The memory a loader may place a boot in, as the running system describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryLayout {
    /// RAM ranges (`/memory`, or "System RAM" in `/proc/iomem`), in any order, with holes.
    pub ram: Vec<Extent>,
    /// Ranges no segment, stack or mempool may use, but which are the next kernel's RAM after
    /// ExitBootServices: the running kernel's own reservations, QEMU's boot area.
    pub busy: Vec<Extent>,
    /// Ranges that must survive into the next kernel: `EfiReservedMemoryType` in its map (the
    /// DTB's `/memreserve/` entries and `/reserved-memory` nodes, which the EFI stub would
    /// otherwise drop).
    pub reserved: Vec<Extent>,
}

impl MemoryLayout {
    /// RAM from the DTB's `/memory` nodes; reservations from `/memreserve/` and
    /// `/reserved-memory`.
    pub fn from_dtb(dtb: &[u8]) -> Result<Self, LoaderError> {
        let fdt = Fdt::new(dtb).map_err(LoaderError::Dtb)?;
        let ram = fdt.memory().map(|(s, n)| Extent::new(s, n)).filter(|e| e.size > 0).collect();
        Ok(MemoryLayout { ram, busy: Vec::new(), reserved: dtb_reservations(&fdt) })
    }

    /// The same layout with `range` kept free of the boot.
    pub fn with_busy(mut self, range: Extent) -> Self {
        self.busy.push(range);
        self
    }
}

/// What a DTB reserves for good: `/memreserve/` entries and `/reserved-memory` children with a
/// `reg` (dynamically placed ones have none and were placed by the running kernel).
pub fn dtb_reservations(fdt: &Fdt) -> Vec<Extent> {
    let mut out: Vec<Extent> = fdt.reservations().map(|(a, s)| Extent::new(a, s)).collect();
    if let Some(node) = fdt.find("/reserved-memory") {
        let cells = node.cells();
        out.extend(node.children().filter(|c| c.is_enabled()).flat_map(|c| c.reg(cells)).map(|(a, s)| Extent::new(a, s)));
    }
    out.retain(|e| e.size > 0);
    out
}

/// Fresh seeds for the next kernel's `/chosen` (a loader reads them from getrandom).
#[derive(Clone, Debug)]
pub struct RandomSeeds {
    pub kaslr: u64,
    pub rng: Vec<u8>,
}

/// What a loader needs to know to place a boot.
pub struct BootSpec<'a> {
    /// The PE file, raw.
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// An EFI system partition image for the emulator to serve as a disk (see [`Esp`]).
    pub esp: Option<Esp<'a>>,
    /// The machine's device tree; `/chosen` is updated like kexec does.
    pub dtb: &'a [u8],
    /// The emulator blob (its header tells its footprint).
    pub emulator: &'a [u8],
    pub cmdline: &'a str,
    /// Earlycon UART MMIO base and size.
    pub uart: (u64, u64),
    pub earlycon_name: &'a str,
    pub print: bool,
    pub memory: MemoryLayout,
    pub placement: Placement,
    /// Reserve only the kernel file's bytes, as a loader that does not read the PE header
    /// would, not the room the image needs to run (SizeOfImage): the emulator must then copy
    /// it. For measuring that copy; real loaders reserve the running size.
    pub file_size_only: bool,
    /// The running kernel was booted by UEFI firmware and its DTB's `/chosen` still has the
    /// `linux,uefi-*` properties its stub wrote: the block asks the emulator to take `rt_info`
    /// from there (`noefi_boot` 0, `runtime` NULL; see [`efi_emulator::abi::firmware`]).
    pub firmware: bool,
    /// `kaslr-seed` and `rng-seed` for `/chosen`; without them, stale seeds are removed.
    pub seeds: Option<RandomSeeds>,
    /// Extra `/chosen` properties (test hooks).
    pub extra_chosen: Vec<(String, Vec<u8>)>,
    /// A crash kernel (kexec `-p`): `memory.ram` is then the crash region only.
    pub crash: Option<Crash<'a>>,
    /// The running kernel's page size (4, 16 or 64 KiB): `kexec_load` wants every segment's
    /// address and size a multiple of it.
    pub page_size: u64,
}

/// What a crash kernel's boot carries besides the usual: the ELF core header of the crashed
/// kernel's memory, and that memory, which nothing may touch.
#[derive(Clone)]
pub struct Crash<'a> {
    /// Placed in the crash region, named by `/chosen/linux,elfcorehdr`.
    pub elfcorehdr: &'a [u8],
    /// The RAM outside the crash region: `EfiReservedMemoryType` in the emulator's map, so
    /// neither it nor the payload ever allocates there.
    pub preserved: Vec<Extent>,
}

/// The ESP image, and where in it the kernel file lies (`\\EFI\\BOOT\\BOOTAA64.EFI`), so its
/// LoadedImage names it as firmware would.
#[derive(Clone, Copy)]
pub struct Esp<'a> {
    pub image: &'a [u8],
    pub kernel_path: Option<&'a str>,
}

/// `/chosen` properties naming the ESP for the emulator: (start, size) as two big-endian u64,
/// and the kernel's path in it (a NUL-terminated string).
pub const ESP_CHOSEN: &str = "efi-emulator,esp";
pub const ESP_PATH_CHOSEN: &str = "efi-emulator,esp-path";

/// One piece a loader copies: `bytes` at `addr`, zero-filled up to `mem_size` (page multiple).
pub struct Segment<'a> {
    pub name: &'static str,
    pub addr: u64,
    pub bytes: Cow<'a, [u8]>,
    pub mem_size: u64,
}

/// Physical memory made of a plan's segments, as the emulator will find it.
pub struct SegmentMemory<'a>(pub Vec<Segment<'a>>);

impl efi_emulator::abi::validate::PhysMemory for SegmentMemory<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.0.iter().find_map(|s| {
            let off = addr.checked_sub(s.addr)? as usize;
            s.bytes.get(off..off.checked_add(len)?)
        })
    }
}

/// A planned boot: where each segment goes and the parameter block to place.
#[derive(Clone)]
pub struct KexecImage {
    pub kernel: Extent,
    pub initrd: Option<Extent>,
    pub esp: Option<Extent>,
    /// The crash kernel's ELF core header.
    pub elfcorehdr: Option<Extent>,
    pub dtb_addr: u64,
    /// The updated DTB.
    pub dtb: Vec<u8>,
    pub emulator: Extent,
    /// Bytes of the blob to copy (its file size).
    pub emulator_file: u64,
    pub param_addr: u64,
    pub param: EfiEmulatorParam,
    pub map: Vec<efi::MemoryDescriptor>,
    /// The granule of every segment: the running kernel's page size, at least the emulator's.
    pub page: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoaderError {
    /// The running kernel's page size is none arm64 has.
    PageSize(u64),
    /// A crash range the root's `#address-cells`/`#size-cells` cannot express.
    Cells {
        value: u64,
        cells: u64,
    },
    Blob(BlobHeaderError),
    Dtb(efi_emulator::drivers::fdt::FdtError),
    NoMemory,
    DoesNotFit {
        what: &'static str,
        needed: u64,
        largest_free: u64,
    },
    CmdlineTooLong(usize),
    TooManyDescriptors(usize),
    /// The emulator's validator refused the block this plan makes.
    Param(efi_emulator::abi::validate::ParamError),
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "emulator blob: {e}"),
            Self::Dtb(e) => write!(f, "{e}"),
            Self::NoMemory => write!(f, "no RAM to place the boot in (no /memory in the device tree, no System RAM)"),
            Self::DoesNotFit { what, needed, largest_free } => write!(
                f,
                "the {what} needs {} KiB of free RAM in one piece, the largest free range left has {} KiB: too large for this machine's RAM",
                needed.div_ceil(1024),
                largest_free / 1024
            ),
            Self::Cells { value, cells } => write!(f, "{value:#x} does not fit the device tree's {cells} cell(s) (#address-cells/#size-cells of /)"),
            Self::PageSize(n) => write!(f, "a page size of {n} B: arm64 kernels use 4, 16 or 64 KiB pages"),
            Self::CmdlineTooLong(n) => write!(f, "command line is {n} bytes; the kernel takes {MAX_CMDLINE_BYTES}"),
            Self::Param(e) => write!(f, "the emulator would refuse this boot: {e}"),
            Self::TooManyDescriptors(n) => write!(f, "the memory map has {n} descriptors, more than the parameter region holds"),
        }
    }
}

impl core::error::Error for LoaderError {}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn desc(ty: u32, e: Extent) -> efi::MemoryDescriptor {
    efi::MemoryDescriptor { r#type: ty, physical_start: e.start, virtual_start: 0, number_of_pages: e.size / PAGE_SIZE, attribute: efi::MEMORY_WB }
}

/// Sorted, merged ranges, each rounded outward to whole pages.
fn normalize_outward(ranges: &[Extent]) -> Vec<Extent> {
    let mut v: Vec<Extent> = ranges.iter().filter(|e| e.size > 0).map(|e| e.pages_around()).collect();
    v.sort_unstable_by_key(|e| e.start);
    let mut out: Vec<Extent> = Vec::with_capacity(v.len());
    for e in v {
        match out.last_mut() {
            Some(last) if e.start <= last.end() => last.size = last.size.max(e.end() - last.start),
            _ => out.push(e),
        }
    }
    out
}

/// `ranges` without `holes`.
fn subtract(ranges: &[Extent], holes: &[Extent]) -> Vec<Extent> {
    ranges.iter().flat_map(|&r| efi_emulator::mem::split(r, || holes.iter().copied())).collect()
}

/// Where in free RAM a loader puts the boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// From the bottom, in kexec order: kernel, initrd, DTB, blob, parameters (the QEMU harness).
    #[default]
    Lowest,
    /// From the top down. A running kernel hands out free pages from low addresses first, and
    /// `kexec_load` stages each segment page in such pages: a page that is itself some segment's
    /// destination is set aside on a list the kernel walks for every later page, which costs
    /// minutes under TCG when the destinations are the low pages it keeps handing out.
    Highest,
}

/// Placement in the free ranges. Lowest is next-fit: each piece goes after the previous one when
/// it fits there, else at the lowest address; Highest takes the highest address that fits.
struct FreeRanges {
    ranges: Vec<Extent>,
    /// Every piece starts and ends on this granule (the running kernel's page).
    page: u64,
    cursor: u64,
    placement: Placement,
}

impl FreeRanges {
    fn largest(&self) -> u64 {
        self.ranges.iter().map(|r| r.size).max().unwrap_or(0)
    }

    fn take(&mut self, what: &'static str, size: u64, align: u64) -> Result<Extent, LoaderError> {
        let (size, align) = (align_up(size.max(1), self.page), align.max(self.page));
        let lowest = |r: &Extent, from: u64| {
            let start = align_up(r.start.max(from), align);
            start.checked_add(size).is_some_and(|end| end <= r.end()).then_some(start)
        };
        let highest = |r: &Extent| {
            let start = r.end().checked_sub(size)? & !(align - 1);
            (start >= r.start).then_some(start)
        };
        let found = match self.placement {
            Placement::Lowest => self
                .ranges
                .iter()
                .enumerate()
                .find_map(|(i, r)| lowest(r, self.cursor).map(|s| (i, s)))
                .or_else(|| self.ranges.iter().enumerate().find_map(|(i, r)| lowest(r, 0).map(|s| (i, s)))),
            Placement::Highest => self.ranges.iter().enumerate().rev().find_map(|(i, r)| highest(r).map(|s| (i, s))),
        };
        let Some((i, start)) = found else {
            return Err(LoaderError::DoesNotFit { what, needed: size, largest_free: self.largest() });
        };
        let (r, taken) = (self.ranges[i], Extent::new(start, size));
        let mut rest = Vec::new();
        if start > r.start {
            rest.push(Extent::new(r.start, start - r.start));
        }
        if taken.end() < r.end() {
            rest.push(Extent::new(taken.end(), r.end() - taken.end()));
        }
        self.ranges.splice(i..=i, rest);
        self.cursor = taken.end();
        Ok(taken)
    }
}

/// The `/chosen` properties a loader must not pass on: they describe the running kernel's boot
/// (its initrd, its crash-kernel setup), not the next one.
pub const STALE_CHOSEN: [&str; 9] =
    ["linux,initrd-start", "linux,initrd-end", "linux,elfcorehdr", "linux,usable-memory-range", "kaslr-seed", "rng-seed", ESP_CHOSEN, ESP_PATH_CHOSEN, LONG_CMDLINE_CHOSEN];
/// Where the running kernel's EFI stub recorded the firmware: kept for the emulator when it is to
/// pass the firmware on (the next stub rewrites them), dropped otherwise.
pub const UEFI_CHOSEN: [&str; 5] = ["linux,uefi-system-table", "linux,uefi-mmap-start", "linux,uefi-mmap-size", "linux,uefi-mmap-desc-size", "linux,uefi-mmap-desc-ver"];

/// `value` as `cells` big-endian 32-bit cells (1 or 2); a value the cells cannot hold, or a
/// cell count the kernel's early code does not read, is refused, never cut.
fn cell_bytes(value: u64, cells: u64) -> Result<Vec<u8>, LoaderError> {
    match cells {
        1 if value <= u32::MAX as u64 => Ok((value as u32).to_be_bytes().to_vec()),
        2 => Ok(value.to_be_bytes().to_vec()),
        _ => Err(LoaderError::Cells { value, cells }),
    }
}

/// The DTB for the next kernel: `/chosen` with the command line, the initrd and fresh seeds;
/// for a crash kernel, the ELF core header and the usable memory.
fn next_dtb(spec: &BootSpec, initrd: Option<Extent>, esp: Option<Extent>, crash: Option<(Extent, &[Extent])>) -> Result<Vec<u8>, LoaderError> {
    let mut tree = Tree::parse(spec.dtb).map_err(LoaderError::Dtb)?;
    let cells = |name: &str| tree.root.property(name).and_then(efi_emulator::drivers::fdt::be_uint).unwrap_or(2);
    let (address_cells, size_cells) = (cells("#address-cells"), cells("#size-cells"));
    let chosen = tree.chosen_mut();
    for name in STALE_CHOSEN.iter().chain(if spec.firmware { &[][..] } else { &UEFI_CHOSEN[..] }) {
        chosen.remove_property(name);
    }
    let mut bootargs = spec.cmdline.as_bytes().to_vec();
    bootargs.push(0);
    if spec.cmdline.encode_utf16().count() >= CMDLINE_BYTES / 2 {
        chosen.set_property(LONG_CMDLINE_CHOSEN, bootargs.clone());
    }
    chosen.set_property("bootargs", bootargs);
    if let Some(i) = initrd {
        chosen.set_property("linux,initrd-start", i.start.to_be_bytes().to_vec());
        chosen.set_property("linux,initrd-end", i.end().to_be_bytes().to_vec());
    }
    if let Some(e) = esp {
        chosen.set_property(ESP_CHOSEN, [e.start.to_be_bytes(), e.size.to_be_bytes()].concat());
        if let Some(path) = spec.esp.and_then(|e| e.kernel_path) {
            let mut v = path.as_bytes().to_vec();
            v.push(0);
            chosen.set_property(ESP_PATH_CHOSEN, v);
        }
    }
    if let Some(seeds) = &spec.seeds {
        chosen.set_property("kaslr-seed", seeds.kaslr.to_be_bytes().to_vec());
        chosen.set_property("rng-seed", seeds.rng.clone());
    }
    if let Some((header, usable)) = crash {
        // In the root's cells, as the crash kernel's early FDT code reads them.
        let reg = |e: &Extent| Ok::<_, LoaderError>([cell_bytes(e.start, address_cells)?, cell_bytes(e.size, size_cells)?].concat());
        chosen.set_property("linux,elfcorehdr", reg(&header)?);
        chosen.set_property("linux,usable-memory-range", usable.iter().map(reg).collect::<Result<Vec<_>, _>>()?.concat());
    }
    for (k, v) in &spec.extra_chosen {
        chosen.set_property(k, v.clone());
    }
    Ok(tree.to_blob())
}

/// The map the emulator gets: RAM occupied until ExitBootServices, but the mempool; what must
/// survive as `EfiReservedMemoryType`.
fn memory_map(ram: &[Extent], reserved: &[Extent], mempool: Extent) -> Vec<efi::MemoryDescriptor> {
    let pool = [mempool];
    let mut map: Vec<efi::MemoryDescriptor> = subtract(&subtract(ram, reserved), &pool).into_iter().map(|e| desc(efi::BOOT_SERVICES_DATA, e)).collect();
    map.extend(reserved.iter().map(|&e| desc(efi::RESERVED_MEMORY_TYPE, e)));
    map.push(desc(efi::CONVENTIONAL_MEMORY, mempool));
    map.sort_unstable_by_key(|d| d.physical_start);
    map
}

/// Plans a boot like `kexec_file_load` with the emulator, in the free RAM of `spec.memory`.
pub fn plan(spec: &BootSpec) -> Result<KexecImage, LoaderError> {
    let header = BlobHeader::parse(spec.emulator).map_err(LoaderError::Blob)?;
    Fdt::new(spec.dtb).map_err(LoaderError::Dtb)?;
    if ![4 << 10, 16 << 10, 64 << 10].contains(&spec.page_size) {
        return Err(LoaderError::PageSize(spec.page_size));
    }
    let page = spec.page_size;
    // RAM rounded inward to whole pages (exclusive ends: the last page stays), the rest outward.
    let mut ram: Vec<Extent> = spec.memory.ram.iter().map(|r| r.pages_within()).filter(|e| e.size > 0).collect();
    ram.sort_unstable_by_key(|e| e.start);
    if ram.is_empty() {
        return Err(LoaderError::NoMemory);
    }
    let reserved = normalize_outward(&spec.memory.reserved);
    let busy = normalize_outward(&[&spec.memory.busy[..], &reserved[..]].concat());
    let mut free = FreeRanges { ranges: subtract(&ram, &busy), page, cursor: 0, placement: spec.placement };

    // A line longer than the block holds goes in /chosen (LONG_CMDLINE_CHOSEN), the block's empty.
    if spec.cmdline.len() > MAX_CMDLINE_BYTES {
        return Err(LoaderError::CmdlineTooLong(spec.cmdline.len()));
    }
    let mut cmdline: Vec<u16> = spec.cmdline.encode_utf16().collect();
    if cmdline.len() >= CMDLINE_BYTES / 2 {
        cmdline.clear();
    }

    // Like arm64 kexec_file_load, which reserves the Image header's image_size: room for the
    // image as it runs (SizeOfImage, BSS included), so the emulator can run it in place.
    let file_size = spec.kernel.len() as u64;
    let running_size = efi_emulator::efi::pe::PeImage::parse(spec.kernel).map(|pe| pe.size_of_image as u64).unwrap_or(0);
    let reserved_size = if spec.file_size_only { file_size } else { file_size.max(running_size) };
    let kernel = Extent::new(free.take("kernel image", reserved_size, MIB2)?.start, file_size);
    let initrd = match spec.initrd {
        Some(i) => Some(Extent::new(free.take("initrd", i.len() as u64, PAGE_SIZE)?.start, i.len() as u64)),
        None => None,
    };
    let esp = match spec.esp {
        Some(e) => Some(Extent::new(free.take("ESP image", e.image.len() as u64, PAGE_SIZE)?.start, e.image.len() as u64)),
        None => None,
    };
    let elfcorehdr = match &spec.crash {
        Some(c) => Some(Extent::new(free.take("ELF core header", c.elfcorehdr.len() as u64, PAGE_SIZE)?.start, c.elfcorehdr.len() as u64)),
        None => None,
    };
    // The crash kernel's regions, the one it was loaded in first: kernels before 5.18 read only
    // the first entry of linux,usable-memory-range.
    let mut usable = ram.clone();
    usable.sort_by_key(|r| !r.contains(&Extent::new(kernel.start, 1)));
    let dtb = next_dtb(spec, initrd, esp, elfcorehdr.map(|h| (h, &usable[..])))?;
    let dtb_addr = free.take("device tree", dtb.len() as u64, PAGE_SIZE)?.start;
    // On a 64 KiB boundary, so its runtime ranges can be whole 64 KiB granules.
    let emulator = free.take("emulator blob", header.mem_size, efi_emulator::efi::memory::RUNTIME_GRANULE)?;

    // The parameter block, its stack, then the mempool: one piece, as the kexec loader has it.
    let mempool_size = match spec.crash {
        // A crash kernel lives in its region: the mempool, which becomes its conventional
        // memory, is all of the region that is left.
        Some(_) => free.largest().saturating_sub(STACK_REGION) & !(page - 1),
        None => (1 << 20) + align_up(kernel.size, page) + MEMPOOL_EXTRA,
    };
    let param_addr = free.take("parameter block, stack and mempool", STACK_REGION + mempool_size, PAGE_SIZE)?.start;
    let sp = param_addr + STACK_REGION;
    let mempool = Extent::new(sp, mempool_size);

    let preserved = spec.crash.as_ref().map_or(&[][..], |c| &c.preserved[..]);
    let map = memory_map(&ram, &[&reserved[..], &normalize_outward(preserved)[..]].concat(), mempool);
    // A larger map takes a larger region, out of the stack, as long as MIN_STACK is left.
    let needed = ((PARAM_SIZE + map.len() * 40) as u64).next_multiple_of(page);
    let region = if spec.firmware { FIRMWARE_PARAM_REGION } else { PARAM_REGION }.max(needed).next_multiple_of(page);
    if region > STACK_REGION - MIN_STACK {
        return Err(LoaderError::TooManyDescriptors(map.len()));
    }

    let param = EfiEmulatorParam::new(&BlockFields {
        sp,
        load_address: emulator.start,
        cmdline: &cmdline,
        firmware: spec.firmware,
        print: spec.print,
        earlycon_name: spec.earlycon_name,
        uart: spec.uart,
        kernel,
        dtb: dtb_addr,
        mempool,
        map_size: (map.len() * 40) as u64,
        buff_size: region - PARAM_SIZE as u64,
    });
    Ok(KexecImage { kernel, initrd, esp, elfcorehdr, dtb_addr, dtb, emulator, emulator_file: spec.emulator.len() as u64, param_addr, param, map, page })
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
            out.resize(start + 40, 0);
            efi_emulator::mem::write_desc(&mut out[start..], d);
            // The stride may differ from 40 (tests corrupt it): pad or cut to it.
            out.resize(start + stride, 0);
        }
        out
    }

    /// Segments to place, in kexec order. The blob's copy carries the parameter block's address
    /// in its `param_slot`, so it also starts when entered with `x0 = 0` (`kexec_load`).
    pub fn segments<'a>(&'a self, spec: &'a BootSpec) -> Result<Vec<Segment<'a>>, LoaderError> {
        let blob = crate::blob::with_param_slot(spec.emulator, self.param_addr).map_err(LoaderError::Blob)?;
        let mut s = vec![Segment { name: "kernel", addr: self.kernel.start, bytes: Cow::Borrowed(spec.kernel), mem_size: align_up(self.kernel.size, self.page) }];
        if let (Some(e), Some(bytes)) = (self.initrd, spec.initrd) {
            s.push(Segment { name: "initrd", addr: e.start, bytes: Cow::Borrowed(bytes), mem_size: align_up(e.size, self.page) });
        }
        if let (Some(e), Some(esp)) = (self.esp, spec.esp) {
            s.push(Segment { name: "esp", addr: e.start, bytes: Cow::Borrowed(esp.image), mem_size: align_up(e.size, self.page) });
        }
        if let (Some(e), Some(c)) = (self.elfcorehdr, &spec.crash) {
            s.push(Segment { name: "elfcorehdr", addr: e.start, bytes: Cow::Borrowed(c.elfcorehdr), mem_size: align_up(e.size, self.page) });
        }
        s.push(Segment { name: "dtb", addr: self.dtb_addr, bytes: Cow::Borrowed(&self.dtb[..]), mem_size: align_up(self.dtb.len() as u64, self.page) });
        s.push(Segment { name: "emulator", addr: self.emulator.start, bytes: Cow::Owned(blob), mem_size: self.emulator.size });
        // Only the block and its map: the stack and the mempool need no contents, and copying
        // 300 MB of zeros through kexec would cost time at load and at exec.
        s.push(Segment { name: "param", addr: self.param_addr, bytes: Cow::Owned(self.param_bytes()), mem_size: self.param_region() });
        Ok(s)
    }

    /// Runs the emulator's own parameter-block validator over the planned segments, so a loader
    /// refuses what the emulator would refuse before it loads anything. Returns the warnings.
    pub fn validate_as_emulator(&self, spec: &BootSpec) -> Result<Vec<String>, LoaderError> {
        let memory = SegmentMemory(self.segments(spec)?);
        let placement = efi_emulator::abi::validate::BlobPlacement { start: self.emulator.start, mem_size: self.emulator.size };
        let mut warnings = Vec::new();
        // A block for the emulator to complete from the firmware is checked as far as it goes.
        efi_emulator::abi::validate::validate_with(&memory, self.param_addr, placement, &mut |w| warnings.push(format!("{w}")), spec.firmware).map_err(LoaderError::Param)?;
        Ok(warnings)
    }

    /// A one-line summary per segment, for logs.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, e: Extent| {
            out.push_str(&format!("  {name:<9} {:#012x}..{:#012x} {:>11} B\n", e.start, e.end(), e.size));
        };
        line("kernel", self.kernel);
        if let Some(i) = self.initrd {
            line("initrd", i);
        }
        if let Some(e) = self.esp {
            line("esp", e);
        }
        if let Some(e) = self.elfcorehdr {
            line("elfcorehdr", e);
        }
        line("dtb", Extent::new(self.dtb_addr, self.dtb.len() as u64));
        line("emulator", self.emulator);
        line("param", Extent::new(self.param_addr, self.param_region()));
        line("stack", Extent::new(self.param_addr + self.param_region(), STACK_REGION - self.param_region()));
        line("mempool", Extent::new(self.param.mempool_start, self.param.mempool_sz));
        out
    }

    /// Bytes of the parameter segment: the struct and its map buffer.
    pub fn param_region(&self) -> u64 {
        PARAM_SIZE as u64 + self.param.rt_info.memmap.buff_size
    }

    /// The parameter block in words: what the emulator will be told.
    pub fn describe_param(&self) -> String {
        use core::fmt::Write;
        let p = &self.param;
        let cmdline = String::from_utf16_lossy(&p.cmdline[..p.sz_in_byte as usize / 2]);
        let uart = p.earlycon_name.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect::<String>();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  param block at {:#x}: sp {:#x}, load_address {:#x}, noefi_boot {}, print_enabled {}",
            self.param_addr, p.sp, p.load_address, p.noefi_boot, p.print_enabled
        );
        let _ = writeln!(
            out,
            "  earlycon {uart} at {:#x} (+{:#x}), kernel {:#x} ({} B), dtb {:#x}",
            p.earlycon_reg_base, p.earlycon_reg_sz, p.kernel_img_start, p.kernel_img_sz, p.dtb
        );
        let _ = writeln!(out, "  cmdline ({} B UTF-16): {cmdline:?}", p.sz_in_byte);
        let _ = writeln!(out, "  memory map: {} descriptors, desc_size {}", self.map.len(), p.rt_info.memmap.desc_size);
        for d in &self.map {
            let end = d.physical_start + d.number_of_pages * PAGE_SIZE;
            let _ = writeln!(out, "    {:<18} {:#012x}..{:#012x} {:>8} pages", memory_type_name(d.r#type), d.physical_start, end, d.number_of_pages);
        }
        out
    }
}

#[cfg(test)]
mod tests;
