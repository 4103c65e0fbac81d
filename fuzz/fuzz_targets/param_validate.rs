//! The parameter-block validator on arbitrary blocks, maps and DTBs.
#![no_main]
use efi_emulator::abi::validate::{validate, BlobPlacement, PhysMemory};
use libfuzzer_sys::fuzz_target;

const PARAM: u64 = 0x4100_0000;
const DTB: u64 = 0x4200_0000;

/// The input split in two: the param segment at PARAM, the rest as a DTB at DTB.
struct Memory<'a> {
    param: &'a [u8],
    dtb: &'a [u8],
}

impl PhysMemory for Memory<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        for (base, data) in [(PARAM, self.param), (DTB, self.dtb)] {
            if let Some(off) = addr.checked_sub(base) {
                if let Some(s) = data.get(off as usize..(off as usize).checked_add(len)?) {
                    return Some(s);
                }
            }
        }
        None
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2) + 2;
    let mut param = data[2..split].to_vec();
    // Point the block's DTB field at the DTB half, so the DT checks are reached too.
    if param.len() >= 1120 && data[0] & 1 == 1 {
        param[1112..1120].copy_from_slice(&DTB.to_le_bytes());
    }
    let mem = Memory { param: &param, dtb: &data[split..] };
    let _ = validate(&mem, PARAM, BlobPlacement { start: 0x4300_0000, mem_size: 0x2_0000 }, &mut |_| {});
});
