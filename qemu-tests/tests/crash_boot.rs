//! A crash kernel's boot through the kexec hand-off (the loader's `-p` layout, no real panic):
//! the emulator confines itself and its payload to `linux,usable-memory-range`, leaves the rest
//! of RAM reserved and unmapped, and proves a sample of it unchanged at ExitBootServices.

use qemu_tests::{boot, options, payloads, EntryEl};
use xtask::harness::run::verdict;

fn confined(el: EntryEl) {
    let mut o = options(el);
    o.kernel = Some(payloads().kernel("6.12").unwrap().image.clone());
    o.crash_region = Some(256 << 20);
    o.timeout = std::time::Duration::from_secs(120);
    let t = boot(o);
    verdict(&t).unwrap();
    assert!(t.contains("crash kernel: confined to 256 MiB"), "the emulator saw the crash boot");
    assert!(t.contains("integrity at ExitBootServices: 64 sample pages of the crashed kernel's RAM unchanged"));
    // The crash kernel got the region and nothing else.
    let mem = t.lines.iter().find_map(|(_, l)| l.strip_prefix("efi-emulator-test: memtotal: MemTotal: ")).expect("memtotal");
    let kib: u64 = mem.trim_end_matches(" kB").trim().parse().unwrap();
    assert!(kib <= 256 * 1024, "MemTotal {kib} kB within the 256 MiB region");
    // The crash kernel took the ELF core header the loader placed, with its vmcoreinfo note.
    assert!(t.contains("for elfcorehdr"), "the crash kernel reserved the header");
    assert!(!t.contains("vmcore not initialized") && !t.contains("WARNING:"), "/proc/vmcore was set up from it");
}

#[test]
fn crash_boot_is_confined_at_el1() {
    confined(EntryEl::El1);
}

#[test]
fn crash_boot_is_confined_at_el2() {
    confined(EntryEl::El2);
}
