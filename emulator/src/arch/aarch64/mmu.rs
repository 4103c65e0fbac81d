//! Turning the MMU on with our identity map, for the translation regime we actually run in.
//!
//! - EL1: the EL1&0 regime (TCR_EL1, TTBR0_EL1, MAIR_EL1, SCTLR_EL1).
//! - EL2 with VHE (HCR_EL2.E2H=1): the EL2&0 regime. Its TCR_EL2 has the TCR_EL1 layout, and
//!   at EL2 with E2H set the `*_EL1` register names are redirected to the `*_EL2` registers, so
//!   the same TCR_EL1-format values are written through the EL1 names.
//! - EL2 without VHE: the single-range EL2 regime (TCR_EL2 with its own layout).

use super::cpu::{self, ExceptionLevel};
use super::page_table::{Attributes, MapError};
use super::page_table::{FrameAlloc, LiveOps, PageTables, Regime, Table, MAIR_VALUE};
use crate::cell::BootCell;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// Page-table frames carved from the start of the mempool.
pub struct BumpFrames {
    pub start: u64,
    pub next: u64,
    pub end: u64,
}

impl FrameAlloc for BumpFrames {
    fn alloc_zeroed(&mut self) -> Option<*mut Table> {
        if self.next + 4096 > self.end {
            return None;
        }
        let frame = self.next as *mut Table;
        self.next += 4096;
        // SAFETY: the frame lies in the validated mempool, which nothing else uses yet, and is
        // 4 KiB aligned; RAM is identity-mapped or the MMU is off.
        unsafe { frame.write_bytes(0, 1) };
        Some(frame)
    }
}

pub fn regime_for(el: ExceptionLevel) -> Regime {
    match el {
        ExceptionLevel::El2 { vhe: false } => Regime::El2Only,
        _ => Regime::TwoLevels,
    }
}

/// Output address size for TCR from ID_AA64MMFR0_EL1.PARange, capped at 48 bits (4 KiB granule
/// without LPA2).
fn pa_range() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101)
}

/// Programs the regime of `el` with `root` and turns on the MMU and both caches.
///
/// `written` lists memory we wrote with the caches off (the blob, the stack, the tables): it is
/// invalidated first, so no stale line from before the kexec hides it once caches are on.
pub fn enable<A: FrameAlloc>(el: ExceptionLevel, tables: &PageTables<A>, written: &[(u64, u64)]) {
    for &(start, size) in written {
        cpu::dcache_invalidate(start, size);
    }
    cpu::icache_invalidate_all();
    let root = tables.root_address();
    let ips = pa_range();
    match el {
        ExceptionLevel::El1 | ExceptionLevel::El2 { vhe: true } => {
            MAIR_EL1.set(MAIR_VALUE);
            TCR_EL1.write(
                TCR_EL1::T0SZ.val(16)
                    + TCR_EL1::TG0::KiB_4
                    + TCR_EL1::SH0::Inner
                    + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                    + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                    + TCR_EL1::EPD1::DisableTTBR1Walks
                    + TCR_EL1::IPS.val(ips),
            );
            TTBR0_EL1.set_baddr(root);
        }
        ExceptionLevel::El2 { vhe: false } => {
            MAIR_EL2.set(MAIR_VALUE);
            // Bits 31 and 23 are RES1 in the nVHE layout.
            TCR_EL2.set(
                (1 << 31)
                    | (1 << 23)
                    | (TCR_EL2::T0SZ.val(16)
                        + TCR_EL2::TG0::KiB_4
                        + TCR_EL2::SH0::Inner
                        + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                        + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                        + TCR_EL2::PS.val(ips))
                    .value,
            );
            TTBR0_EL2.set_baddr(root);
        }
    }
    barrier::isb(barrier::SY);
    // SAFETY: invalidating TLBs of our own regime; nothing else runs.
    unsafe {
        match el {
            ExceptionLevel::El1 => core::arch::asm!("tlbi vmalle1", options(nostack)),
            ExceptionLevel::El2 { .. } => core::arch::asm!("tlbi alle2", options(nostack)),
        }
    }
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    match el {
        ExceptionLevel::El1 | ExceptionLevel::El2 { vhe: true } => {
            SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable + SCTLR_EL1::A::Disable + SCTLR_EL1::WXN::Disable + SCTLR_EL1::SA::Enable)
        }
        ExceptionLevel::El2 { vhe: false } => {
            SCTLR_EL2.modify(SCTLR_EL2::M::Enable + SCTLR_EL2::C::Cacheable + SCTLR_EL2::I::Cacheable + SCTLR_EL2::A::Disable + SCTLR_EL2::SA::Enable)
        }
    }
    barrier::isb(barrier::SY);
}

