//! The variable store under random set/get/next/query sequences: it never panics and keeps
//! what it said it stored.
#![no_main]
use efi_emulator::efi::variables::VariableStore;
use libfuzzer_sys::fuzz_target;
use r_efi::efi::Guid;

/// The store's runtime-memory stand-in, reused by every run (libFuzzer runs one at a time).
static mut BUFFER: [u64; 512] = [0; 512];

fuzz_target!(|data: &[u8]| {
    // SAFETY: one fuzz run at a time uses the buffer; it is 8-byte aligned and lives for good.
    let buf = unsafe { std::slice::from_raw_parts_mut(std::ptr::addr_of_mut!(BUFFER) as *mut u8, 4096) };
    let mut s = VariableStore::new(buf);
    for op in data.chunks(12) {
        if op.len() < 4 {
            break;
        }
        let name: Vec<u16> = (0..(op[1] % 4)).map(|i| b'A' as u16 + ((op[2] as u16 + i as u16) % 3)).collect();
        let guid = Guid::from_fields(op[3] as u32 % 2, 0, 0, 0, 0, &[0; 6]);
        let attrs = [0u32, 2, 6, 7, 0x46, 4, 0x20][op[0] as usize % 7];
        let payload = &op[4..];
        match op[0] % 4 {
            0 | 1 => {
                if s.set(&name, &guid, attrs, payload).is_ok() && attrs & !0x40 != 0 && !payload.is_empty() && attrs & 0x40 == 0 {
                    assert_eq!(s.get(&name, &guid).unwrap().data, payload, "what was stored is read back");
                }
            }
            2 => {
                let _ = s.next(&name, &guid);
            }
            _ => {
                let _ = s.query(attrs);
            }
        }
        let _ = s.iter().count();
    }
});
