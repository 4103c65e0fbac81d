//! The DTB reader and the editor's round trip.
#![no_main]
use efi_emulator_loader::dtb_edit::Tree;
use efi_emulator::drivers::fdt::Fdt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(fdt) = Fdt::new(data) else { return };
    let _ = fdt.memory().count();
    let _ = fdt.psci_method();
    let _ = fdt.initrd();
    let _ = fdt.reservations().count();
    let root = fdt.root();
    for n in root.children() {
        let _ = n.reg(root.cells()).count();
        let _ = n.properties().count();
        let _ = n.is_enabled();
        for c in n.children() {
            let _ = c.property_str("compatible");
        }
    }
    let _ = fdt.find("/chosen/nothing@0");
    if let Ok(tree) = Tree::parse(data) {
        let again = Tree::parse(&tree.to_blob()).expect("a serialized tree parses");
        assert_eq!(again, tree);
    }
});
