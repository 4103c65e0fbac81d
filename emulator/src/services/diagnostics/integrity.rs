//! Integrity of what the loader placed: CRC32s of the kernel image, initrd and DTB taken at
//! entry, checked again at ExitBootServices and before any fatal power-off. Opt-in
//! (`/chosen/efi-emulator,integrity`): a CRC over a 40 MB kernel costs time on every boot.
//!
//! A crash kernel's boot always checks a sample of the crashed kernel's RAM (see
//! `abi::crash`): the evidence must reach the crash kernel as the panic left it.

use crate::efi::crc32;
use crate::services::ConsoleOut;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

struct Segment {
    name: &'static str,
    start: AtomicU64,
    len: AtomicU64,
    crc: AtomicU32,
}

static SEGMENTS: [Segment; 3] = [
    Segment { name: "kernel image", start: AtomicU64::new(0), len: AtomicU64::new(0), crc: AtomicU32::new(0) },
    Segment { name: "initrd", start: AtomicU64::new(0), len: AtomicU64::new(0), crc: AtomicU32::new(0) },
    Segment { name: "dtb", start: AtomicU64::new(0), len: AtomicU64::new(0), crc: AtomicU32::new(0) },
];
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The sampled pages of a crashed kernel's RAM and their CRCs at entry.
static PRESERVED: [(AtomicU64, AtomicU32); crate::abi::crash::SAMPLE_PAGES] = [const { (AtomicU64::new(0), AtomicU32::new(0)) }; crate::abi::crash::SAMPLE_PAGES];
static PRESERVED_COUNT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Takes the CRCs of `pages` (MMU off, or the pages mapped): each checked again by [`verify`].
pub fn record_preserved(pages: &[u64]) {
    for (slot, &page) in PRESERVED.iter().zip(pages) {
        slot.0.store(page, Ordering::Relaxed);
        slot.1.store(crc_of(page, crate::mem::PAGE_SIZE), Ordering::Relaxed);
    }
    PRESERVED_COUNT.store(pages.len().min(PRESERVED.len()), Ordering::Relaxed);
}

fn verify_preserved(when: &str) {
    let n = PRESERVED_COUNT.load(Ordering::Relaxed);
    if n == 0 {
        return;
    }
    let changed: Vec<u64> = PRESERVED[..n]
        .iter()
        .filter(|(page, crc)| crc_of(page.load(Ordering::Relaxed), crate::mem::PAGE_SIZE) != crc.load(Ordering::Relaxed))
        .map(|(page, _)| page.load(Ordering::Relaxed))
        .collect();
    match changed.first() {
        None => {
            let _ = writeln!(ConsoleOut, "integrity at {when}: {n} sample pages of the crashed kernel's RAM unchanged");
        }
        Some(first) => {
            let _ = writeln!(ConsoleOut, "integrity at {when}: {} of {n} sample pages of the crashed kernel's RAM CHANGED (the first at {first:#x})", changed.len());
        }
    }
}

/// The kernel runs where the loader put it: its segment is the payload's from then on.
static KERNEL_IN_PLACE: AtomicBool = AtomicBool::new(false);

fn crc_of(start: u64, len: u64) -> u32 {
    // SAFETY: a validated, identity-mapped segment the loader placed.
    crc32::crc32(unsafe { core::slice::from_raw_parts(start as *const u8, len as usize) })
}

/// Takes the CRCs at entry: (start, length) of kernel, initrd (may be empty) and DTB.
pub fn record(segments: [(u64, u64); 3]) {
    for (s, (start, len)) in SEGMENTS.iter().zip(segments) {
        s.start.store(start, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        if len > 0 {
            let crc = crc_of(start, len);
            s.crc.store(crc, Ordering::Relaxed);
            log::info!("integrity at entry: {} {start:#x}+{len:#x} crc32 {crc:#010x}", s.name);
        }
    }
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn kernel_runs_in_place() {
    KERNEL_IN_PLACE.store(true, Ordering::Relaxed);
}

/// Checks every segment again and prints the outcome (even when printing is off, since it may
/// precede a fatal power-off).
pub fn verify(when: &str) {
    verify_preserved(when);
    if !ENABLED.swap(false, Ordering::Relaxed) {
        return;
    }
    for (i, s) in SEGMENTS.iter().enumerate() {
        let (start, len) = (s.start.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
        if len == 0 {
            continue;
        }
        if i == 0 && KERNEL_IN_PLACE.load(Ordering::Relaxed) {
            let _ = writeln!(ConsoleOut, "integrity at {when}: {}: run in place, handed to the payload", s.name);
            continue;
        }
        let (before, now) = (s.crc.load(Ordering::Relaxed), crc_of(start, len));
        let verdict = if before == now { "unchanged" } else { "CHANGED" };
        let _ = writeln!(ConsoleOut, "integrity at {when}: {} crc32 {now:#010x} {verdict}", s.name);
    }
    ENABLED.store(true, Ordering::Relaxed);
}
