//! The bad-image corpus: each damaged payload, booted as the kernel, ends with a message that
//! names the failed check, and QEMU powers off within 10 s.

use qemu_tests::{boot, options, payloads, EntryEl};
use std::time::Duration;

fn refused(name: &str) {
    let all = xtask::payloads::corpus::bad_images(payloads()).unwrap();
    let bad = all.iter().find(|b| b.name == name).unwrap();
    let path = std::env::temp_dir().join(format!("efi-emu-bad-{}-{name}.efi", std::process::id()));
    std::fs::write(&path, &bad.bytes).unwrap();
    let mut o = options(EntryEl::El1);
    o.kernel = Some(path.clone());
    o.timeout = Duration::from_secs(20);
    let t = boot(o);
    std::fs::remove_file(&path).unwrap();
    let said = t.lines.iter().find(|(_, l)| l.contains("bad PE image: ") && l.contains(bad.expect));
    assert!(said.is_some(), "{name}: no message naming {:?}", bad.expect);
    let fatal = t.find("efi-emulator: fatal: ").expect("a fatal line");
    assert!(fatal.1.contains("kernel image") || fatal.1.contains("bad PE image"), "{}", fatal.1);
    assert!(t.powered_off() && t.elapsed < Duration::from_secs(10), "{name}: exited cleanly after {:?}", t.elapsed);
}

macro_rules! corpus {
    ($($test:ident: $name:literal;)*) => {$(
        #[test]
        fn $test() {
            refused($name);
        }
    )*};
}

corpus! {
    truncated_kernel: "truncated-kernel";
    truncated_to_dos_header: "truncated-to-dos-header";
    e_lfanew_out_of_range: "e-lfanew-out-of-range";
    wrong_machine: "wrong-machine";
    pe32_not_pe32plus: "pe32-not-pe32plus";
    section_past_size_of_image: "section-past-size-of-image";
    overlapping_sections: "overlapping-sections";
    huge_size_of_image: "huge-size-of-image";
    entry_outside_image: "entry-outside-image";
    relocation_block_out_of_bounds: "relocation-block-out-of-bounds";
    unknown_relocation_type: "unknown-relocation-type";
}
