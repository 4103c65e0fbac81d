//! CPU facts and primitives: exception level, identification, the generic timer, caches.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::sync::atomic::{AtomicU64, Ordering};

/// The exception level we run at, and for EL2 whether the host extensions (VHE) are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionLevel {
    El1,
    El2 { vhe: bool },
}

impl ExceptionLevel {
    pub fn current() -> Self {
        match CurrentEL.read(CurrentEL::EL) {
            2 => ExceptionLevel::El2 { vhe: HCR_EL2.is_set(HCR_EL2::E2H) },
            _ => ExceptionLevel::El1,
        }
    }
}

impl core::fmt::Display for ExceptionLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ExceptionLevel::El1 => "EL1",
            ExceptionLevel::El2 { vhe: true } => "EL2 (VHE, HCR_EL2.E2H=1)",
            ExceptionLevel::El2 { vhe: false } => "EL2 (nVHE, HCR_EL2.E2H=0)",
        })
    }
}

static ENTRY_TICKS: AtomicU64 = AtomicU64::new(0);

pub fn set_entry_ticks(ticks: u64) {
    ENTRY_TICKS.store(ticks, Ordering::Relaxed);
}

pub fn ticks() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

pub fn ticks_per_second() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// Microseconds since the first instruction of the blob.
pub fn micros_since_entry() -> u64 {
    let elapsed = ticks().wrapping_sub(ENTRY_TICKS.load(Ordering::Relaxed));
    (elapsed as u128 * 1_000_000 / ticks_per_second() as u128) as u64
}

pub fn midr() -> u64 {
    MIDR_EL1.get()
}

pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// Implementer and part name for the MIDR values we are likely to meet.
pub fn cpu_name(midr: u64) -> &'static str {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Arm Cortex-A53",
        (0x41, 0xd07) => "Arm Cortex-A57",
        (0x41, 0xd08) => "Arm Cortex-A72",
        (0x41, 0xd0b) => "Arm Cortex-A76",
        (0x41, 0xd0c) => "Arm Neoverse-N1",
        (0x41, 0xd40) => "Arm Neoverse-V1",
        (0x41, 0xd49) => "Arm Neoverse-N2",
        (0x41, 0xd4f) => "Arm Neoverse-V2",
        (0x00, 0x051) => "QEMU max",
        (0x41, _) => "Arm",
        (0x51, _) => "Qualcomm",
        (0x61, _) => "Apple",
        (0xc0, _) => "Ampere",
        _ => "unknown",
    }
}

/// The cache type register: line sizes and what the CPU keeps coherent itself.
fn ctr_el0() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    ctr
}

/// Smallest data cache line, from CTR_EL0.DminLine.
pub fn dcache_line() -> u64 {
    4 << ((ctr_el0() >> 16) & 0xf)
}

/// CTR_EL0.IDC and DIC: whether instruction fetch sees data writes without a D-cache clean to
/// the point of unification, and without I-cache invalidation.
pub fn cache_coherence() -> (bool, bool) {
    let ctr = ctr_el0();
    (ctr >> 28 & 1 != 0, ctr >> 29 & 1 != 0)
}

/// Invalidates the data cache for `[start, start + size)` to the point of coherency.
///
/// Used before the caches are turned on for memory we wrote with them off: a stale line from
/// before the kexec must not shadow what is in RAM now.
pub fn dcache_invalidate(start: u64, size: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < start + size {
        // SAFETY: DC IVAC on memory that is mapped (or the MMU off) only drops cache lines;
        // the caller guarantees nothing dirty in that range is still needed.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}

/// Invalidates the whole instruction cache of this CPU.
pub fn icache_invalidate_all() {
    // SAFETY: IC IALLU has no effect beyond refetching instructions.
    unsafe { core::arch::asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}

pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