/// The tables the MMU uses, once `keep_live` has them.
static LIVE: BootCell<PageTables<BumpFrames>> = BootCell::empty();

fn invalidate_el1() {
    // SAFETY: TLB maintenance of our own regime, with the barriers it needs.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack)) };
}

fn invalidate_el2() {
    // SAFETY: as above, for the EL2 (and EL2&0) regime.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle2is", "dsb ish", "isb", options(nostack)) };
}

// Break-before-make of one descriptor (x0 = its address, x1 = the new value) in registers only:
// between the break and the make, the broken block may be the one that maps the caller's stack.
core::arch::global_asm!(
    r#"
    .section .text.efi_emulator_replace_entry, "ax"
    .macro replace_entry name, tlbi_op
    .global \name
    .type \name, %function
\name:
    str     xzr, [x0]
    dsb     ishst
    tlbi    \tlbi_op
    dsb     ish
    isb
    str     x1, [x0]
    dsb     ishst
    isb
    ret
    .size \name, . - \name
    .endm
    replace_entry efi_emulator_replace_entry_el1, vmalle1is
    replace_entry efi_emulator_replace_entry_el2, alle2is
"#
);

unsafe extern "C" {
    fn efi_emulator_replace_entry_el1(entry: *mut u64, new: u64);
    fn efi_emulator_replace_entry_el2(entry: *mut u64, new: u64);
}

/// Keeps the tables the MMU now uses, so that image sections can get their permissions.
pub fn keep_live(el: ExceptionLevel, mut tables: PageTables<BumpFrames>) {
    tables.set_live(match el {
        ExceptionLevel::El1 => LiveOps { invalidate: invalidate_el1, replace: efi_emulator_replace_entry_el1 },
        ExceptionLevel::El2 { .. } => LiveOps { invalidate: invalidate_el2, replace: efi_emulator_replace_entry_el2 },
    });
    LIVE.set(tables);
}

/// Changes the attributes of identity-mapped `[start, start + size)` in the live tables.
pub fn protect(start: u64, size: u64, attrs: Attributes) -> Result<(), MapError> {
    let (s, e) = (start & !0xfff, (start + size).next_multiple_of(0x1000));
    LIVE.with(|tables| tables.map(s, s, e - s, attrs)).unwrap_or(Err(MapError::OutOfFrames))
}

/// Frames the tables use so far: (first address, count).
pub fn table_frames() -> (u64, u64) {
    LIVE.with(|t| (t.allocator().start, (t.allocator().next - t.allocator().start) / 4096)).unwrap_or((0, 0))
}

/// The attributes of the live mapping of `addr`, when it is identity-mapped.
pub fn attributes_of(addr: u64) -> Option<Attributes> {
    leaf_of(addr).map(|(attrs, _)| attrs)
}

/// The attributes of the live identity mapping of `addr`, and the end of the leaf entry (page
/// or block) that maps it: everything up to there has the same attributes.
pub fn leaf_of(addr: u64) -> Option<(Attributes, u64)> {
    let (pa, attrs, level) = LIVE.with(|t| t.translate(addr)).flatten()?;
    let span = super::page_table::entry_span(level);
    (pa == addr).then_some((attrs, (addr | (span - 1)) + 1))
}
