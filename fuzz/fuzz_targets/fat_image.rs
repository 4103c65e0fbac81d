//! The ESP's FAT reader on arbitrary images: parse, walk the tree, read every file.
#![no_main]
use efi_emulator::efi::fat::{Entry, Fat};
use libfuzzer_sys::fuzz_target;

fn walk(fat: &Fat, dir: &Entry, depth: usize) {
    // A directory may point at an ancestor in a damaged image: the walk here is bounded; the
    // emulator itself only follows the path a caller names.
    if depth > 6 {
        return;
    }
    for e in fat.read_dir(dir).take(256) {
        if e.is_dir() {
            walk(fat, &e, depth + 1);
        } else {
            let mut buf = [0u8; 4096];
            let n = fat.read(&e, 0, &mut buf);
            assert!(n <= e.size as usize);
            let _ = fat.read(&e, e.size as u64 / 2, &mut buf);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(fat) = Fat::new(data) else { return };
    walk(&fat, &fat.root(), 0);
    let _ = fat.label();
    let (total, free) = fat.space();
    assert!(free <= total);
    let path: Vec<u16> = "EFI\\BOOT\\..\\BOOT\\BOOTAA64.EFI".encode_utf16().collect();
    let _ = fat.open(&path);
});
