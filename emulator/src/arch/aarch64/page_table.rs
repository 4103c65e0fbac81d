//! Stage-1 translation tables, 4 KiB granule, 48-bit input addresses (four levels).
//!
//! Portable: it only writes descriptors into frames that a [`FrameAlloc`] hands out, so the host
//! tests check the exact entries. Tables hold physical addresses, and frames are reached through
//! their address as a pointer: identity on the target (MMU off, or identity mapped), and plain
//! heap pointers on the host.

pub const ENTRIES: usize = 512;
pub type Table = [u64; ENTRIES];

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_EL0: u64 = 1 << 6;
const AP_RO: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN_OR_XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Bits that describe a mapping's attributes (everything but the address and the type bits).
const ATTR_MASK: u64 = !ADDR_MASK & !(VALID | TABLE_OR_PAGE);

/// Largest input address + 1 (T0SZ = 16).
pub const VA_LIMIT: u64 = 1 << 48;

/// MAIR indices; [`MAIR_VALUE`] programs them.
pub const ATTR_NORMAL_WB: u64 = 0;
pub const ATTR_DEVICE_NGNRE: u64 = 1;
/// Attr0 = Normal write-back read/write-allocate, Attr1 = Device-nGnRE.
pub const MAIR_VALUE: u64 = 0xff | (0x04 << 8);

/// Which translation regime the descriptors are for: it decides the meaning of `AP[1]` and XN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// EL1&0, and EL2&0 under VHE: two privilege levels, PXN and UXN.
    TwoLevels,
    /// EL2 without VHE: one privilege level, one XN bit, `AP[1]` is RES1.
    El2Only,
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    Normal,
    Device,
}

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub mem: MemType,
    pub writable: bool,
    pub executable: bool,
}

impl Attributes {
    pub const RAM: Self = Attributes { mem: MemType::Normal, writable: true, executable: true };
    pub const CODE: Self = Attributes { mem: MemType::Normal, writable: false, executable: true };
    pub const RODATA: Self = Attributes { mem: MemType::Normal, writable: false, executable: false };
    pub const DATA: Self = Attributes { mem: MemType::Normal, writable: true, executable: false };
    pub const DEVICE: Self = Attributes { mem: MemType::Device, writable: true, executable: false };

    fn bits(self, regime: Regime) -> u64 {
        let mut b = AF;
        b |= match self.mem {
            MemType::Normal => (ATTR_NORMAL_WB << 2) | SH_INNER,
            MemType::Device => ATTR_DEVICE_NGNRE << 2,
        };
        if !self.writable {
            b |= AP_RO;
        }
        match regime {
            Regime::TwoLevels => {
                // EL0 never runs here; a page EL0 could write would be implicitly PXN.
                b |= UXN_OR_XN;
                if !self.executable {
                    b |= PXN;
                }
            }
            Regime::El2Only => {
                b |= AP_EL0;
                if !self.executable {
                    b |= UXN_OR_XN;
                }
            }
        }
        b
    }

    fn from_bits(b: u64, regime: Regime) -> Self {
        let mem = if (b >> 2) & 7 == ATTR_DEVICE_NGNRE { MemType::Device } else { MemType::Normal };
        let executable = match regime {
            Regime::TwoLevels => b & PXN == 0,
            Regime::El2Only => b & UXN_OR_XN == 0,
        };
        Attributes { mem, writable: b & AP_RO == 0, executable }
    }
}

/// Hands out zeroed, 4 KiB-aligned frames for tables.
pub trait FrameAlloc {
    fn alloc_zeroed(&mut self) -> Option<*mut Table>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned { va: u64, pa: u64, size: u64 },
    OutOfRange { va: u64, size: u64 },
    OutOfFrames,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unaligned { va, pa, size } => write!(f, "mapping va {va:#x} pa {pa:#x} size {size:#x} is not 4 KiB aligned"),
            Self::OutOfRange { va, size } => write!(f, "mapping va {va:#x} size {size:#x} is beyond the 48-bit address space"),
            Self::OutOfFrames => write!(f, "no memory left for page tables"),
        }
    }
}

impl core::error::Error for MapError {}

