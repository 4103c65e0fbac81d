//! The ESP's FAT reader on arbitrary images: parse, walk the tree, read every file.
#![no_main]
use efi_emulator::efi::fat::{ChainCursor, DirPlace, Entry, Fat};
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
            // A reader that keeps its place reads what a fresh one reads.
            let mut cursor = ChainCursor::default();
            let (mut at, mut chunk) = (0u64, [0u8; 700]);
            for _ in 0..8 {
                let n = fat.read_at(&e, at, &mut chunk, &mut cursor);
                let mut fresh = [0u8; 700];
                assert_eq!(fat.read(&e, at, &mut fresh), n);
                assert_eq!(chunk[..n], fresh[..n]);
                if n == 0 {
                    break;
                }
                at += n as u64;
            }
        }
    }
    // Listing with a kept place gives the entries a fresh listing gives.
    let mut place = DirPlace::default();
    for fresh in fat.read_dir(dir).take(64) {
        let Some((e, next)) = fat.read_dir_at(dir, place) else { panic!("the kept place ended early") };
        assert_eq!(e, fresh);
        place = next;
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
