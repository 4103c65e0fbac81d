//! What `efi-kexec info` and `load` make of a file before anything is loaded: the loadability
//! check and the classification (Image, zboot, UKI and what its `.linux` holds, application),
//! which a root tool runs on whatever file it is handed. Never a panic, never unbounded.
#![no_main]
use efi_emulator::efi::image_info::{check_loadable, classify};
use efi_emulator::efi::pe::PeImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pe) = PeImage::parse(data) else { return };
    // Classified as parsed (a UKI whose .linux is itself included), and after the full check.
    let kind = classify(data, &pe);
    let _ = kind.to_string();
    if pe.size_of_image <= 64 << 20 {
        if let Ok(loadable) = check_loadable(data) {
            let _ = classify(data, &loadable).to_string();
        }
    }
});