/// The TLB maintenance of the regime the live tables serve.
#[derive(Clone, Copy)]
pub struct LiveOps {
    /// Invalidates the regime's TLBs, with the barriers around it.
    pub invalidate: fn(),
    /// Break-before-make of one entry: writes 0, invalidates the TLBs, writes `new`. It must
    /// touch no memory but the entry (no stack): the block being broken may map the very stack
    /// the caller runs on (a payload's, when a service splits the block around it).
    ///
    /// # Safety
    /// `entry` is a descriptor of the live tables, in a page that stays mapped throughout.
    pub replace: unsafe extern "C" fn(entry: *mut u64, new: u64),
}

/// One translation table tree.
pub struct PageTables<A: FrameAlloc> {
    root: *mut Table,
    regime: Regime,
    alloc: A,
    /// Set once the tables are live: how valid entries change from then on.
    live: Option<LiveOps>,
    /// A permission-only change was written since the last invalidation.
    stale_tlb: bool,
}

/// Makes a table write visible to the walker before the next access (nothing on the host).
fn invalidate_after_write() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: barriers only.
    unsafe {
        core::arch::asm!("dsb ishst", "isb", options(nostack))
    };
}

/// Bytes one entry maps at `level` (0..=3).
pub const fn entry_span(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level))
}

