//! PE parsing, loading and relocation into a buffer: never a panic, never out of bounds.
#![no_main]
use efi_emulator::efi::pe::PeImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pe) = PeImage::parse(data) else { return };
    let _ = pe.sections().count();
    let _ = pe.directory(5);
    let _ = pe.file_layout_is_memory_layout();
    // Bound the buffer: SizeOfImage is checked to be at most 1 GiB, keep the fuzzer fast.
    if pe.size_of_image > 64 << 20 {
        return;
    }
    let mut mem = vec![0u8; pe.size_of_image as usize];
    let _ = pe.load(&mut mem, 0x4020_0000);
    let mut copy = data.to_vec();
    copy.resize(copy.len().max(pe.size_of_image as usize), 0);
    let _ = pe.prepare_in_place(&mut copy);
});
