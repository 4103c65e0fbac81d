//! The blob takes the kexec hand-off at every exception level, with Debian's kernels as the
//! kernel image, and stops cleanly.

use qemu_tests::{boot, options, payloads, EntryEl};
use std::time::Duration;
use xtask::run::verdict;

fn reaches_banner_and_stops(el: EntryEl, expected: &str) {
    let t = boot(options(el));
    let banner = t.find("efi-emulator 0.").expect("banner");
    assert!(banner.1.contains(&format!("running at {expected}")), "{}", banner.1);
    assert!(t.contains("mmu: identity map on, caches on"));
    assert!(t.contains("kernel image: Linux arm64 Image with EFI stub"));
    assert!(t.contains("  initrd "), "the initrd from /chosen is reported");
    assert!(t.contains("cmdline (66 B UTF-16): \"console=ttyAMA0 earlycon panic=-1\""));
    assert!(t.contains("no payload started"));
    assert!(t.powered_off(), "PSCI SYSTEM_OFF ends QEMU");
    verdict(&t).unwrap();
    eprintln!("QEMU start to banner at {expected}: {:.3} s", banner.0.as_secs_f64());
}

#[test]
fn el1() {
    reaches_banner_and_stops(EntryEl::El1, "EL1");
}

#[test]
fn el2_nvhe() {
    reaches_banner_and_stops(EntryEl::El2, "EL2 (nVHE, HCR_EL2.E2H=0)");
}

#[test]
fn el2_vhe() {
    reaches_banner_and_stops(EntryEl::El2Vhe, "EL2 (VHE, HCR_EL2.E2H=1)");
}

#[test]
fn debian_6_1_kernel_is_described() {
    let mut o = options(EntryEl::El1);
    o.kernel = Some(payloads().kernel("6.1").unwrap().image.clone());
    let t = boot(o);
    assert!(t.contains("kernel image: Linux arm64 Image with EFI stub 1.0"), "6.1 has stub version 1.0");
    assert!(t.contains("section .text "));
    verdict(&t).unwrap();
}

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
    assert!(t.powered_off());
    assert!(t.lines.iter().all(|(_, l)| l.trim().is_empty() || l.starts_with("qemu:")), "nothing printed");
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
