//! Hostile payloads: every bad service call gets the status the UEFI spec prescribes, and a
//! payload's own fault is dumped with the image and offset it happened in.

use qemu_tests::{boot, misbehave, options, EntryEl};

#[test]
fn misbehaving_payload_gets_spec_statuses_and_its_fault_is_named() {
    for el in [EntryEl::El1, EntryEl::El2Vhe] {
        let mut o = options(el);
        o.kernel = Some(misbehave().clone());
        o.no_initrd = true;
        let t = boot(o);
        let failures: Vec<_> = t.lines.iter().filter(|(_, l)| l.starts_with("misbehave: FAIL")).map(|(_, l)| l.clone()).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        let summary = t.find("misbehave: ").map(|_| ()).and_then(|_| t.lines.iter().find(|(_, l)| l.contains(" passed, ")).map(|(_, l)| l.clone())).expect("summary");
        let passed: u32 = summary.trim_start_matches("misbehave: ").split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 49, "{summary}");
        assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
        // The deliberate data abort: decoded, and placed inside the payload's loaded image.
        assert!(t.contains("EC 0x25 data abort from the current EL: translation fault at level 0"));
        let elr = t.find("  ELR  ").expect("ELR");
        assert!(elr.1.contains("= loaded image 0x"), "{}", elr.1);
        assert!(t.contains("  FAR  0x0000dead00000000"));
        assert!(t.powered_off(), "powered off after the dump");
    }
}
