//! Entry with `x0` = a device tree: the `kexec_file_load` door (see [`super::image`]).
//!
//! arm64 `kexec_file_load` places the Image (this emulator) 2 MiB aligned, the "initrd" (the
//! payload: one PE file or a bundle, [`super::bundle`]) and a DTB it builds from the running
//! kernel's own, and enters with `x0` = that DTB. Nobody wrote a parameter block, so the
//! emulator makes its own, as a loader would, from what the DTB says:
//!
//! - RAM: `/memory`; when the running kernel was booted by UEFI firmware (`/chosen/linux,uefi-*`,
//!   and its stub removed `/memory`), the OS memory of the firmware's map, which is still in RAM;
//! - kept out of the boot: the Image's footprint (and room for its signature), the DTB, the
//!   payload, `/memreserve/` and `/reserved-memory`, the ELF core header of a crash boot, the
//!   IMA buffer, the firmware's memory map;
//! - kept for the next kernel: `/memreserve/` entries and `/reserved-memory` nodes as
//!   `EfiReservedMemoryType` (the EFI stub drops `/memreserve/`), but for those the kernel added
//!   for this boot's own segments (the payload, the ELF core header, the IMA buffer); the IMA
//!   buffer (`linux,ima-kexec-buffer`) as `EfiACPIReclaimMemory`, which arm64 Linux maps and keeps
//!   reserved "for kexec", so the next kernel finds the measurement list;
//! - a crash boot (`linux,elfcorehdr`): only `linux,usable-memory-range` is used; the rest of RAM
//!   is `EfiReservedMemoryType`;
//! - the parameter block (64 KiB with its map), 64 KiB of stack, then the mempool, at the top of
//!   the largest free range: 1 MiB + twice the payload + 256 MiB, or the whole range when it is
//!   smaller (a crash boot takes the whole range);
//! - the command line: the bundle's `cmdline`, else `/chosen/bootargs` (`kexec -s --append`);
//!   empty lets a UKI use its own `.cmdline`;
//! - the console: the PL011 `/chosen/stdout-path` names, else the one the firmware's ACPI SPCR
//!   names (a machine booted by UEFI on ACPI, whose DTB holds only `/chosen`).
//!
//! Everything here allocates nothing: it runs before the emulator has a heap.

use super::bundle::{self, BundleError, Payload};
use super::crash::{self, CrashBoot, CrashError};
use super::firmware::{self, StubFacts};
use super::validate::{is_os_ram, ParamError, PhysMemory};
use super::*;
use crate::drivers::fdt::{be_uint, Fdt, FdtError};
use crate::mem::{desc_extent, split, Descriptors, Extent};
use core::fmt;
use r_efi::efi;

/// The parameter block and its memory map (room for about 1,600 descriptors).
pub const PARAM_REGION: u64 = 64 * 1024;
/// From the block to `sp`: the map's region, then 64 KiB of stack.
pub const STACK_REGION: u64 = 128 * 1024;
/// The mempool beyond the payload's own size (twice: a copy of the image, and what it loads).
pub const MEMPOOL_EXTRA: u64 = 257 << 20;
/// `/chosen/linux,ima-kexec-buffer`: the IMA measurement list the running kernel passes on.
pub const IMA_BUFFER: &str = "linux,ima-kexec-buffer";

/// Why the DTB cannot start a boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtbEntryError {
    Dtb(FdtError),
    NoPayload,
    Payload(BundleError),
    Crash(CrashError),
    Firmware(ParamError),
    NoMemory,
    NoConsole,
    /// No free range holds the block, its stack and the smallest mempool.
    NoRoom {
        largest: u64,
    },
    TooManyDescriptors(usize),
    CmdlineTooLong(usize),
}

impl fmt::Display for DtbEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dtb(e) => write!(f, "entered with a device tree: {e}"),
            Self::NoPayload => {
                write!(f, "entered with a device tree without /chosen/linux,initrd-start and -end: nothing to boot (kexec -s: give the PE file or bundle as --initrd)")
            }
            Self::Payload(e) => write!(f, "the payload (/chosen/linux,initrd-*): {e}"),
            Self::Crash(e) => write!(f, "{e}"),
            Self::Firmware(e) => write!(f, "the firmware the running kernel was booted by: {e}"),
            Self::NoMemory => write!(f, "the device tree describes no RAM (no /memory and no /chosen/linux,uefi-mmap-*)"),
            Self::NoConsole => write!(f, "no console: /chosen/stdout-path names no PL011, and no firmware's ACPI SPCR names one"),
            Self::NoRoom { largest } => {
                write!(f, "no free RAM for the parameter block, its stack and a mempool of at least 1 MiB: the largest free range has {} KiB", largest / 1024)
            }
            Self::TooManyDescriptors(n) => write!(f, "the memory map would have {n} descriptors, more than the parameter block's 64 KiB hold"),
            Self::CmdlineTooLong(n) => write!(f, "command line is {n} bytes; the kernel takes {MAX_CMDLINE_BYTES}"),
        }
    }
}

