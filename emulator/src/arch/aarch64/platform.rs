//! The platform traits (`crate::efi::platform`) for the blob: the generic timer, RNDR/RNDRRS,
//! the live page tables, cache maintenance, the StartImage/Exit context switch, PSCI, the PL011
//! console and the bulk copies.

use super::{console, cpu, exceptions, mmu, psci};
use crate::drivers::pl031::Pl031;
use crate::efi::platform::{Access, BulkCopy, Clock, ConsoleIo, Entropy, HeapRoom, Images, Power, PowerAction, ProtectError, Protection};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use r_efi::efi;

/// PSTATE.DAIF's I bit, as `mrs daif` reads it.
const DAIF_I: u64 = 1 << 7;

/// The AArch64 machine the blob runs on.
pub struct Aarch64;

/// What StartImage saves so that a return, or Exit, comes back to it: x19..x30, sp, d8..d15.
#[repr(C)]
#[derive(Default)]
pub struct ExitContext {
    regs: [u64; 21],
}

core::arch::global_asm!(
    r#"
    .section .text.efi_emulator_start_image, "ax"
    .global efi_emulator_start_image
    // x0 entry, x1 image handle, x2 system table, x3 stack top, x4 context -> x0 status
efi_emulator_start_image:
    stp     x19, x20, [x4, #0]
    stp     x21, x22, [x4, #16]
    stp     x23, x24, [x4, #32]
    stp     x25, x26, [x4, #48]
    stp     x27, x28, [x4, #64]
    stp     x29, x30, [x4, #80]
    mov     x5, sp
    str     x5, [x4, #96]
    stp     d8, d9, [x4, #104]
    stp     d10, d11, [x4, #120]
    stp     d12, d13, [x4, #136]
    stp     d14, d15, [x4, #152]
    mov     x19, x4
    mov     x16, x0
    mov     x0, x1
    mov     x1, x2
    mov     sp, x3
    mov     x29, xzr
    blr     x16
    // The image returned: its status is in x0, the context in x19 (callee-saved).
    mov     x1, x0
    mov     x0, x19

    .global efi_emulator_exit_image
    // x0 context, x1 status: back to the StartImage that saved the context.
efi_emulator_exit_image:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x5, [x0, #96]
    mov     sp, x5
    ldp     d8, d9, [x0, #104]
    ldp     d10, d11, [x0, #120]
    ldp     d12, d13, [x0, #136]
    ldp     d14, d15, [x0, #152]
    mov     x0, x1
    ret
"#
);

unsafe extern "C" {
    fn efi_emulator_start_image(entry: u64, handle: usize, systab: *mut efi::SystemTable, stack_top: u64, ctx: *mut ExitContext) -> usize;
    fn efi_emulator_exit_image(ctx: *mut ExitContext, status: usize) -> !;
}

/// The PL031 the device tree names, once setup found one (0: none).
static RTC_BASE: AtomicU64 = AtomicU64::new(0);

/// Drives the PL031 at `base` for GetTime/SetTime (identity-mapped device memory).
pub fn set_rtc(base: u64) {
    RTC_BASE.store(base, Ordering::Relaxed);
}

fn rtc() -> Option<Pl031> {
    let base = RTC_BASE.load(Ordering::Relaxed);
    // SAFETY: a PL031 named by the device tree, mapped as device memory by the memory plan and
    // published as runtime MMIO; only the emulator's time services drive it.
    (base != 0).then(|| unsafe { Pl031::new(base as usize) })
}

/// ID_AA64ISAR0_EL1.RNDR says whether RNDR/RNDRRS exist.
fn has_rndr() -> bool {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    (isar0 >> 60) & 0xf != 0
}

impl Clock for Aarch64 {
    fn ticks() -> u64 {
        cpu::ticks()
    }

    fn ticks_per_second() -> u64 {
        cpu::ticks_per_second()
    }

    fn micros_since_entry() -> u64 {
        cpu::micros_since_entry()
    }

    fn rtc_seconds() -> Option<u64> {
        rtc().map(|r| r.seconds() as u64)
    }

    fn set_rtc_seconds(seconds: u64) -> Result<(), ProtectError> {
        let rtc = rtc().ok_or(ProtectError)?;
        rtc.set_seconds(u32::try_from(seconds).map_err(|_| ProtectError)?);
        Ok(())
    }

    fn set_interrupts(enabled: bool) {
        super::tick::set_enabled(enabled);
    }

    fn restore_interrupt_mask(saved: u64) {
        if saved & DAIF_I == 0 {
            // SAFETY: DAIF.I only; the caller ran unmasked.
            unsafe { core::arch::asm!("msr daifclr, #2", options(nomem, nostack)) };
        }
    }

    fn mask_interrupts() {
        super::tick::stop();
        // SAFETY: masking DAIF has no memory effects.
        unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    }
}

impl Entropy for Aarch64 {
    fn random(reseed: bool) -> Option<u64> {
        if !has_rndr() {
            return None;
        }
        // Retried while the hardware reports no entropy (NZCV.Z set).
        for _ in 0..64 {
            let (v, ok): (u64, u64);
            // SAFETY: RNDR/RNDRRS exist (checked above); reading them has no memory effects.
            unsafe {
                if reseed {
                    core::arch::asm!("mrs {v}, s3_3_c2_c4_1", "cset {ok}, ne", v = out(reg) v, ok = out(reg) ok, options(nomem, nostack));
                } else {
                    core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) v, ok = out(reg) ok, options(nomem, nostack));
                }
            }
            if ok == 1 {
                return Some(v);
            }
        }
        None
    }

    fn has_random() -> bool {
        has_rndr()
    }
}

impl Protection for Aarch64 {
    fn access_of(addr: u64) -> Option<Access> {
        mmu::attributes_of(addr).map(|a| Access { writable: a.writable, executable: a.executable })
    }

    fn set_access(base: u64, size: u64, access: Access) -> Result<(), ProtectError> {
        // Runs of one memory type, so device memory stays device memory; a leaf (page or
        // block) has one type throughout, so the walk steps leaf by leaf.
        let mut at = base;
        while at < base + size {
            let (current, mut end) = mmu::leaf_of(at).ok_or(ProtectError)?;
            while end < base + size {
                match mmu::leaf_of(end) {
                    Some((a, leaf_end)) if a.mem == current.mem => end = leaf_end,
                    _ => break,
                }
            }
            let end = end.min(base + size);
            let attrs = super::page_table::Attributes { writable: access.writable, executable: access.executable, ..current };
            mmu::protect(at, end - at, attrs).map_err(|_| ProtectError)?;
            at = end;
        }
        Ok(())
    }

    fn code_written(start: u64, size: u64) {
        // Clean the D-cache to the point of unification over the new code, then drop the
        // I-cache; what CTR_EL0 says the CPU keeps coherent itself is skipped, as Linux does:
        // IDC (no clean needed) spares a pass over a 30 MB kernel text.
        let (idc, dic) = cpu::cache_coherence();
        if !idc {
            let line = cpu::dcache_line();
            let mut a = start & !(line - 1);
            while a < start + size {
                // SAFETY: DC CVAU on mapped memory only writes back cache lines.
                unsafe { core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack)) };
                a += line;
            }
        }
        if dic {
            // SAFETY: barriers only.
            unsafe { core::arch::asm!("dsb ish", "isb", options(nostack)) };
        } else {
            // SAFETY: barriers and I-cache invalidation have no memory effects Rust can observe.
            unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
        }
    }
}

impl ConsoleIo for Aarch64 {
    fn console_write(s: &str) {
        console::print_always(format_args!("{s}"));
    }

    fn console_read() -> Option<u8> {
        console::uart().and_then(|u| u.read_byte())
    }

    fn console_has_input() -> bool {
        console::uart().is_some_and(|u| u.has_input())
    }
}

impl Images for Aarch64 {
    type ExitContext = ExitContext;

    unsafe fn start_image(entry: u64, handle: usize, systab: *mut efi::SystemTable, stack_top: u64, ctx: *mut ExitContext) -> usize {
        // SAFETY: per this function's contract; the assembly saves the callee-saved state in
        // `ctx` and calls the entry per the UEFI AArch64 binding.
        unsafe { efi_emulator_start_image(entry, handle, systab, stack_top, ctx) }
    }

    unsafe fn exit_image(ctx: *mut ExitContext, status: usize) -> ! {
        // SAFETY: `ctx` belongs to a running start_image (this function's contract), whose
        // frame is still on the stack below the image's.
        unsafe { efi_emulator_exit_image(ctx, status) }
    }

    fn image_loaded(base: u64, size: u64, handle: usize) {
        exceptions::register_image(base, size, handle as u64);
    }
}

impl Power for Aarch64 {
    fn power(action: PowerAction) -> ! {
        match action {
            PowerAction::Off => psci::system_off(),
            PowerAction::Reset => psci::system_reset(),
        }
    }

    fn fatal(args: fmt::Arguments) -> ! {
        console::fatal(args)
    }
}

impl BulkCopy for Aarch64 {
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract; FEAT_MOPS or the SIMD loop, whichever the CPU has.
        unsafe { crate::bulk::copy_overlapping(dst, src, len) }
    }

    unsafe fn fill(dst: *mut u8, value: u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { crate::bulk::fill_raw(dst, value, len) }
    }
}

impl HeapRoom for Aarch64 {
    fn heap_free() -> u64 {
        crate::heap::free()
    }

    unsafe fn heap_grow(start: u64, size: u64) -> bool {
        // SAFETY: the caller's contract.
        unsafe { crate::heap::add(start, size) }
    }
}
