//! A crash kernel's boot (kexec `-p`). The signal is `/chosen/linux,elfcorehdr` in the DTB the
//! loader passes: every arm64 crash-kernel loader sets it (kexec-tools, `kexec_file_load`,
//! `efi-kexec -p`), so no new ABI field is needed, and `/chosen/linux,usable-memory-range` is
//! the memory the boot may use.
//!
//! It runs before the emulator has a heap: nothing here allocates.
//!
//! Everything the emulator and its payload touch must lie there: the segments, the stack and
//! the mempool (hence the page tables, the heap and every allocation it serves). The crashed
//! kernel's RAM around it is the evidence: never conventional memory in the map, never mapped,
//! but for a sample of pages mapped read-only whose CRCs are taken at entry and compared at
//! ExitBootServices.

use super::validate::Validated;
use crate::drivers::fdt::{be_uint, Fdt};
use crate::mem::{Extent, PAGE_SIZE};
use core::fmt;

/// Pages of the crashed kernel's RAM whose CRCs prove it untouched.
pub const SAMPLE_PAGES: usize = 64;

/// Most `linux,usable-memory-range` entries (kexec-tools writes one or two: low and high).
pub const MAX_USABLE: usize = 8;

/// What `/chosen` says of a crash boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashBoot {
    pub elfcorehdr: Extent,
    usable: [Extent; MAX_USABLE],
    usable_len: usize,
}

/// The sampled pages (see [`CrashBoot::sample_pages`]).
pub struct Samples {
    pages: [u64; SAMPLE_PAGES],
    len: usize,
}

impl Samples {
    pub fn pages(&self) -> &[u64] {
        &self.pages[..self.len]
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrashError {
    /// A `/chosen` property of the wrong length.
    Property { name: &'static str, len: usize },
    /// `linux,elfcorehdr` without `linux,usable-memory-range`: nothing says what may be used.
    NoUsableRange,
    /// Something the boot uses lies outside the usable memory.
    Outside { what: &'static str, extent: Extent },
    /// The map offers memory outside the usable ranges.
    MapOutside { ty: u32, extent: Extent },
}

impl fmt::Display for CrashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Property { name, len } => write!(f, "crash kernel: /chosen/{name} has {len} bytes, not a whole number of (address, size) pairs"),
            Self::NoUsableRange => write!(f, "crash kernel: /chosen/linux,elfcorehdr without linux,usable-memory-range: the usable memory is not known"),
            Self::Outside { what, extent } => write!(
                f,
                "crash kernel: the {what} {:#x}..{:#x} lies outside linux,usable-memory-range: the crashed kernel's memory would be overwritten",
                extent.start,
                extent.end()
            ),
            Self::MapOutside { ty, extent } => write!(
                f,
                "crash kernel: memory map descriptor {:#x}..{:#x} of type {ty} lies outside linux,usable-memory-range: it must be EfiReservedMemoryType",
                extent.start,
                extent.end()
            ),
        }
    }
}

/// The (address, size) pairs of a `/chosen` property, in the root's cells, into `out`; returns
/// how many.
fn pairs(value: &[u8], address_cells: usize, size_cells: usize, name: &'static str, out: &mut [Extent]) -> Result<usize, CrashError> {
    let stride = 4 * (address_cells + size_cells);
    if value.is_empty() || stride == 0 || !value.len().is_multiple_of(stride) || value.len() / stride > out.len() {
        return Err(CrashError::Property { name, len: value.len() });
    }
    for (o, c) in out.iter_mut().zip(value.chunks_exact(stride)) {
        *o = Extent::new(be_uint(&c[..4 * address_cells]).unwrap_or(0), be_uint(&c[4 * address_cells..]).unwrap_or(0));
    }
    Ok(value.len() / stride)
}

/// The crash boot `/chosen` describes, or `None` for an ordinary boot.
pub fn from_fdt(fdt: &Fdt) -> Result<Option<CrashBoot>, CrashError> {
    let Some(chosen) = fdt.find("/chosen") else { return Ok(None) };
    let Some(header) = chosen.property("linux,elfcorehdr") else { return Ok(None) };
    let cells = fdt.root().cells();
    let (a, s) = (cells.address, cells.size);
    let mut one = [Extent::new(0, 0)];
    pairs(header, a, s, "linux,elfcorehdr", &mut one)?;
    let mut usable = [Extent::new(0, 0); MAX_USABLE];
    let usable_len = pairs(chosen.property("linux,usable-memory-range").ok_or(CrashError::NoUsableRange)?, a, s, "linux,usable-memory-range", &mut usable)?;
    Ok(Some(CrashBoot { elfcorehdr: one[0], usable, usable_len }))
}

impl CrashBoot {
    pub fn new(elfcorehdr: Extent, usable: &[Extent]) -> Self {
        let mut c = CrashBoot { elfcorehdr, usable: [Extent::new(0, 0); MAX_USABLE], usable_len: usable.len().min(MAX_USABLE) };
        c.usable[..c.usable_len].copy_from_slice(&usable[..c.usable_len]);
        c
    }

    pub fn usable(&self) -> &[Extent] {
        &self.usable[..self.usable_len]
    }

    fn inside(&self, e: Extent) -> bool {
        e.size == 0 || self.usable().iter().any(|u| e.start >= u.start && e.end() <= u.end())
    }

