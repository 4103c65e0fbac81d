//! Bulk copies and fills at the CPU's best speed: the kernel image a loader did not place where
//! it runs (tens of MB), BSS, CopyMem and SetMem. With FEAT_MOPS the CPU (or QEMU, in one
//! helper call per page) does the whole job in three instructions; without it, 64 bytes per
//! loop turn through the SIMD registers, where the library's generic byte and word loops took
//! eight times the instructions. On the host these are the library's own.

/// Copies `src` into `dst`; they must have the same length (and cannot overlap: borrows).
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "bulk copy of unequal lengths");
    // SAFETY: two valid, distinct slices of `len` bytes.
    unsafe { imp::copy_forward(dst.as_mut_ptr(), src.as_ptr(), dst.len()) }
}

/// Sets every byte of `dst` to `value`.
pub fn fill(dst: &mut [u8], value: u8) {
    // SAFETY: a valid slice of `len` bytes.
    unsafe { imp::fill(dst.as_mut_ptr(), value, dst.len()) }
}

/// Sets `len` bytes from `dst` to `value` (SetMem).
///
/// # Safety
/// The range must be valid for writes of `len` bytes.
pub unsafe fn fill_raw(dst: *mut u8, value: u8, len: usize) {
    // SAFETY: per the contract.
    unsafe { imp::fill(dst, value, len) }
}

/// Copies `len` bytes from `src` to `dst`, which may overlap (memmove).
///
/// # Safety
/// Both ranges must be valid for `len` bytes.
pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: per the contract.
    unsafe { imp::copy_overlapping(dst, src, len) }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    pub unsafe fn copy_forward(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
    }
    pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy(src, dst, len) }
    }
    pub unsafe fn fill(dst: *mut u8, value: u8, len: usize) {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(dst, value, len) }
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU8, Ordering};

    /// 0: not looked at yet, 1: no FEAT_MOPS, 2: FEAT_MOPS.
    static MOPS: AtomicU8 = AtomicU8::new(0);

    /// Below this many bytes the plain copy is as good, and the wide loop needs a whole block.
    const WIDE: usize = 256;

    fn has_mops() -> bool {
        match MOPS.load(Ordering::Relaxed) {
            0 => {
                let isar2: u64;
                // SAFETY: ID_AA64ISAR2_EL1 (by its encoding, for older assemblers) is readable
                // at EL1 and EL2 and has no side effects.
                unsafe { asm!("mrs {}, s3_0_c0_c6_2", out(reg) isar2, options(nomem, nostack, preserves_flags)) };
                let yes = (isar2 >> 16) & 0xf != 0;
                MOPS.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            v => v == 2,
        }
    }

    pub unsafe fn copy_forward(dst: *mut u8, src: *const u8, len: usize) {
        if has_mops() {
            // SAFETY: FEAT_MOPS is present (ID_AA64ISAR2_EL1.MOPS), which makes the CPYF*
            // instructions usable at EL1 and EL2; they copy `len` bytes forward between the
            // caller's non-overlapping ranges, updating the three registers as they go.
            unsafe {
                asm!(
                    ".arch_extension mops",
                    "cpyfp [{d}]!, [{s}]!, {n}!",
                    "cpyfm [{d}]!, [{s}]!, {n}!",
                    "cpyfe [{d}]!, [{s}]!, {n}!",
                    d = inout(reg) dst => _, s = inout(reg) src => _, n = inout(reg) len => _,
                    options(nostack)
                )
            };
            return;
        }
        if len < WIDE {
            // SAFETY: the caller's contract.
            unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
            return;
        }
        let blocks = len / 64;
        // SAFETY: `blocks * 64 <= len` bytes from `src` to `dst`, which do not overlap; the
        // MMU is on (Normal memory, SCTLR.A clear), so unaligned SIMD accesses are allowed, and
        // FP/SIMD does not trap (entry sets CPACR/CPTR).
        unsafe {
            asm!(
                "2:",
                "ldp q0, q1, [{s}], #32",
                "ldp q2, q3, [{s}], #32",
                "stp q0, q1, [{d}], #32",
                "stp q2, q3, [{d}], #32",
                "subs {b}, {b}, #1",
                "b.ne 2b",
                d = inout(reg) dst => _, s = inout(reg) src => _, b = inout(reg) blocks => _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                options(nostack)
            );
            let done = blocks * 64;
            core::ptr::copy_nonoverlapping(src.add(done), dst.add(done), len - done);
        }
    }

    pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, len: usize) {
        if has_mops() {
            // SAFETY: as in copy_forward; CPYP/CPYM/CPYE pick the direction themselves, so
            // the ranges may overlap.
            unsafe {
                asm!(
                    ".arch_extension mops",
                    "cpyp [{d}]!, [{s}]!, {n}!",
                    "cpym [{d}]!, [{s}]!, {n}!",
                    "cpye [{d}]!, [{s}]!, {n}!",
                    d = inout(reg) dst => _, s = inout(reg) src => _, n = inout(reg) len => _,
                    options(nostack)
                )
            };
            return;
        }
        if src as usize >= dst as usize + len || dst as usize >= src as usize + len {
            // SAFETY: disjoint, and valid per the caller's contract.
            unsafe { copy_forward(dst, src, len) };
        } else {
            // SAFETY: the caller's contract; `copy` handles the overlap.
            unsafe { core::ptr::copy(src, dst, len) };
        }
    }

    pub unsafe fn fill(dst: *mut u8, value: u8, len: usize) {
        if has_mops() {
            // SAFETY: FEAT_MOPS is present; SETP/SETM/SETE write `len` bytes of the low byte
            // of `v` from `dst`.
            unsafe {
                asm!(
                    ".arch_extension mops",
                    "setp [{d}]!, {n}!, {v}",
                    "setm [{d}]!, {n}!, {v}",
                    "sete [{d}]!, {n}!, {v}",
                    d = inout(reg) dst => _, n = inout(reg) len => _, v = in(reg) value as u64,
                    options(nostack)
                )
            };
            return;
        }
        if len < WIDE {
            // SAFETY: the caller's contract.
            unsafe { core::ptr::write_bytes(dst, value, len) };
            return;
        }
        let blocks = len / 64;
        // SAFETY: `blocks * 64 <= len` bytes from `dst`; see copy_forward for the SIMD access.
        unsafe {
            asm!(
                "dup v0.16b, {v:w}",
                "mov v1.16b, v0.16b",
                "2:",
                "stp q0, q1, [{d}], #32",
                "stp q0, q1, [{d}], #32",
                "subs {b}, {b}, #1",
                "b.ne 2b",
                d = inout(reg) dst => _, b = inout(reg) blocks => _, v = in(reg) value as u32,
                out("v0") _, out("v1") _,
                options(nostack)
            );
            let done = blocks * 64;
            core::ptr::write_bytes(dst.add(done), value, len - done);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copies_and_fills() {
        let src: std::vec::Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut dst = [0u8; 1000];
        super::copy(&mut dst, &src);
        assert_eq!(&dst[..], &src[..]);
        super::fill(&mut dst[3..997], 0xa5);
        assert!(dst[3..997].iter().all(|&b| b == 0xa5) && dst[2] == 2 && dst[997] == 229);
        // SAFETY: both ranges lie in `dst`.
        unsafe { super::copy_overlapping(dst.as_mut_ptr().add(1), dst.as_ptr(), 10) };
        assert_eq!(&dst[..4], &[0, 0, 1, 2]);
    }
}
