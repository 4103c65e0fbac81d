//! Hostile payloads: every bad service call gets the status the UEFI spec prescribes, and a
//! payload's own fault is dumped with the image and offset it happened in.

use qemu_tests::{boot, misbehave, options, EntryEl};

#[test]
fn misbehaving_payload_gets_spec_statuses_and_its_fault_is_named() {
    // GICv2 at EL1 and EL2 (VHE), GICv3 at EL1 and EL2 (nVHE): the tick runs on each.
    for (el, gic) in [(EntryEl::El1, 2), (EntryEl::El2Vhe, 2), (EntryEl::El1, 3), (EntryEl::El2, 3)] {
        let mut o = options(el);
        o.kernel = Some(misbehave().clone());
        o.no_initrd = true;
        o.gic = gic;
        let t = boot(o);
        let timer = if el == EntryEl::El1 { "INTID 27 (virtual timer)" } else { "INTID 26 (EL2 physical timer)" };
        assert!(t.contains(&format!("tick: every 10 ms on {timer}, GICv{gic}")), "the tick runs on GICv{gic} at {el:?}");
        let failures: Vec<_> = t.lines.iter().filter(|(_, l)| l.starts_with("misbehave: FAIL")).map(|(_, l)| l.clone()).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        let summary = t.find("misbehave: ").map(|_| ()).and_then(|_| t.lines.iter().find(|(_, l)| l.contains(" passed, ")).map(|(_, l)| l.clone())).expect("summary");
        let passed: u32 = summary.trim_start_matches("misbehave: ").split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 102, "{summary}");
        assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
        // The deliberate data abort: decoded, and placed inside the payload's loaded image.
        assert!(t.contains("EC 0x25 data abort from the current EL: translation fault at level 0"));
        let elr = t.find("  ELR  ").expect("ELR");
        assert!(elr.1.contains("= loaded image 0x"), "{}", elr.1);
        assert!(t.contains("  FAR  0x0000dead00000000"));
        assert!(t.powered_off(), "powered off after the dump");
    }
}

fn crc_of_file(path: &std::path::Path) -> u32 {
    efi_emulator::efi::crc32::crc32(&std::fs::read(path).unwrap())
}

fn integrity_line<'a>(t: &'a xtask::harness::qemu::Transcript, when: &str, what: &str) -> &'a str {
    let prefix = format!("integrity at {when}: {what}");
    t.lines.iter().find(|(_, l)| l.contains(&prefix)).map(|(_, l)| l.as_str()).unwrap_or_else(|| panic!("no {prefix:?}"))
}

#[test]
fn segments_are_untouched_up_to_exit_boot_services() {
    let p = qemu_tests::payloads();
    // The plain kernel runs in place (its segment is handed over); the initrd and DTB stay.
    let mut o = options(EntryEl::El1);
    o.integrity = true;
    let t = boot(o);
    xtask::harness::run::verdict(&t).unwrap();
    let kernel = p.kernel("6.12").unwrap();
    assert!(integrity_line(&t, "entry", "kernel image").ends_with(&format!("crc32 {:#010x}", crc_of_file(&kernel.image))));
    assert!(integrity_line(&t, "entry", "initrd").ends_with(&format!("crc32 {:#010x}", crc_of_file(&p.initramfs))));
    assert!(integrity_line(&t, "ExitBootServices", "initrd").ends_with("unchanged"));
    assert!(integrity_line(&t, "ExitBootServices", "dtb").ends_with("unchanged"));
    assert!(integrity_line(&t, "ExitBootServices", "kernel image").ends_with("run in place, handed to the payload"));
    // A UKI is copied: its file stays as the loader placed it.
    let u = p.uki("254+6.12").unwrap();
    let mut o = options(EntryEl::El2);
    o.integrity = true;
    o.kernel = Some(u.path.clone());
    o.no_initrd = true;
    o.append = String::new();
    let t = boot(o);
    xtask::harness::run::verdict(&t).unwrap();
    assert!(integrity_line(&t, "entry", "kernel image").ends_with(&format!("crc32 {:#010x}", crc_of_file(&u.path))));
    assert!(integrity_line(&t, "ExitBootServices", "kernel image").ends_with("unchanged"));
    assert!(integrity_line(&t, "ExitBootServices", "dtb").ends_with("unchanged"));
}

#[test]
fn segments_are_untouched_after_a_failed_boot() {
    // The misbehaving payload faults after ExitBootServices: the fatal path checks again.
    let mut o = options(EntryEl::El1);
    o.integrity = true;
    o.kernel = Some(misbehave().clone());
    o.no_initrd = true;
    let t = boot(o);
    assert!(t.contains("efi-emulator: fatal: "));
    assert!(integrity_line(&t, "power-off", "kernel image").ends_with("unchanged"));
    assert!(integrity_line(&t, "power-off", "dtb").ends_with("unchanged"));
}

#[test]
fn a_mempool_too_small_for_the_image_is_reported() {
    let u = qemu_tests::payloads().uki("252+6.1").unwrap();
    let mut o = options(EntryEl::El1);
    o.kernel = Some(u.path.clone());
    o.no_initrd = true;
    o.append = String::new();
    o.integrity = true;
    o.tweak = Some(std::sync::Arc::new(|img| {
        // 16 MiB of conventional memory, less than the UKI needs; the rest of the old pool
        // joins the occupied memory above it.
        let pool = 16 << 20;
        let given_back = (img.param.mempool_sz - pool) / 4096;
        img.param.mempool_sz = pool;
        img.map[1].number_of_pages = pool / 4096;
        img.map[2].physical_start = img.param.mempool_start + pool;
        img.map[2].number_of_pages += given_back;
    }));
    let t = boot(o);
    assert!(t.find("no room for the image: ").is_some(), "the shortage is explained");
    let fatal = t.find("efi-emulator: fatal: ").expect("fatal line");
    assert!(fatal.1.contains("EFI_OUT_OF_RESOURCES"), "{}", fatal.1);
    assert!(integrity_line(&t, "power-off", "kernel image").ends_with("unchanged"), "nothing overwritten");
    assert!(t.powered_off());
}

#[test]
fn exit_unwinds_to_start_image_with_its_exit_data() {
    let mut o = options(EntryEl::El2);
    o.kernel = Some(misbehave().clone());
    o.no_initrd = true;
    o.append = "exit".into();
    let t = boot(o);
    assert!(t.contains("misbehave: calling Exit with EFI_ABORTED"));
    assert!(!t.contains("misbehave: FAIL"));
    let fatal = t.find("efi-emulator: fatal: ").expect("the emulator reports the return");
    assert!(fatal.1.contains("the payload returned EFI_ABORTED") && fatal.1.contains("with exit data \"misbehave exit data\""), "{}", fatal.1);
    assert!(t.powered_off());
}