/// What the DTB and the payload say, and where the block, its stack and the mempool go.
#[derive(Clone, Debug)]
pub struct Plan {
    pub param_addr: u64,
    pub mempool: Extent,
    /// The payload (`/chosen/linux,initrd-*`) and what it holds.
    pub payload: Extent,
    pub contents: Payload,
    pub crash: Option<CrashBoot>,
    pub firmware: Option<StubFacts>,
    pub ima: Option<Extent>,
    pub uart: (u64, u64),
    /// RAM came from the firmware's map (no `/memory`).
    pub ram_from_firmware: bool,
}

impl Plan {
    /// The PE file to start.
    pub fn kernel(&self) -> Extent {
        self.member(&self.contents.kernel)
    }
    /// The bundle's initrd.
    pub fn initrd(&self) -> Option<Extent> {
        self.contents.initrd.as_ref().map(|r| self.member(r))
    }
    /// The bundle's ESP image.
    pub fn esp(&self) -> Option<Extent> {
        self.contents.esp.as_ref().map(|r| self.member(r))
    }
    fn member(&self, r: &core::ops::Range<usize>) -> Extent {
        Extent::new(self.payload.start + r.start as u64, (r.end - r.start) as u64)
    }
    pub fn sp(&self) -> u64 {
        self.param_addr + STACK_REGION
    }
}

fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

fn page_up(v: u64) -> u64 {
    v.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// `/memreserve/` entries and `/reserved-memory` children with a `reg` (dynamically placed
/// ones have none and were placed by the running kernel).
pub fn reservations<'a>(fdt: &Fdt<'a>) -> impl Iterator<Item = Extent> + 'a {
    let node = fdt.find("/reserved-memory");
    let cells = node.map(|n| n.cells());
    let nodes = node.into_iter().flat_map(|n| n.children()).filter(|c| c.is_enabled()).flat_map(move |c| c.reg(cells.unwrap()));
    fdt.reservations().chain(nodes).map(|(a, s)| Extent::new(a, s)).filter(|e| e.size > 0)
}

/// `/chosen/linux,ima-kexec-buffer`, in the root's cells.
pub fn ima_buffer(fdt: &Fdt) -> Option<Extent> {
    let v = fdt.find("/chosen")?.property(IMA_BUFFER)?;
    let cells = fdt.root().cells();
    let split = 4 * cells.address;
    let (a, s) = (be_uint(v.get(..split)?)?, be_uint(v.get(split..split + 4 * cells.size)?)?);
    (s > 0).then_some(Extent::new(a, s))
}

/// The inputs: the DTB the kernel built, where it and the emulator's Image lie, and the memory.
pub struct Inputs<'a> {
    pub fdt: Fdt<'a>,
    pub dtb: Extent,
    /// What the kernel reserved for the Image: its `image_size` from the load address.
    pub footprint: Extent,
    /// Where the blob runs (inside the footprint, after the Image's headers).
    pub blob_start: u64,
    pub mem: &'a dyn PhysMemory,
}

impl<'a> Inputs<'a> {
    /// The RAM ranges the boot may use, whole pages: `/memory` (or the firmware map's OS RAM),
    /// or for a crash boot the usable ranges.
    fn ram<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = Extent> + 'p {
        let usable = plan.crash.as_ref().map_or(&[][..], |c| c.usable());
        let all = self.all_ram(plan).filter(move |_| plan.crash.is_none());
        all.chain(usable.iter().copied()).map(|e| e.pages_within()).filter(|e| e.size > 0)
    }

    /// All of RAM, crash or not.
    fn all_ram<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = Extent> + 'p {
        let firmware = plan.firmware.filter(|_| plan.ram_from_firmware).and_then(|f| self.firmware_map(&f));
        let fw = firmware.into_iter().flat_map(|d| (0..d.len()).map(move |i| d.get(i))).filter(|d| is_os_ram(d.r#type)).map(|d| desc_extent(&d));
        let dt = self.fdt.memory().map(|(s, n)| Extent::new(s, n)).filter(|_| !plan.ram_from_firmware);
        dt.chain(fw)
    }

    fn firmware_map(&self, f: &StubFacts) -> Option<Descriptors<'a>> {
        Some(Descriptors::new(self.mem.bytes(f.mmap.start, f.mmap.size as usize)?, f.desc_size as usize))
    }

    /// Ranges nothing of the boot may overlap, whole pages.
    fn busy<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = Extent> + 'p {
        let fixed = [Some(self.footprint), Some(self.dtb), Some(plan.payload), plan.crash.as_ref().map(|c| c.elfcorehdr), plan.ima, plan.firmware.map(|f| f.mmap)];
        fixed.into_iter().flatten().chain(reservations(&self.fdt)).map(|e| e.pages_around())
    }

    /// Reservations the next kernel keeps: all but those the running kernel made for this
    /// boot's own segments.
    fn kept_reservations<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = Extent> + 'p {
        let own = [Some(plan.payload), plan.crash.as_ref().map(|c| c.elfcorehdr), plan.ima];
        reservations(&self.fdt).filter(move |r| !own.iter().flatten().any(|o| o == r)).map(|e| e.pages_around())
    }
}

