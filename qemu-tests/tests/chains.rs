//! Boot chains: systemd UKIs (stub 252 with 6.1, stub 254 with 6.12) and EFI zboot kernels
//! (6.1 through LoadImage on a LoadFile2 device path, 6.12 decompressing in place), each to the
//! userspace marker at EL1 and EL2.

use qemu_tests::{boot, options, payloads, report, EntryEl};
use xtask::harness::run::verdict;

fn uki(name: &str, el: EntryEl) {
    uki_on(name, el, "max");
}

fn uki_on(name: &str, el: EntryEl, cpu: &str) {
    let u = payloads().uki(name).unwrap();
    let mut o = options(el);
    o.cpu = cpu.into();
    o.kernel = Some(u.path.clone());
    o.no_initrd = true;
    o.append = String::new();
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    // efivarfs listed the variables through our runtime services: the kernel checked x18.
    assert!(!t.contains("corrupted by EFI") && !t.contains("[Firmware Bug]") && !t.contains("FIRMWARE BUG"));
    assert!(t.contains("LoadOptions left empty: the UKI uses its own .cmdline"));
    assert_eq!(report(&t, "cmdline"), u.cmdline, "/proc/cmdline is the UKI's .cmdline");
    assert_eq!(report(&t, "initrd"), u.initrd_id, "the initrd came from the UKI");
    assert!(report(&t, "efivars").contains("StubInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), "efivarfs lists the stub's variables");
    assert_eq!(report(&t, "StubInfo"), format!("systemd-stub {}", u.stub_version));
    // Two images: the stub, then the kernel it loaded from its .linux section.
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("] image: ")).count(), 2);
}

fn zboot(series: &str, el: EntryEl) {
    let z = payloads().zboot(series).unwrap();
    let mut o = options(el);
    o.kernel = Some(z.image.clone());
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    assert_eq!(report(&t, "cmdline"), xtask::harness::run::DEFAULT_APPEND);
    assert_eq!(report(&t, "initrd"), "plain");
    assert!(report(&t, "uname -r").starts_with(series));
    let images = t.lines.iter().filter(|(_, l)| l.contains("] image: ")).count();
    if series == "6.1" {
        // The decompressor loads the kernel through LoadImage on its LoadFile2 device path.
        assert_eq!(images, 2, "decompressor and kernel");
        assert!(t.contains("EFI stub: Booting Linux Kernel..."));
    } else {
        assert_eq!(images, 1, "6.12 decompresses and enters the kernel itself");
        assert!(t.contains("EFI stub: Decompressing Linux Kernel..."));
    }
}

#[test]
fn uki_252_with_6_1_at_el1() {
    uki("252+6.1", EntryEl::El1);
}
#[test]
fn uki_252_with_6_1_at_el2() {
    uki("252+6.1", EntryEl::El2);
}
/// Without FEAT_MOPS, the copy of the .linux section and the BSS fill take the SIMD loops.
#[test]
fn uki_252_with_6_1_on_a_cpu_without_mops() {
    uki_on("252+6.1", EntryEl::El1, "cortex-a72");
}
#[test]
fn uki_254_with_6_12_at_el1() {
    uki("254+6.12", EntryEl::El1);
}
#[test]
fn uki_254_with_6_12_at_el2_vhe() {
    uki("254+6.12", EntryEl::El2Vhe);
}
#[test]
fn zboot_6_1_at_el1() {
    zboot("6.1", EntryEl::El1);
}
#[test]
fn zboot_6_1_at_el2() {
    zboot("6.1", EntryEl::El2);
}
#[test]
fn zboot_6_12_at_el1() {
    zboot("6.12", EntryEl::El1);
}
#[test]
fn zboot_6_12_at_el2_vhe() {
    zboot("6.12", EntryEl::El2Vhe);
}
