//! The blob takes the kexec hand-off wherever it is placed, stays silent when asked, and
//! reports its own faults. (Every exception level is covered by the Linux boots.)

use qemu_tests::{boot, options, EntryEl};
use std::time::Duration;
use xtask::harness::run::verdict;

#[test]
fn relocates_itself_to_any_page() {
    // Far from where the loader library puts it, at an odd page: only self-relocation works.
    for (el, addr) in [(EntryEl::El1, 0x7654_3000u64), (EntryEl::El2, 0x5fff_f000)] {
        let mut o = options(el);
        o.tweak = Some(std::sync::Arc::new(move |img| {
            img.emulator.start = addr;
            img.param.load_address = addr;
        }));
        let t = boot(o);
        assert!(t.contains(&format!("blob: {addr:#x}..")), "runs at {addr:#x}");
        verdict(&t).unwrap();
    }
}

#[test]
fn print_disabled_is_silent() {
    let mut o = options(EntryEl::El1);
    o.print = false;
    let t = boot(o);
    verdict(&t).unwrap();
    let first_kernel_line = t.lines.iter().position(|(_, l)| l.starts_with("EFI stub:")).expect("the stub still prints");
    assert!(t.lines[..first_kernel_line].iter().all(|(_, l)| l.trim().is_empty()), "the emulator printed nothing");
    assert!(!t.contains("ExitBootServices: the payload ran"));
    assert!(!t.contains("timeline:"), "the timeline only when asked for");
}

/// `/chosen/efi-emulator,timeline` with printing off: one line after ExitBootServices with the
/// four phases in order, and the same figures on a second run under `-icount` (guest time).
#[test]
fn timeline_with_printing_off_repeats_under_icount() {
    let run = || {
        let mut o = options(EntryEl::El1);
        o.print = false;
        o.timeline = true;
        o.icount = true;
        let t = boot(o);
        verdict(&t).unwrap();
        let (_, line) = t.find("efi-emulator timeline: ").expect("the timeline line").clone();
        let first_kernel_line = t.lines.iter().position(|(_, l)| l.starts_with("EFI stub:")).unwrap();
        assert!(t.lines[..first_kernel_line].iter().all(|(_, l)| l.trim().is_empty()), "nothing else printed");
        line
    };
    let (a, b) = (run(), run());
    let ms = |line: &str, name: &str| -> f64 {
        let rest = line.split(&format!("{name} ")).nth(1).unwrap_or_else(|| panic!("no {name} in {line}"));
        rest.split(" ms").next().unwrap().parse().unwrap()
    };
    let phases = ["MMU on", "boot services ready", "payload entered", "ExitBootServices"].map(|p| ms(&a, p));
    assert!(phases.windows(2).all(|w| w[0] < w[1]), "in order: {a}");
    for p in ["MMU on", "boot services ready", "payload entered"] {
        assert_eq!(ms(&a, p), ms(&b, p), "{p} repeats under -icount:\n{a}\n{b}");
    }
    let kib: u64 = a.split("mempool used by the emulator: ").nth(1).unwrap().split(" KiB").next().unwrap().parse().unwrap();
    assert!(kib > 0 && a.contains("page tables") && a.contains("heap"), "{a}");
}

#[test]
fn fault_dump_names_the_emulator_offset() {
    for (el, kind, class) in [
        (EntryEl::El1, "data-abort", "EC 0x25 data abort from the current EL: translation fault at level 0 (FSC 0x04), read"),
        (EntryEl::El2Vhe, "undefined", "EC 0x00 unknown reason (undefined instruction)"),
        (EntryEl::El2, "data-abort", "EC 0x25 data abort from the current EL"),
    ] {
        let mut o = options(el);
        o.debug_fault = Some(kind.into());
        let t = boot(o);
        assert!(t.contains("efi-emulator: fatal: synchronous exception from current EL with SP_ELx at EL"));
        assert!(t.contains(class), "{kind}: ESR decoded");
        let elr = t.find("  ELR  ").expect("ELR line");
        assert!(elr.1.contains("= efi-emulator+0x"), "ELR placed in the emulator: {}", elr.1);
        if kind == "data-abort" {
            assert!(t.contains("  FAR  0x0000dead00000000"));
        }
        assert!(t.contains("  SPSR ") && t.contains(" x30 0x"), "registers dumped");
        assert!(t.powered_off() && t.elapsed < Duration::from_secs(10), "powered off promptly");
        assert!(verdict(&t).is_err());
    }
}

/// 300 reserved ranges in RAM: a map of over 600 descriptors, which once overflowed the
/// parameter region and the page-table budget (each unmapped hole splits a 2 MiB block).
#[test]
fn a_map_of_hundreds_of_descriptors_boots() {
    let mut o = options(EntryEl::El1);
    o.reserved_ranges = 300;
    let t = boot(o);
    verdict(&t).unwrap();
    let (_, line) = t.find("memory map: ").expect("the map line");
    let n: usize = line.split("memory map: ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(n > 600, "{line}");
    let reserved = t.lines.iter().filter(|(_, l)| l.contains(" Reserved ") || l.contains("ReservedMemoryType")).count();
    assert!(reserved >= 300, "{reserved} reserved descriptors listed");
}