    /// Everything the boot uses lies in the usable memory, and the map offers nothing outside
    /// it (`blob`: the emulator's own footprint; `initrd` and `esp` from `/chosen`).
    pub fn check(&self, v: &Validated, blob: Extent, initrd: Option<Extent>, esp: Option<Extent>) -> Result<(), CrashError> {
        let parts = [
            ("kernel image", Some(v.kernel)),
            ("initrd", initrd),
            ("ESP image", esp),
            ("device tree", Some(v.dtb)),
            ("emulator", Some(blob)),
            ("stack", Some(v.stack)),
            ("mempool", Some(v.mempool)),
            ("ELF core header", Some(self.elfcorehdr)),
        ];
        for (what, extent) in parts {
            if let Some(extent) = extent.filter(|e| !self.inside(*e)) {
                return Err(CrashError::Outside { what, extent });
            }
        }
        for d in v.map.iter().filter(|d| super::validate::is_os_ram(d.r#type)) {
            let extent = Extent::new(d.physical_start, d.number_of_pages * PAGE_SIZE);
            if !self.inside(extent) {
                return Err(CrashError::MapOutside { ty: d.r#type, extent });
            }
        }
        Ok(())
    }

    /// Up to [`SAMPLE_PAGES`] pages spread evenly over `preserved` (the crashed kernel's RAM).
    pub fn sample_pages<I: Iterator<Item = Extent>>(&self, preserved: impl Fn() -> I) -> Samples {
        let total: u64 = preserved().map(|e| e.size / PAGE_SIZE).sum();
        let n = (SAMPLE_PAGES as u64).min(total);
        let mut out = Samples { pages: [0; SAMPLE_PAGES], len: n as usize };
        for (i, slot) in out.pages[..n as usize].iter_mut().enumerate() {
            let mut k = i as u64 * total / n;
            for e in preserved() {
                let pages = e.size / PAGE_SIZE;
                if k < pages {
                    *slot = e.start + k * PAGE_SIZE;
                    break;
                }
                k -= pages;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::testkit::{virt_dtb, Fixture, RAM_START};
    use efi_emulator_loader::dtb_edit::Tree;

    fn with_chosen(props: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut t = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
        for (k, v) in props {
            t.chosen_mut().set_property(k, v.clone());
        }
        t.to_blob()
    }

    fn reg(e: Extent) -> Vec<u8> {
        [e.start.to_be_bytes(), e.size.to_be_bytes()].concat()
    }

    #[test]
    fn the_signal_and_the_usable_memory() {
        assert_eq!(from_fdt(&Fdt::new(&virt_dtb(1 << 30, "hvc")).unwrap()), Ok(None), "an ordinary boot");
        let hdr = Extent::new(0x7000_0000, 0x1000);
        let usable = Extent::new(0x6000_0000, 0x1000_0000);
        let dtb = with_chosen(&[("linux,elfcorehdr", reg(hdr)), ("linux,usable-memory-range", reg(usable))]);
        assert_eq!(from_fdt(&Fdt::new(&dtb).unwrap()), Ok(Some(CrashBoot::new(hdr, &[usable]))));
        let dtb = with_chosen(&[("linux,elfcorehdr", reg(hdr))]);
        assert_eq!(from_fdt(&Fdt::new(&dtb).unwrap()), Err(CrashError::NoUsableRange));
        let dtb = with_chosen(&[("linux,elfcorehdr", vec![0; 12]), ("linux,usable-memory-range", reg(usable))]);
        assert_eq!(from_fdt(&Fdt::new(&dtb).unwrap()), Err(CrashError::Property { name: "linux,elfcorehdr", len: 12 }));
    }

    #[test]
    fn a_boot_that_leaves_its_region_is_named() {
        let f = Fixture::new();
        let img = f.image();
        let mem = crate::abi::testkit::FakeMemory::of(&img, &f);
        let v = crate::abi::validate::validate(&mem, img.param_addr, crate::abi::testkit::placement(&img), &mut |_| ()).unwrap();
        let blob = crate::abi::testkit::extent(img.emulator);
        // All of RAM usable: confined.
        let all = CrashBoot::new(Extent::new(RAM_START, 0x1000), &[Extent::new(RAM_START, 1 << 30)]);
        assert_eq!(all.check(&v, blob, None, None), Ok(()));
        // A region that holds the kernel but not the mempool.
        let small = CrashBoot::new(crate::abi::testkit::extent(img.kernel), &[Extent::new(RAM_START, img.kernel.end() - RAM_START)]);
        let err = small.check(&v, blob, None, None).unwrap_err();
        assert!(matches!(err, CrashError::Outside { what: "device tree", .. }), "{err}");
        assert!(err.to_string().contains("lies outside linux,usable-memory-range"));
    }

    #[test]
    fn samples_spread_over_the_preserved_ram() {
        let c = CrashBoot::new(Extent::new(0, 0), &[]);
        let preserved = [Extent::new(0x4000_0000, 0x100_0000), Extent::new(0x8000_0000, 0x300_0000)];
        let samples = c.sample_pages(|| preserved.iter().copied());
        let s = samples.pages();
        assert_eq!(s.len(), SAMPLE_PAGES);
        assert_eq!(s[0], 0x4000_0000);
        assert!(s.iter().all(|p| preserved.iter().any(|e| *p >= e.start && *p < e.end())));
        assert!(s.iter().filter(|p| **p >= 0x8000_0000).count() > s.len() / 2, "by size");
        assert_eq!(c.sample_pages(|| [Extent::new(0x1000, 0x2000)].into_iter()).pages(), [0x1000, 0x2000]);
        assert!(c.sample_pages(|| [].into_iter()).pages().is_empty());
    }
}