/// Reads the DTB and the payload and plans the boot.
pub fn plan(inputs: &Inputs) -> Result<Plan, DtbEntryError> {
    let fdt = &inputs.fdt;
    let (start, end) = fdt.initrd().ok_or(DtbEntryError::NoPayload)?;
    let payload = Extent::new(start, end - start);
    let bytes = inputs.mem.bytes(payload.start, payload.size as usize).ok_or(DtbEntryError::NoPayload)?;
    let contents = bundle::open(bytes).map_err(DtbEntryError::Payload)?;
    let crash = crash::from_fdt(fdt).map_err(DtbEntryError::Crash)?;
    let firmware = match firmware::stub_facts(fdt) {
        Some(f) => Some(f.map_err(DtbEntryError::Firmware)?),
        None => None,
    };
    let ram_from_firmware = fdt.memory().next().is_none() && firmware.is_some();
    // The device tree's console, else (an ACPI machine) the one the firmware's SPCR names.
    let spcr = || {
        let f = firmware.as_ref()?;
        firmware::spcr_uart(f, &inputs.firmware_map(f)?, inputs.mem).map(|base| (base, 0x1000))
    };
    let uart = pl011_console(fdt).or_else(spcr).ok_or(DtbEntryError::NoConsole)?;
    let mut plan = Plan { param_addr: 0, mempool: Extent::default(), payload, contents, crash, firmware, ima: ima_buffer(fdt), uart, ram_from_firmware };
    if let Some(f) = &plan.firmware {
        if plan.ram_from_firmware && inputs.firmware_map(f).is_none() {
            return Err(DtbEntryError::Firmware(ParamError { field: "linux,uefi-mmap-start", index: None, value: f.mmap.start, expected: "the firmware's memory map, in RAM" }));
        }
    }
    if inputs.ram(&plan).next().is_none() {
        return Err(DtbEntryError::NoMemory);
    }

    // The largest free range; the block, its stack and the mempool at its top.
    let largest = inputs.ram(&plan).flat_map(|bank| split(bank, || inputs.busy(&plan))).map(|e| e.pages_within()).max_by_key(|e| e.size).unwrap_or_default();
    let wanted = match plan.crash {
        Some(_) => u64::MAX,
        None => page_up(2 * plan.kernel().size + plan.initrd().map_or(0, |i| i.size)) + MEMPOOL_EXTRA,
    };
    let mempool_size = page_down(wanted.min(largest.size.saturating_sub(STACK_REGION)));
    if mempool_size < MIN_MEMPOOL_SIZE {
        return Err(DtbEntryError::NoRoom { largest: largest.size });
    }
    plan.param_addr = largest.end() - mempool_size - STACK_REGION;
    plan.mempool = Extent::new(plan.param_addr + STACK_REGION, mempool_size);
    Ok(plan)
}

/// The UART `/chosen/stdout-path` names, when it is a PL011 or SBSA UART: the one console the
/// emulator drives (its registers written to another UART could hang the boot).
pub fn pl011_console(fdt: &Fdt) -> Option<(u64, u64)> {
    fdt.stdout_uart().ok()
}

/// The next kernel's command line: the bundle's, else `/chosen/bootargs` (`kexec -s --append`).
/// One longer than the parameter block holds (511 UTF-16 units) goes to LoadOptions from here.
pub fn command_line<'a>(inputs: &Inputs<'a>, plan: &Plan, payload: &'a [u8]) -> &'a str {
    bundle::cmdline(payload, &plan.contents).or_else(|| inputs.fdt.find("/chosen").and_then(|c| c.property_str("bootargs"))).unwrap_or("")
}

