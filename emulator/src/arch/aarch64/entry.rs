//! The first instructions: the blob header, then what must happen before any Rust code runs.
//!
//! Kept to the minimum in assembly: remember the entry time and `x0`, take a stack, install our
//! vectors, enable FP/SIMD (Rust code uses NEON registers), apply our own `R_AARCH64_RELATIVE`
//! relocations (RELA and packed RELR) and zero `.bss`. Everything else is Rust.
//!
//! x18: the precompiled `core` for `aarch64-unknown-none` treats x18 as an ordinary scratch
//! register, so emulator code may clobber it. We do not rebuild `core` with x18 reserved (that
//! needs a nightly toolchain); instead every entry *from a payload* into emulator code must go
//! through a shim that saves x18 on entry and restores it before returning (the boot and runtime
//! service shims of the UEFI core). Nothing here returns to a caller, so entry needs no shim.

use super::memory_plan::BlobLayout;
use crate::abi::{ABI_VERSION, BLOB_FLAG_PARAM_SLOT, BLOB_FLAG_POSITION_INDEPENDENT, BLOB_HEADER_SIZE, MIN_STACK_SIZE};

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       1f                      // code0: branch over the header
    .word   __emulator_text_size    // text_size: bytes of code (reserved0 before)
    .ascii  "EFIEMU64"              // magic
    .word   {abi_version}
    .word   {header_size}
    .quad   __emulator_file_size
    .quad   __emulator_mem_size
    .quad   {stack_size}
    .quad   0                       // entry_offset
    .word   {flags}
    .word   0                       // reserved1
__param_slot:
    .quad   0                       // param_slot: a loader that enters with x0 = 0 fills it

1:  mrs     x21, cntpct_el0         // entry time, for the boot timing
    cbnz    x0, 11f                 // x0 = 0 (arm64 kexec_load): the block is in param_slot
    ldr     x0, __param_slot
11: mov     x19, x0                 // the parameter block
    adr     x20, _start             // where we run: the relocation base

    // A stack we own until the parameter block is known good enough to read.
    msr     spsel, #1
    adrp    x1, __boot_stack_top
    add     x1, x1, :lo12:__boot_stack_top
    mov     sp, x1

    // Our vectors replace the old kernel's, which are unmapped virtual addresses now.
    adrp    x1, __exception_vectors
    add     x1, x1, :lo12:__exception_vectors
    mrs     x2, CurrentEL
    cmp     x2, #(2 << 2)
    b.eq    2f
    msr     vbar_el1, x1
    mov     x3, #(3 << 20)          // CPACR_EL1.FPEN: no FP/SIMD traps at EL1
    msr     cpacr_el1, x3
    b       3f
2:  msr     vbar_el2, x1
    mrs     x3, hcr_el2
    tbnz    x3, #34, 4f             // HCR_EL2.E2H: CPTR_EL2 has the CPACR layout
    mrs     x3, cptr_el2
    bic     x3, x3, #(1 << 10)      // CPTR_EL2.TFP: no FP/SIMD traps to EL2
    msr     cptr_el2, x3
    b       3f
4:  mrs     x3, cpacr_el1           // with E2H, this is CPTR_EL2
    orr     x3, x3, #(3 << 20)
    msr     cpacr_el1, x3
3:  isb

    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend. The build
    // refuses any other dynamic relocation type, so others cannot occur.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
5:  cmp     x1, x2
    b.hs    6f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     w4, #1027               // R_AARCH64_RELATIVE
    b.ne    5b
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       5b

    // The same, packed (RELR, what the linker writes): an even entry is the offset of a word
    // to relocate (*word += base); an odd one is a bitmap of the 63 words after the last
    // relocated one. x6: the offset the next bitmap starts at.
6:  adrp    x1, __relr_start
    add     x1, x1, :lo12:__relr_start
    adrp    x2, __relr_end
    add     x2, x2, :lo12:__relr_end
    mov     x6, xzr
12: cmp     x1, x2
    b.hs    16f
    ldr     x3, [x1], #8
    tbnz    x3, #0, 13f
    ldr     x4, [x20, x3]
    add     x4, x4, x20
    str     x4, [x20, x3]
    add     x6, x3, #8
    b       12b
13: lsr     x3, x3, #1
    mov     x7, x6
14: cbz     x3, 15f
    tbz     x3, #0, 17f
    ldr     x4, [x20, x7]
    add     x4, x4, x20
    str     x4, [x20, x7]
17: lsr     x3, x3, #1
    add     x7, x7, #8
    b       14b
15: add     x6, x6, #(63 * 8)
    b       12b

    // Zero .bss (the boot stack is in it, but nothing is on it yet).
16: adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
7:  cmp     x1, x2
    b.hs    8f
    stp     xzr, xzr, [x1], #16
    b       7b

    // The loader's stack, when the block is where the ABI says and sp looks sane; otherwise
    // stay on the boot stack so Rust can report what is wrong. A device tree at x0
    // (kexec_file_load enters the Image form so) has no sp: Rust makes a block and restarts.
8:  cbz     x19, 9f
    tst     x19, #0x7
    b.ne    9f
    ldr     w1, [x19]
    movz    w2, #0x0dd0
    movk    w2, #0xedfe, lsl #16    // the FDT magic 0xd00dfeed, big endian, as a 32-bit load sees it
    cmp     w1, w2
    b.eq    9f
    tst     x19, #0xfff
    b.ne    9f
    ldr     x1, [x19]               // param->sp
    cbz     x1, 9f
    tst     x1, #0xf
    b.ne    9f
    mov     sp, x1
9:  mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x29, xzr
    mov     x30, xzr
    bl      efi_emulator_main
10: wfi
    b       10b

    // efi_emulator_restart(param, base, entry_ticks, sp): the boot again from the top, on the
    // stack of a parameter block the emulator made itself (entry with a device tree).
    .global efi_emulator_restart
efi_emulator_restart:
    mov     sp, x3
    mov     x29, xzr
    mov     x30, xzr
    bl      efi_emulator_main
    b       10b

    .section .bss.boot_stack, "aw", %nobits
    .balign 16
__boot_stack:
    .space  {boot_stack_size}
__boot_stack_top:
"#,
    abi_version = const ABI_VERSION,
    header_size = const BLOB_HEADER_SIZE,
    stack_size = const MIN_STACK_SIZE,
    flags = const BLOB_FLAG_POSITION_INDEPENDENT | BLOB_FLAG_PARAM_SLOT,
    boot_stack_size = const BOOT_STACK_SIZE,
);

unsafe extern "C" {
    /// Starts `efi_emulator_main(param, base, entry_ticks)` afresh on the stack at `sp`.
    pub fn efi_emulator_restart(param: u64, base: u64, entry_ticks: u64, sp: u64) -> !;
}

/// Stack used before the parameter block's `sp` is trusted, and when it cannot be.
pub const BOOT_STACK_SIZE: usize = 16 * 1024;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rw_start: u8;
    static __file_end: u8;
    static __mem_end: u8;
}

/// The running blob's parts, from the linker script's symbols.
pub fn blob_layout() -> BlobLayout {
    // Only the addresses of the linker-script symbols are taken, never their contents.
    let base = &raw const __image_start as u64;
    BlobLayout {
        base,
        text_end: &raw const __text_end as u64 - base,
        rw_start: &raw const __rw_start as u64 - base,
        file_end: &raw const __file_end as u64 - base,
        mem_end: &raw const __mem_end as u64 - base,
    }
}
