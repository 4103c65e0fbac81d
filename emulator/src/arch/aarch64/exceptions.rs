//! Exception vectors and the fault dump: every exception the emulator takes is fatal.
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
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       __exception_common
    .endr

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
);

/// What the vector stub saved: x0..x30 and the stack pointer before the exception.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub sp: u64,
}

const KINDS: [&str; 4] = ["synchronous exception", "IRQ", "FIQ", "SError"];
const ORIGINS: [&str; 4] = ["current EL with SP_EL0", "current EL with SP_ELx", "lower EL, AArch64", "lower EL, AArch32"];

static BLOB_START: AtomicU64 = AtomicU64::new(0);
static BLOB_END: AtomicU64 = AtomicU64::new(0);
static KERNEL_START: AtomicU64 = AtomicU64::new(0);
static KERNEL_END: AtomicU64 = AtomicU64::new(0);
static IN_DUMP: AtomicBool = AtomicBool::new(false);

/// Images the core loaded (start, end, handle), so a fault inside one is named.
const MAX_IMAGES: usize = 8;
static IMAGES: [(AtomicU64, AtomicU64, AtomicU64); MAX_IMAGES] = [const { (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)) }; MAX_IMAGES];

/// Remembers a loaded image for the fault dump (the oldest is forgotten when full).
pub fn register_image(start: u64, size: u64, handle: u64) {
    let slot = IMAGES.iter().position(|s| s.1.load(Ordering::Relaxed) == 0).unwrap_or(MAX_IMAGES - 1);
    IMAGES[slot].0.store(start, Ordering::Relaxed);
    IMAGES[slot].1.store(start + size, Ordering::Relaxed);
    IMAGES[slot].2.store(handle, Ordering::Relaxed);
}

/// Tells the dump where the emulator and the payload image are.
pub fn set_known_images(blob: (u64, u64), kernel: (u64, u64)) {
    BLOB_START.store(blob.0, Ordering::Relaxed);
    BLOB_END.store(blob.1, Ordering::Relaxed);
    KERNEL_START.store(kernel.0, Ordering::Relaxed);
    KERNEL_END.store(kernel.1, Ordering::Relaxed);
}

/// `efi-emulator+0x1234`, `kernel image+0x1234`, or nothing.
struct Whereabouts(u64);

impl core::fmt::Display for Whereabouts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.0;
        let inside = |s: &AtomicU64, e: &AtomicU64| {
            let (s, e) = (s.load(Ordering::Relaxed), e.load(Ordering::Relaxed));
            (s != 0 && a >= s && a < e).then(|| a - s)
        };
        if let Some(off) = inside(&BLOB_START, &BLOB_END) {
            write!(f, " = efi-emulator+{off:#x}")
        } else if let Some((off, handle, start)) = IMAGES.iter().find_map(|s| inside(&s.0, &s.1).map(|o| (o, s.2.load(Ordering::Relaxed), s.0.load(Ordering::Relaxed)))) {
            write!(f, " = loaded image {handle:#x} (at {start:#x})+{off:#x}")
        } else if let Some(off) = inside(&KERNEL_START, &KERNEL_END) {
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
    if IN_DUMP.swap(true, Ordering::Relaxed) {
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