/// Writes the parameter block and its memory map for `plan`; returns the descriptor count.
/// `map` is the room after the block (at least [`PARAM_REGION`] minus the block).
pub fn write(inputs: &Inputs, plan: &Plan, payload: &[u8], p: &mut EfiEmulatorParam, map: &mut [efi::MemoryDescriptor]) -> Result<usize, DtbEntryError> {
    let desc = |ty: u32, e: Extent| efi::MemoryDescriptor { r#type: ty, physical_start: e.start, virtual_start: 0, number_of_pages: e.size / PAGE_SIZE, attribute: efi::MEMORY_WB };
    let mut n = 0;
    let mut push = |map: &mut [efi::MemoryDescriptor], d: efi::MemoryDescriptor| {
        if d.number_of_pages == 0 {
            return Ok(());
        }
        *map.get_mut(n).ok_or(DtbEntryError::TooManyDescriptors(n + 1))? = d;
        n += 1;
        Ok(())
    };

    // What survives into the next kernel: reservations, the IMA buffer, a crashed kernel's RAM.
    for r in inputs.kept_reservations(plan) {
        push(map, desc(efi::RESERVED_MEMORY_TYPE, r))?;
    }
    if let Some(ima) = plan.ima {
        push(map, desc(efi::ACPI_RECLAIM_MEMORY, ima.pages_around()))?;
    }
    if let Some(c) = &plan.crash {
        for bank in inputs.all_ram(plan).map(|e| e.pages_within()) {
            for piece in split(bank, || c.usable().iter().copied().map(|e| e.pages_within())) {
                push(map, desc(efi::RESERVED_MEMORY_TYPE, piece))?;
            }
        }
    }
    let kept = merge(&mut map[..n]);

    // The rest of RAM is occupied until ExitBootServices, but the mempool.
    let (fixed, rest) = map.split_at_mut(kept);
    let mut m = 0;
    for bank in inputs.ram(plan) {
        for piece in split(bank, || fixed.iter().map(desc_extent).chain(core::iter::once(plan.mempool))) {
            *rest.get_mut(m).ok_or(DtbEntryError::TooManyDescriptors(kept + m + 1))? = desc(efi::BOOT_SERVICES_DATA, piece);
            m += 1;
        }
    }
    *rest.get_mut(m).ok_or(DtbEntryError::TooManyDescriptors(kept + m + 1))? = desc(efi::CONVENTIONAL_MEMORY, plan.mempool);
    let n = kept + m + 1;
    crate::mem::sort_by_key(&mut map[..n], |d| d.physical_start);

    // The command line: in the block when it fits, else the boot flow keeps it (see
    // `command_line`) and the block's is empty.
    let text = command_line(inputs, plan, payload);
    if text.len() > MAX_CMDLINE_BYTES {
        return Err(DtbEntryError::CmdlineTooLong(text.len()));
    }
    let mut units = [0u16; CMDLINE_BYTES / 2];
    let mut len = 0;
    if text.encode_utf16().count() < units.len() {
        for u in text.encode_utf16() {
            units[len] = u;
            len += 1;
        }
    }
    *p = EfiEmulatorParam::new(&BlockFields {
        sp: plan.sp(),
        load_address: inputs.blob_start,
        cmdline: &units[..len],
        firmware: plan.firmware.is_some(),
        print: true,
        earlycon_name: "amba-pl011",
        uart: plan.uart,
        kernel: plan.kernel(),
        dtb: inputs.dtb.start,
        mempool: plan.mempool,
        map_size: (n * 40) as u64,
        buff_size: PARAM_REGION - PARAM_SIZE as u64,
    });
    Ok(n)
}

/// Sorts `map` and merges overlapping or touching descriptors of one type; where types differ
/// and overlap, the one that starts first keeps the overlap (nothing is left uncovered).
/// Returns how many are left at the front.
fn merge(map: &mut [efi::MemoryDescriptor]) -> usize {
    crate::mem::sort_by_key(map, |d| d.physical_start);
    let mut out = 0;
    for i in 0..map.len() {
        let mut d = map[i];
        if out > 0 {
            let last = &mut map[out - 1];
            let (last_end, end) = (desc_extent(last).end(), desc_extent(&d).end());
            if d.physical_start <= last_end && d.r#type == last.r#type {
                last.number_of_pages = (last_end.max(end) - last.physical_start) / PAGE_SIZE;
                continue;
            }
            if d.physical_start < last_end {
                if end <= last_end {
                    continue;
                }
                d.physical_start = last_end;
                d.number_of_pages = (end - last_end) / PAGE_SIZE;
            }
        }
        map[out] = d;
        out += 1;
    }
    out
}

#[cfg(test)]
mod tests;
