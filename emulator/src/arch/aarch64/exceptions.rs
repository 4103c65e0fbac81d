//! Exception vectors and the fault dump: every exception the emulator takes is fatal, except an
//! IRQ that interrupts a payload, which goes to the boot-services tick ([`super::tick`]).
//!
//! The dump names the exception, the decoded ESR, ELR/FAR/SPSR, all general registers and the
//! EL, and places ELR and FAR inside the emulator or the payload image when they fall there.

use super::cpu::ExceptionLevel;
use super::esr;
use crate::console::Console;
use aarch64_cpu::registers::*;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

core::arch::global_asm!(
    r#"
    .section .text.vectors, "ax"
    .balign 2048
    .global __exception_vectors
__exception_vectors:
    .irp kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 128
    .if \kind == 5
    // IRQ from the current EL on SP_ELx: a payload interrupted by the tick.
    b       __irq_entry
    .else
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       __exception_common
    .endif
    .endr

    // Saves what the interrupted code may hold in caller-saved registers (x0-x18, x29, x30, the
    // FP/SIMD registers and their control), and ELR/SPSR in case the tick's work takes another
    // exception level's trip (PSCI); calls the handler; returns to the interrupted code.
__irq_entry:
    sub     sp, sp, #{irq_frame}
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    str     x30, [sp, #160]
    mrs     x0, CurrentEL
    cmp     x0, #8
    b.eq    1f
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    b       2f
1:  mrs     x1, elr_el2
    mrs     x2, spsr_el2
2:  stp     x1, x2, [sp, #176]
    mrs     x1, fpcr
    mrs     x2, fpsr
    stp     x1, x2, [sp, #192]
    stp     q0, q1, [sp, #208]
    stp     q2, q3, [sp, #240]
    stp     q4, q5, [sp, #272]
    stp     q6, q7, [sp, #304]
    stp     q8, q9, [sp, #336]
    stp     q10, q11, [sp, #368]
    stp     q12, q13, [sp, #400]
    stp     q14, q15, [sp, #432]
    stp     q16, q17, [sp, #464]
    stp     q18, q19, [sp, #496]
    stp     q20, q21, [sp, #528]
    stp     q22, q23, [sp, #560]
    stp     q24, q25, [sp, #592]
    stp     q26, q27, [sp, #624]
    stp     q28, q29, [sp, #656]
    stp     q30, q31, [sp, #688]
    bl      efi_emulator_irq
    ldp     q0, q1, [sp, #208]
    ldp     q2, q3, [sp, #240]
    ldp     q4, q5, [sp, #272]
    ldp     q6, q7, [sp, #304]
    ldp     q8, q9, [sp, #336]
    ldp     q10, q11, [sp, #368]
    ldp     q12, q13, [sp, #400]
    ldp     q14, q15, [sp, #432]
    ldp     q16, q17, [sp, #464]
    ldp     q18, q19, [sp, #496]
    ldp     q20, q21, [sp, #528]
    ldp     q22, q23, [sp, #560]
    ldp     q24, q25, [sp, #592]
    ldp     q26, q27, [sp, #624]
    ldp     q28, q29, [sp, #656]
    ldp     q30, q31, [sp, #688]
    ldp     x1, x2, [sp, #192]
    msr     fpcr, x1
    msr     fpsr, x2
    ldp     x1, x2, [sp, #176]
    mrs     x0, CurrentEL
    cmp     x0, #8
    b.eq    3f
    msr     elr_el1, x1
    msr     spsr_el1, x2
    b       4f
3:  msr     elr_el2, x1
    msr     spsr_el2, x2
4:  ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    ldr     x30, [sp, #160]
    add     sp, sp, #{irq_frame}
    eret

__exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    add     x1, sp, #{frame}
    stp     x30, x1, [sp, #240]
    mov     x1, sp
    bl      efi_emulator_exception
1:  wfi
    b       1b
"#,
    frame = const core::mem::size_of::<Frame>(),
    irq_frame = const IRQ_FRAME,
);

/// Bytes `__irq_entry` saves: x0-x18, x29, x30 (168, padded to 176), ELR and SPSR, FPCR and
/// FPSR, q0-q31.
const IRQ_FRAME: usize = 176 + 16 + 16 + 32 * 16;

/// What the vector stub saved: x0..x30 and the stack pointer before the exception.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub sp: u64,
}

const KINDS: [&str; 4] = ["synchronous exception", "IRQ", "FIQ", "SError"];
const ORIGINS: [&str; 4] = ["current EL with SP_EL0", "current EL with SP_ELx", "lower EL, AArch64", "lower EL, AArch32"];

/// A range of code the dump names a faulting address by: [start, end), 0 while unknown.
struct Known {
    start: AtomicU64,
    end: AtomicU64,
    /// The image handle, for loaded images.
    handle: AtomicU64,
}

impl Known {
    const fn new() -> Self {
        Known { start: AtomicU64::new(0), end: AtomicU64::new(0), handle: AtomicU64::new(0) }
    }

    fn set(&self, start: u64, end: u64, handle: u64) {
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.handle.store(handle, Ordering::Relaxed);
    }

    /// `a`'s offset in the range, when it lies there.
    fn offset_of(&self, a: u64) -> Option<u64> {
        let (s, e) = (self.start.load(Ordering::Relaxed), self.end.load(Ordering::Relaxed));
        (s != 0 && a >= s && a < e).then(|| a - s)
    }
}

/// Images the core loaded, so a fault inside one is named.
const MAX_IMAGES: usize = 8;

/// What the fault dump knows. Atomics, not a [`crate::cell::BootCell`]: the dump reads them in an
/// exception, which may have struck while a cell was borrowed.
struct FaultContext {
    blob: Known,
    kernel: Known,
    images: [Known; MAX_IMAGES],
    /// Set while dumping: a second exception then stops at one line.
    in_dump: AtomicBool,
}

static CONTEXT: FaultContext = FaultContext { blob: Known::new(), kernel: Known::new(), images: [const { Known::new() }; MAX_IMAGES], in_dump: AtomicBool::new(false) };

/// Remembers a loaded image for the fault dump (the newest replaces the last slot when full).
pub fn register_image(start: u64, size: u64, handle: u64) {
    let images = &CONTEXT.images;
    let slot = images.iter().position(|s| s.end.load(Ordering::Relaxed) == 0).unwrap_or(MAX_IMAGES - 1);
    images[slot].set(start, start + size, handle);
}

/// Tells the dump where the emulator and the payload image are.
pub fn set_known_images(blob: (u64, u64), kernel: (u64, u64)) {
    CONTEXT.blob.set(blob.0, blob.1, 0);
    CONTEXT.kernel.set(kernel.0, kernel.1, 0);
}

/// `efi-emulator+0x1234`, `kernel image+0x1234`, or nothing.
struct Whereabouts(u64);

impl core::fmt::Display for Whereabouts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.0;
        if let Some(off) = CONTEXT.blob.offset_of(a) {
            write!(f, " = efi-emulator+{off:#x}")
        } else if let Some((off, image)) = CONTEXT.images.iter().find_map(|s| s.offset_of(a).map(|o| (o, s))) {
            write!(f, " = loaded image {:#x} (at {:#x})+{off:#x}", image.handle.load(Ordering::Relaxed), image.start.load(Ordering::Relaxed))
        } else if let Some(off) = CONTEXT.kernel.offset_of(a) {
            write!(f, " = kernel image+{off:#x}")
        } else {
            Ok(())
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn efi_emulator_exception(kind: u64, frame: &Frame) -> ! {
    let el = ExceptionLevel::current();
    let (esr, elr, far, spsr) = match el {
        ExceptionLevel::El1 => (ESR_EL1.get(), ELR_EL1.get(), FAR_EL1.get(), SPSR_EL1.get()),
        ExceptionLevel::El2 { .. } => (ESR_EL2.get(), ELR_EL2.get(), FAR_EL2.get(), SPSR_EL2.get()),
    };
    let mut out = Console;
    if CONTEXT.in_dump.swap(true, Ordering::Relaxed) {
        let _ = writeln!(out, "efi-emulator: fatal: exception while dumping an exception (ESR {esr:#x} ELR {elr:#x} FAR {far:#x})");
        super::psci::system_off();
    }
    let kind = kind as usize;
    let _ = writeln!(out, "efi-emulator: fatal: {} from {} at {el}", KINDS[kind % 4], ORIGINS[kind / 4 % 4]);
    let _ = writeln!(out, "  ESR  {esr:#018x}  {}", esr::Decoded(esr));
    let _ = writeln!(out, "  ELR  {elr:#018x}{}", Whereabouts(elr));
    let far_valid = matches!(esr::class(esr), 0x20 | 0x21 | 0x22 | 0x24 | 0x25 | 0x34 | 0x35);
    let _ = writeln!(out, "  FAR  {far:#018x}{}{}", Whereabouts(far), if far_valid { "" } else { " (not valid for this class)" });
    let _ = writeln!(out, "  SPSR {spsr:#018x}  SP {:#018x}", frame.sp);
    for row in 0..8 {
        let _ = write!(out, " ");
        for col in 0..4 {
            let i = row * 4 + col;
            if i < 31 {
                let _ = write!(out, " x{i:<2} {:#018x}", frame.x[i]);
            }
        }
        let _ = writeln!(out);
    }
    crate::console::fatal(format_args!("unhandled exception"))
}
