//! The Authenticode digest and the certificate table walk on arbitrary PE files: an error or a
//! digest, never a panic; every certificate lies inside the file.
#![no_main]
use efi_emulator::efi::secure_boot::authenticode::{certificates, digest};
use efi_emulator::efi::pe::PeImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pe) = PeImage::parse(data) else { return };
    let _ = digest::<sha2::Sha256>(&pe);
    for c in certificates(&pe).take(64) {
        let Ok(c) = c else { break };
        let start = c.data.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + c.data.len() <= data.len());
    }
});
