//! The emulator's own phases and memory, in one line at ExitBootServices: when the MMU came on,
//! boot services were ready, the payload was entered and it exited boot services (microseconds
//! of the counter since the blob's first instruction), and what of the mempool the emulator
//! took for itself before the handoff. Under `qemu -icount shift=0` the counter is guest time,
//! so these repeat exactly and `cargo xtask bench --suite icount` compares them run to run.
//!
//! The line is printed with the others when printing is on; `/chosen/efi-emulator,timeline`
//! asks for it even with `print_enabled = 0`, after everything it measures.

use crate::efi::platform::Clock;
use crate::services::{ConsoleOut, Machine};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    MmuOn,
    ServicesReady,
    PayloadEntry,
    ExitBootServices,
}

const MILESTONES: [(Milestone, &str); 4] = [
    (Milestone::MmuOn, "MMU on"),
    (Milestone::ServicesReady, "boot services ready"),
    (Milestone::PayloadEntry, "payload entered"),
    (Milestone::ExitBootServices, "ExitBootServices"),
];

/// What the line will say, in atomics: [`mark`] runs from the boot flow and from boot services
/// alike, without a borrow to collide with.
struct Recorded {
    /// Microseconds since entry, plus one (0: not reached), per `MILESTONES` entry.
    marks: [AtomicU64; 4],
    /// Bytes: page tables, the emulator's heap, pages it allocated from the map.
    mempool_use: [AtomicU64; 3],
    always_print: AtomicBool,
}

static RECORDED: Recorded = Recorded { marks: [const { AtomicU64::new(0) }; 4], mempool_use: [const { AtomicU64::new(0) }; 3], always_print: AtomicBool::new(false) };

/// Records that `m` happened now (the first time only).
pub fn mark(m: Milestone) {
    let now = Machine::micros_since_entry() + 1;
    let _ = RECORDED.marks[m as usize].compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
}

/// What of the mempool the emulator used for itself before the payload ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MempoolUse {
    pub page_tables: u64,
    pub heap: u64,
    pub pages: u64,
}

impl MempoolUse {
    pub fn total(&self) -> u64 {
        self.page_tables + self.heap + self.pages
    }
}

pub fn record_mempool_use(u: MempoolUse) {
    for (slot, v) in RECORDED.mempool_use.iter().zip([u.page_tables, u.heap, u.pages]) {
        slot.store(v, Ordering::Relaxed);
    }
}

/// Prints the line at ExitBootServices even when printing is off.
pub fn always_print() {
    RECORDED.always_print.store(true, Ordering::Relaxed);
}

/// The line's content: the milestones reached and the mempool use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Microseconds since entry, per `MILESTONES` entry.
    pub marks: [Option<u64>; 4],
    pub mempool: MempoolUse,
}

impl Timeline {
    pub fn now() -> Self {
        let marks = core::array::from_fn(|i| RECORDED.marks[i].load(Ordering::Relaxed).checked_sub(1));
        let [page_tables, heap, pages] = core::array::from_fn(|i| RECORDED.mempool_use[i].load(Ordering::Relaxed));
        Timeline { marks, mempool: MempoolUse { page_tables, heap, pages } }
    }
}

/// Microseconds shown as milliseconds.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{:03} ms", self.0 / 1000, self.0 % 1000)
    }
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("timeline:")?;
        let mut first = true;
        for ((_, name), us) in MILESTONES.iter().zip(self.marks) {
            if let Some(us) = us {
                write!(f, "{} {name} {}", if first { "" } else { "," }, Ms(us))?;
                first = false;
            }
        }
        let m = &self.mempool;
        write!(f, "; mempool used by the emulator: {} KiB (page tables {} KiB, heap {} KiB, pages {} KiB)", kib(m.total()), kib(m.page_tables), kib(m.heap), kib(m.pages))
    }
}

/// At ExitBootServices: the line, through the log or, when asked for, the raw console.
pub fn report() {
    mark(Milestone::ExitBootServices);
    let t = Timeline::now();
    if log::log_enabled!(log::Level::Info) {
        log::info!("{t}");
    } else if RECORDED.always_print.load(Ordering::Relaxed) {
        let _ = writeln!(ConsoleOut, "efi-emulator {t}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_each_milestone_reached_and_the_mempool_use() {
        let t = Timeline { marks: [Some(1_234), Some(2_500), None, Some(51_020)], mempool: MempoolUse { page_tables: 40 << 10, heap: 100_000, pages: 3 << 12 } };
        assert_eq!(
            t.to_string(),
            "timeline: MMU on 1.234 ms, boot services ready 2.500 ms, ExitBootServices 51.020 ms; mempool used by the emulator: 150 KiB (page tables 40 KiB, heap 98 KiB, pages 12 KiB)"
        );
    }
}
