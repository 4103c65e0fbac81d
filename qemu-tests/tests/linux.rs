//! Debian's signed 6.1 and 6.12 kernels boot to their initramfs through the emulator, at every
//! exception level, on one and two CPUs, with the initrd and command line the loader gave.

use qemu_tests::{boot, options, payloads, EntryEl};
use xtask::harness::run::verdict;

const APPEND: &str = "console=ttyAMA0 earlycon panic=-1 efi_emulator_test=1";

fn boots(series: &str, el: EntryEl, smp: u32) {
    let mut o = options(el);
    o.kernel = Some(payloads().kernel(series).unwrap().image.clone());
    o.smp = smp;
    o.append = APPEND.into();
    o.timeout = std::time::Duration::from_secs(150);
    let t = boot(o);
    verdict(&t).unwrap();
    let banner = t.find("efi-emulator 0.").unwrap();
    let expected_el = match el {
        EntryEl::El1 => "running at EL1",
        EntryEl::El2 => "running at EL2 (nVHE",
        EntryEl::El2Vhe => "running at EL2 (VHE",
    };
    assert!(banner.1.contains(expected_el), "{}", banner.1);
    for line in [
        "EFI stub: Booting Linux Kernel...",
        "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path",
        "EFI stub: Using DTB from configuration table",
        "ExitBootServices: the payload ran",
    ] {
        assert!(t.contains(line), "missing {line:?}");
    }
    let report = |key: &str| t.find(&format!("efi-emulator-test: {key}: ")).map(|(_, l)| l.split_once(": ").unwrap().1.split_once(": ").unwrap().1.to_string()).unwrap_or_default();
    assert!(report("uname -r").starts_with(series), "{}", report("uname -r"));
    assert_eq!(report("cmdline"), APPEND, "/proc/cmdline is what the loader passed");
    assert_eq!(report("efi"), "yes", "/sys/firmware/efi exists");
    assert_eq!(report("cpus"), smp.to_string());
    assert_eq!(report("kaslr"), "KASLR enabled", "-cpu max has FEAT_RNG: KASLR gets a seed");
    // All 1 GiB of RAM reaches the kernel: "Memory: <available>K/1048576K available".
    let mem = t.find("Memory: ").expect("the kernel's memory line");
    assert!(mem.1.contains("/1048576K available"), "{}", mem.1);
    assert!(!t.contains("FIRMWARE BUG"), "the stub found nothing to complain about");
    assert!(!t.contains("corrupted by EFI"), "x18 survives runtime service calls");
    if series == "6.12" {
        // The stub moved the kernel (KASLR) and made its text read-only through the memory
        // attribute protocol, its data never executable.
        assert!(t.contains("memory attributes: set 0x20000 on "), "RO on the relocated kernel's text");
        assert!(t.contains("memory attributes: set 0x4000 on "), "XP on its data");
    }
    assert!(!t.contains("[Firmware Bug]"));
    // No firmware: the kernel reads the clock through GetTime on QEMU's PL031, after
    // ExitBootServices, at the address the memory map published as runtime MMIO.
    assert!(t.contains("GetTime/SetTime on the PL031 at 0x9010000"));
    assert!(t.contains("rtc-efi rtc-efi.0: registered as"), "rtc-efi probes with GetTime");
    assert!(!t.contains("EFI Runtime Services are disabled") && !t.contains("Exception in EFI runtime service"), "and no runtime call faults");
}

macro_rules! matrix {
    ($($name:ident: $series:literal, $el:ident, $smp:literal;)*) => {$(
        #[test]
        fn $name() {
            boots($series, EntryEl::$el, $smp);
        }
    )*};
}

matrix! {
    debian_6_1_el1_smp1: "6.1", El1, 1;
    debian_6_1_el1_smp2: "6.1", El1, 2;
    debian_6_1_el2_smp1: "6.1", El2, 1;
    debian_6_1_el2_smp2: "6.1", El2, 2;
    debian_6_1_el2vhe_smp1: "6.1", El2Vhe, 1;
    debian_6_1_el2vhe_smp2: "6.1", El2Vhe, 2;
    debian_6_12_el1_smp1: "6.12", El1, 1;
    debian_6_12_el1_smp2: "6.12", El1, 2;
    debian_6_12_el2_smp1: "6.12", El2, 1;
    debian_6_12_el2_smp2: "6.12", El2, 2;
    debian_6_12_el2vhe_smp1: "6.12", El2Vhe, 1;
    debian_6_12_el2vhe_smp2: "6.12", El2Vhe, 2;
}

#[test]
fn exit_boot_services_retry_with_a_fresh_map_key() {
    // The map changes under the first ExitBootServices: the stub gets EFI_INVALID_PARAMETER,
    // fetches the map again and its one retry succeeds.
    let mut o = options(EntryEl::El1);
    o.stale_map_key = true;
    let t = boot(o);
    verdict(&t).unwrap();
    let stale = t.find("ExitBootServices with stale map key").expect("the first call was refused");
    let ok = t.find("ExitBootServices: the payload ran").expect("the retry succeeded");
    assert!(stale.0 <= ok.0);
    assert_eq!(t.lines.iter().filter(|(_, l)| l.contains("ExitBootServices: the payload ran")).count(), 1);
}

#[test]
fn kernels_run_in_place_with_wx_sections_without_kaslr() {
    // No KASLR: the stub keeps the kernel where the emulator placed it, i.e. where the loader
    // put the file, with .text read-only+executable and .data never executable; 6.12 enters
    // the kernel with our MMU on.
    for (series, el) in [("6.12", EntryEl::El2Vhe), ("6.1", EntryEl::El1)] {
        let mut o = options(el);
        o.kernel = Some(payloads().kernel(series).unwrap().image.clone());
        o.append = "console=ttyAMA0 earlycon panic=-1 nokaslr".into();
        let t = boot(o);
        verdict(&t).unwrap();
        assert!(t.find("] image: ").is_some_and(|(_, l)| l.contains("run in place")));
        assert!(t.contains("efi-emulator-test: kaslr: KASLR disabled"));
    }
}
