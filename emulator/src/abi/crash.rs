//! A crash kernel's boot (kexec `-p`). The signal is `/chosen/linux,elfcorehdr` in the DTB the
//! loader passes: every arm64 crash-kernel loader sets it (kexec-tools, `kexec_file_load`,
//! `efi-kexec -p`), so no new ABI field is needed, and `/chosen/linux,usable-memory-range` is
//! the memory the boot may use.
//!
//! Everything the emulator and its payload touch must lie there: the segments, the stack and
//! the mempool (hence the page tables, the heap and every allocation it serves). The crashed
//! kernel's RAM around it is the evidence: never conventional memory in the map, never mapped,
//! but for a sample of pages mapped read-only whose CRCs are taken at entry and compared at
//! ExitBootServices.

use super::validate::Validated;
use crate::drivers::fdt::{be_uint, Fdt};
use crate::mem::{Extent, PAGE_SIZE};
use alloc::vec::Vec;
use core::fmt;

/// Pages of the crashed kernel's RAM whose CRCs prove it untouched.
pub const SAMPLE_PAGES: usize = 64;

/// What `/chosen` says of a crash boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashBoot {
    pub elfcorehdr: Extent,
    pub usable: Vec<Extent>,
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

/// (address, size) pairs of a `/chosen` property, in the root's cells.
fn pairs(value: &[u8], address_cells: usize, size_cells: usize, name: &'static str) -> Result<Vec<Extent>, CrashError> {
    let stride = 4 * (address_cells + size_cells);
    if value.is_empty() || stride == 0 || !value.len().is_multiple_of(stride) {
        return Err(CrashError::Property { name, len: value.len() });
    }
    Ok(value.chunks_exact(stride).map(|c| Extent::new(be_uint(&c[..4 * address_cells]).unwrap_or(0), be_uint(&c[4 * address_cells..]).unwrap_or(0))).collect())
}

/// The crash boot `/chosen` describes, or `None` for an ordinary boot.
pub fn from_fdt(fdt: &Fdt) -> Result<Option<CrashBoot>, CrashError> {
    let Some(chosen) = fdt.find("/chosen") else { return Ok(None) };
    let Some(header) = chosen.property("linux,elfcorehdr") else { return Ok(None) };
    let cells = fdt.root().cells();
    let (a, s) = (cells.address, cells.size);
    let elfcorehdr = pairs(header, a, s, "linux,elfcorehdr")?[0];
    let usable = pairs(chosen.property("linux,usable-memory-range").ok_or(CrashError::NoUsableRange)?, a, s, "linux,usable-memory-range")?;
    Ok(Some(CrashBoot { elfcorehdr, usable }))
}

impl CrashBoot {
    fn inside(&self, e: Extent) -> bool {
        e.size == 0 || self.usable.iter().any(|u| e.start >= u.start && e.end() <= u.end())
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
    pub fn sample_pages(&self, preserved: &[Extent]) -> Vec<u64> {
        let total: u64 = preserved.iter().map(|e| e.size / PAGE_SIZE).sum();
        let n = (SAMPLE_PAGES as u64).min(total);
        (0..n)
            .filter_map(|i| {
                let mut k = i * total / n;
                preserved.iter().find_map(|e| {
                    let pages = e.size / PAGE_SIZE;
                    if k < pages {
                        Some(e.start + k * PAGE_SIZE)
                    } else {
                        k -= pages;
                        None
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::testkit::{virt_dtb, Fixture, RAM_START};
    use crate::drivers::fdt::edit::Tree;

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
        assert_eq!(from_fdt(&Fdt::new(&dtb).unwrap()), Ok(Some(CrashBoot { elfcorehdr: hdr, usable: vec![usable] })));
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
        let blob = img.emulator;
        // All of RAM usable: confined.
        let all = CrashBoot { elfcorehdr: Extent::new(RAM_START, 0x1000), usable: vec![Extent::new(RAM_START, 1 << 30)] };
        assert_eq!(all.check(&v, blob, None, None), Ok(()));
        // A region that holds the kernel but not the mempool.
        let small = CrashBoot { elfcorehdr: img.kernel, usable: vec![Extent::new(RAM_START, img.kernel.end() - RAM_START)] };
        let err = small.check(&v, blob, None, None).unwrap_err();
        assert!(matches!(err, CrashError::Outside { what: "device tree", .. }), "{err}");
        assert!(err.to_string().contains("lies outside linux,usable-memory-range"));
    }

    #[test]
    fn samples_spread_over_the_preserved_ram() {
        let c = CrashBoot { elfcorehdr: Extent::new(0, 0), usable: vec![] };
        let preserved = [Extent::new(0x4000_0000, 0x100_0000), Extent::new(0x8000_0000, 0x300_0000)];
        let s = c.sample_pages(&preserved);
        assert_eq!(s.len(), SAMPLE_PAGES);
        assert_eq!(s[0], 0x4000_0000);
        assert!(s.iter().all(|p| preserved.iter().any(|e| *p >= e.start && *p < e.end())));
        assert!(s.iter().filter(|p| **p >= 0x8000_0000).count() > s.len() / 2, "by size");
        assert_eq!(c.sample_pages(&[Extent::new(0x1000, 0x2000)]), [0x1000, 0x2000]);
        assert!(c.sample_pages(&[]).is_empty());
    }
}
