//! Device-path reading, node walking and prefix matching.
#![no_main]
use efi_emulator::efi::device_path::{match_prefix, nodes, read, without_end};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `read` trusts that the memory is readable: give it a buffer padded past any node length.
    let mut buf = data.to_vec();
    buf.resize(data.len() + 70 * 1024, 0x7f);
    // SAFETY: `buf` is readable far beyond the longest path `read` accepts.
    let Some(path) = (unsafe { read(buf.as_ptr()) }) else { return };
    let _ = nodes(path).count();
    let prefix = without_end(path);
    if let Some(n) = match_prefix(path, path) {
        assert_eq!(n, prefix.len());
    }
    let half = &path[..path.len() / 2];
    let _ = match_prefix(half, path);
});