fn index(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

impl<A: FrameAlloc> PageTables<A> {
    pub fn new(regime: Regime, mut alloc: A) -> Result<Self, MapError> {
        let root = alloc.alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        Ok(PageTables { root, regime, alloc, live: None, stale_tlb: false })
    }

    /// Physical address of the level-0 table, for TTBR0.
    pub fn root_address(&self) -> u64 {
        self.root as u64
    }

    pub fn regime(&self) -> Regime {
        self.regime
    }

    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// From now on the tables are in use: valid entries change by break-before-make.
    pub fn set_live(&mut self, ops: LiveOps) {
        self.live = Some(ops);
    }

    /// Writes an entry. When the tables are live, a valid entry that changes its output,
    /// size or memory type is replaced by break-before-make (the architecture's rule); a
    /// change of permissions alone needs no break, only one TLB invalidation when the whole
    /// `map` is done.
    fn write(&mut self, entry: &mut u64, new: u64) {
        if let Some(live) = self.live {
            let old = *entry;
            let permissions = AP_RO | AP_EL0 | PXN | UXN_OR_XN;
            if old & VALID != 0 && old != new && (new & VALID == 0 || (old ^ new) & !permissions != 0) {
                // SAFETY: `entry` is in a table frame, which the memory plan maps by pages that
                // no split ever breaks.
                unsafe { (live.replace)(entry, new) };
                return;
            }
            if old & VALID != 0 && old != new {
                self.stale_tlb = true;
            }
        }
        // SAFETY: a volatile write to a table entry the walker reads.
        unsafe { core::ptr::write_volatile(entry, new) };
        if self.live.is_some() {
            invalidate_after_write();
        }
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)`. A later mapping replaces what an earlier one
    /// said about the same addresses, splitting blocks where needed. Not for live tables: there
    /// is no break-before-make here.
    pub fn map(&mut self, va: u64, pa: u64, size: u64, attrs: Attributes) -> Result<(), MapError> {
        if (va | pa | size) & 0xfff != 0 {
            return Err(MapError::Unaligned { va, pa, size });
        }
        if va.checked_add(size).is_none_or(|end| end > VA_LIMIT) || pa.checked_add(size).is_none_or(|end| end > VA_LIMIT) {
            return Err(MapError::OutOfRange { va, size });
        }
        let bits = attrs.bits(self.regime);
        let root = self.root;
        let result = self.map_level(root, 0, va, pa, size, bits);
        if let (true, Some(live)) = (self.stale_tlb, self.live) {
            (live.invalidate)();
            self.stale_tlb = false;
        }
        result
    }

    fn map_level(&mut self, table: *mut Table, level: usize, mut va: u64, mut pa: u64, mut size: u64, bits: u64) -> Result<(), MapError> {
        if level == 3 {
            // Pages only, all in this table (the caller passes at most its span): one tight
            // loop, as RAM between unmapped holes can be hundreds of thousands of pages.
            let first = index(va, 3);
            for k in 0..(size / entry_span(3)) as usize {
                // SAFETY: as below; `first + k` stays inside the table.
                let entry = unsafe { &mut (*table)[first + k] };
                self.write(entry, ((pa + k as u64 * entry_span(3)) & ADDR_MASK) | bits | VALID | TABLE_OR_PAGE);
            }
            return Ok(());
        }
        let span = entry_span(level);
        while size > 0 {
            let i = index(va, level);
            let chunk = (span - (va & (span - 1))).min(size);
            // SAFETY: `table` is a frame from our allocator (or the root), reachable through its
            // address, and no other reference to it is alive while we build.
            let entry = unsafe { &mut (*table)[i] };
            let whole = chunk == span && va.is_multiple_of(span) && pa.is_multiple_of(span);
            // Levels 1 and 2 take blocks (level 3 returned above; level 0 has none).
            if whole && level != 0 {
                self.write(entry, (pa & ADDR_MASK) | bits | VALID);
            } else {
                let next = self.next_table(entry, level)?;
                self.map_level(next, level + 1, va, pa, chunk, bits)?;
            }
            va += chunk;
            pa += chunk;
            size -= chunk;
        }
        Ok(())
    }

    /// The table an entry points to, created empty or split from a block as needed.
    fn next_table(&mut self, entry: &mut u64, level: usize) -> Result<*mut Table, MapError> {
        if *entry & VALID != 0 && *entry & TABLE_OR_PAGE != 0 {
            return Ok((*entry & ADDR_MASK) as *mut Table);
        }
        let frame = self.alloc.alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        if *entry & VALID != 0 {
            // Split a block into 512 entries of the next level with the same attributes.
            let base = *entry & ADDR_MASK & !(entry_span(level) - 1);
            let attrs = *entry & ATTR_MASK;
            let child_span = entry_span(level + 1);
            let kind = if level + 1 == 3 { VALID | TABLE_OR_PAGE } else { VALID };
            for (j, e) in (0..ENTRIES).zip(0..) {
                // SAFETY: `frame` is a fresh, exclusively owned table.
                unsafe { (*frame)[j] = (base + e * child_span) | attrs | kind };
            }
        }
        self.write(entry, frame as u64 | VALID | TABLE_OR_PAGE);
        Ok(frame)
    }

    /// Walks the tables for `va`: the physical address it maps to, its attributes and the level
    /// of the leaf entry.
    pub fn translate(&self, va: u64) -> Option<(u64, Attributes, usize)> {
        let mut table = self.root;
        for level in 0..4 {
            // SAFETY: as in map_level; read only.
            let entry = unsafe { (*table)[index(va, level)] };
            if entry & VALID == 0 {
                return None;
            }
            let leaf = level == 3 || entry & TABLE_OR_PAGE == 0;
            if leaf {
                let span = entry_span(level);
                let pa = (entry & ADDR_MASK & !(span - 1)) + (va & (span - 1));
                return Some((pa, Attributes::from_bits(entry, self.regime), level));
            }
            table = (entry & ADDR_MASK) as *mut Table;
        }
        None
    }

    /// True when some page of `[va, va + size)` is mapped already.
    pub fn any_mapped(&self, va: u64, size: u64) -> bool {
        let mut a = va & !0xfff;
        while a < va + size {
            if self.translate(a).is_some() {
                return true;
            }
            a += 0x1000;
        }
        false
    }
}

/// Table frames on the host heap, for tests.
#[cfg(test)]
pub mod host_frames {
    use super::{FrameAlloc, Table, ENTRIES};
    use std::boxed::Box;
    use std::vec::Vec;

    #[repr(C, align(4096))]
    struct Frame(Table);

    /// Owns every frame it hands out, so the tables live as long as it does. The frames are
    /// kept as raw pointers, not Boxes: moving a Box asserts unique access to its frame, which
    /// the table walker's pointers into it would then violate (Miri's finding).
    #[derive(Default)]
    pub struct HostFrames(Vec<*mut Frame>);

    impl FrameAlloc for &mut HostFrames {
        fn alloc_zeroed(&mut self) -> Option<*mut Table> {
            let f = Box::into_raw(Box::new(Frame([0; ENTRIES])));
            self.0.push(f);
            // SAFETY: `f` is a live allocation this allocator owns until it is dropped.
            Some(unsafe { &raw mut (*f).0 })
        }
    }

    impl Drop for HostFrames {
        fn drop(&mut self) {
            for &f in &self.0 {
                // SAFETY: each pointer came from Box::into_raw above and is freed once.
                drop(unsafe { Box::from_raw(f) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_frames::HostFrames;
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;

    #[test]
    fn gigabyte_of_ram_is_one_level1_block() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        pt.map(GIB, GIB, GIB, Attributes::RAM).unwrap();
        // Root + one level-1 table: the GiB is a single block entry.
        assert_eq!(frames_len(&pt), 2);
        let (pa, attrs, level) = pt.translate(GIB + 0x1234).unwrap();
        assert_eq!((pa, attrs, level), (GIB + 0x1234, Attributes::RAM, 1));
        // SAFETY: test-only read of the root table.
        let root = unsafe { &*(pt.root_address() as *const Table) };
        // SAFETY: test-only read of the level-1 table the root entry points to.
        let l1 = unsafe { &*((root[0] & ADDR_MASK) as *const Table) };
        assert_eq!(root[0] & 3, 3, "level-0 entry is a table");
        // Block: address, AF, inner shareable, AttrIndx 0, UXN, valid, not a table.
        assert_eq!(l1[1], GIB | AF | SH_INNER | UXN_OR_XN | VALID);
        assert_eq!(pt.translate(0), None);
    }

    fn frames_len<A: FrameAlloc>(pt: &PageTables<A>) -> usize {
        // Count reachable tables.
        fn count(t: *const Table, level: usize) -> usize {
            if level == 3 {
                return 1;
            }
            // SAFETY: a table of the builder's own, reached from its root.
            let t = unsafe { &*t };
            1 + t.iter().filter(|e| *e & 3 == 3).map(|e| count((e & ADDR_MASK) as *const Table, level + 1)).sum::<usize>()
        }
        count(pt.root as *const Table, 0)
    }

    #[test]
    fn unaligned_ranges_use_the_largest_blocks_that_fit() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        // 4 KiB before a 2 MiB boundary, then a whole 2 MiB block, then 4 KiB more.
        let start = 0x4000_0000 + MIB2 - 0x1000;
        pt.map(start, start, 0x1000 + MIB2 + 0x1000, Attributes::DATA).unwrap();
        assert_eq!(pt.translate(start).unwrap().2, 3);
        assert_eq!(pt.translate(start + 0x1000).unwrap().2, 2);
        assert_eq!(pt.translate(start + 0x1000 + MIB2).unwrap().2, 3);
        assert_eq!(pt.translate(start + 0x2000 + MIB2), None);
        assert_eq!(pt.translate(start - 0x1000), None);
    }

    #[test]
    fn later_mappings_split_blocks_and_keep_the_rest() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        pt.map(GIB, GIB, GIB, Attributes::RAM).unwrap();
        let text = GIB + 0x123_4000;
        pt.map(text, text, 0x3000, Attributes::CODE).unwrap();
        pt.map(text + 0x3000, text + 0x3000, 0x2000, Attributes::DATA).unwrap();
        assert_eq!(pt.translate(text).unwrap(), (text, Attributes::CODE, 3));
        assert_eq!(pt.translate(text + 0x2fff).unwrap().1, Attributes::CODE);
        assert_eq!(pt.translate(text + 0x3000).unwrap().1, Attributes::DATA);
        assert_eq!(pt.translate(text + 0x5000).unwrap().1, Attributes::RAM);
        assert_eq!(pt.translate(text - 0x1000).unwrap().1, Attributes::RAM);
        // The rest of the GiB keeps its attributes, at 2 MiB granularity after the split.
        assert_eq!(pt.translate(GIB + 0x3000_0000).unwrap(), (GIB + 0x3000_0000, Attributes::RAM, 2));
    }

    #[test]
    fn device_and_el2_descriptor_bits() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::El2Only, &mut frames).unwrap();
        pt.map(0x900_0000, 0x900_0000, 0x1000, Attributes::DEVICE).unwrap();
        let (_, attrs, level) = pt.translate(0x900_0000).unwrap();
        assert_eq!((attrs, level), (Attributes::DEVICE, 3));
        let bits = Attributes::DEVICE.bits(Regime::El2Only);
        assert_eq!(bits, AF | (ATTR_DEVICE_NGNRE << 2) | AP_EL0 | UXN_OR_XN);
        assert_eq!(Attributes::CODE.bits(Regime::El2Only) & (UXN_OR_XN | PXN), 0);
        assert_eq!(Attributes::CODE.bits(Regime::TwoLevels) & (UXN_OR_XN | PXN), UXN_OR_XN);
    }

    #[test]
    fn aliases_map_another_virtual_address_to_the_same_physical() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        pt.map(0x2000_0000, 0x7f00_0000, 0x4000, Attributes::DATA).unwrap();
        assert_eq!(pt.translate(0x2000_1008).unwrap().0, 0x7f00_1008);
        assert!(pt.any_mapped(0x1fff_f000, 0x2000));
        assert!(!pt.any_mapped(0x2000_4000, 0x1000));
    }

    #[test]
    fn live_tables_break_before_make() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static FLUSHES: AtomicUsize = AtomicUsize::new(0);
        static BREAKS: AtomicUsize = AtomicUsize::new(0);
        fn flush() {
            FLUSHES.fetch_add(1, Ordering::Relaxed);
        }
        /// Breaks and makes in one call, as the target's stackless sequence does: the entry
        /// is still valid when it is called, so nothing ran with the mapping broken.
        unsafe extern "C" fn replace(entry: *mut u64, new: u64) {
            // SAFETY: the caller passes an entry of the live tables.
            unsafe {
                assert_ne!(*entry & VALID, 0, "the entry was broken before the replace sequence");
                *entry = new;
            }
            BREAKS.fetch_add(1, Ordering::Relaxed);
        }
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        pt.map(GIB, GIB, GIB, Attributes::RAM).unwrap();
        assert_eq!(FLUSHES.load(Ordering::Relaxed) + BREAKS.load(Ordering::Relaxed), 0, "building needs no invalidation");
        pt.set_live(LiveOps { invalidate: flush, replace });
        // Splitting the GiB block (1 break) and the 2 MiB block under it (1 break); the page
        // itself only changes permissions: one invalidation at the end.
        pt.map(GIB + 0x20_0000, GIB + 0x20_0000, 0x1000, Attributes::CODE).unwrap();
        assert_eq!((BREAKS.load(Ordering::Relaxed), FLUSHES.load(Ordering::Relaxed)), (2, 1));
        assert_eq!(pt.translate(GIB + 0x20_0000).unwrap().1, Attributes::CODE);
        pt.map(GIB + 0x20_0000, GIB + 0x20_0000, 0x1000, Attributes::CODE).unwrap();
        assert_eq!((BREAKS.load(Ordering::Relaxed), FLUSHES.load(Ordering::Relaxed)), (2, 1), "an unchanged entry is not broken");
        // Two 2 MiB blocks: the first replaces the split table (a break), the second only
        // changes permissions (one invalidation at the end).
        pt.map(GIB + 0x20_0000, GIB + 0x20_0000, 0x40_0000, Attributes::DATA).unwrap();
        assert_eq!((BREAKS.load(Ordering::Relaxed), FLUSHES.load(Ordering::Relaxed)), (3, 2));
        pt.map(GIB + 0x80_0000, GIB + 0x80_0000, 0x60_0000, Attributes::CODE).unwrap();
        assert_eq!((BREAKS.load(Ordering::Relaxed), FLUSHES.load(Ordering::Relaxed)), (3, 3), "three permission changes, one invalidation");
    }

    #[test]
    fn rejects_bad_requests() {
        let mut frames = HostFrames::default();
        let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
        assert_eq!(pt.map(0x1001, 0, 0x1000, Attributes::RAM), Err(MapError::Unaligned { va: 0x1001, pa: 0, size: 0x1000 }));
        assert!(matches!(pt.map(VA_LIMIT - 0x1000, 0, 0x2000, Attributes::RAM), Err(MapError::OutOfRange { .. })));
        struct Empty;
        impl FrameAlloc for Empty {
            fn alloc_zeroed(&mut self) -> Option<*mut Table> {
                None
            }
        }
        assert!(matches!(PageTables::new(Regime::TwoLevels, Empty), Err(MapError::OutOfFrames)));
    }
}
