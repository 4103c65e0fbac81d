//! The EFI/Tiano decompressor on arbitrary data: refused or decoded to the declared size, never
//! a panic or a write past the output.
#![no_main]
use efi_emulator::efi::decompress::{decompress, sizes, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_, orig)) = sizes(data) else { return };
    // Bounded: the header may claim up to 4 GiB.
    if orig > 1 << 20 {
        return;
    }
    let mut out = vec![0u8; orig];
    for version in [Version::Efi, Version::Tiano] {
        if let Ok(n) = decompress(data, &mut out, version) {
            assert_eq!(n, orig);
        }
    }
});
