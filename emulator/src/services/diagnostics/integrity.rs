//! Integrity of what the loader placed: CRC32s of the kernel image, initrd and DTB taken at
//! entry, checked again at ExitBootServices and before any fatal power-off. Opt-in
//! (`/chosen/efi-emulator,integrity`): a CRC over a 40 MB kernel costs time on every boot.
//!
//! A crash kernel's boot always checks a sample of the crashed kernel's RAM (see
//! `abi::crash`): the evidence must reach the crash kernel as the panic left it.

use crate::abi::crash::SAMPLE_PAGES;
use crate::efi::crc32;
use crate::services::ConsoleOut;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

struct Segment {
    start: AtomicU64,
    len: AtomicU64,
    crc: AtomicU32,
}

impl Segment {
    const fn new() -> Self {
        Segment { start: AtomicU64::new(0), len: AtomicU64::new(0), crc: AtomicU32::new(0) }
    }
}

const SEGMENT_NAMES: [&str; 3] = ["kernel image", "initrd", "dtb"];

/// What is checked, in atomics (all zero at first, so in `.bss`): [`verify`] runs from the fatal hook too, whatever was borrowed
/// when the emulator failed.
struct Integrity {
    /// As [`SEGMENT_NAMES`] names them.
    segments: [Segment; 3],
    /// The segments were recorded (opt-in); cleared while a check runs.
    enabled: AtomicBool,
    /// The kernel runs where the loader put it: its segment is the payload's from then on.
    kernel_in_place: AtomicBool,
    /// The sampled pages of a crashed kernel's RAM and their CRCs at entry.
    preserved: [(AtomicU64, AtomicU32); SAMPLE_PAGES],
    preserved_count: AtomicUsize,
}

static STATE: Integrity = Integrity {
    segments: [const { Segment::new() }; 3],
    enabled: AtomicBool::new(false),
    kernel_in_place: AtomicBool::new(false),
    preserved: [const { (AtomicU64::new(0), AtomicU32::new(0)) }; SAMPLE_PAGES],
    preserved_count: AtomicUsize::new(0),
};

/// Takes the CRCs of `pages` (MMU off, or the pages mapped): each checked again by [`verify`].
pub fn record_preserved(pages: &[u64]) {
    for (slot, &page) in STATE.preserved.iter().zip(pages) {
        slot.0.store(page, Ordering::Relaxed);
        slot.1.store(crc_of(page, crate::mem::PAGE_SIZE), Ordering::Relaxed);
    }
    STATE.preserved_count.store(pages.len().min(STATE.preserved.len()), Ordering::Relaxed);
}

fn verify_preserved(when: &str) {
    let n = STATE.preserved_count.load(Ordering::Relaxed);
    if n == 0 {
        return;
    }
    let changed: Vec<u64> = STATE.preserved[..n]
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

fn crc_of(start: u64, len: u64) -> u32 {
    // SAFETY: a validated, identity-mapped segment the loader placed.
    crc32::crc32(unsafe { core::slice::from_raw_parts(start as *const u8, len as usize) })
}

/// Takes the CRCs at entry: (start, length) of kernel, initrd (may be empty) and DTB.
pub fn record(segments: [(u64, u64); 3]) {
    for ((s, name), (start, len)) in STATE.segments.iter().zip(SEGMENT_NAMES).zip(segments) {
        s.start.store(start, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        if len > 0 {
            let crc = crc_of(start, len);
            s.crc.store(crc, Ordering::Relaxed);
            log::info!("integrity at entry: {name} {start:#x}+{len:#x} crc32 {crc:#010x}");
        }
    }
    STATE.enabled.store(true, Ordering::Relaxed);
}

pub fn kernel_runs_in_place() {
    STATE.kernel_in_place.store(true, Ordering::Relaxed);
}

/// Checks every segment again and prints the outcome (even when printing is off, since it may
/// precede a fatal power-off).
pub fn verify(when: &str) {
    verify_preserved(when);
    if !STATE.enabled.swap(false, Ordering::Relaxed) {
        return;
    }
    for (i, (s, name)) in STATE.segments.iter().zip(SEGMENT_NAMES).enumerate() {
        let (start, len) = (s.start.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
        if len == 0 {
            continue;
        }
        if i == 0 && STATE.kernel_in_place.load(Ordering::Relaxed) {
            let _ = writeln!(ConsoleOut, "integrity at {when}: {name}: run in place, handed to the payload");
            continue;
        }
        let (before, now) = (s.crc.load(Ordering::Relaxed), crc_of(start, len));
        let verdict = if before == now { "unchanged" } else { "CHANGED" };
        let _ = writeln!(ConsoleOut, "integrity at {when}: {name} crc32 {now:#010x} {verdict}");
    }
    STATE.enabled.store(true, Ordering::Relaxed);
}
