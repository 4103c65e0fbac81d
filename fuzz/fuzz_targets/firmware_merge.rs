//! Completing a parameter block from the firmware (`abi::firmware`): the firmware's memory map
//! merged into the loader's (`merge_maps`, in place, without a heap) and the system table read
//! through physical memory (`complete`), both from hostile bytes: descriptor strides, overlaps,
//! wrapping ranges, a system table whose pointers lead anywhere. Never a panic; a merged map is
//! whole 40-byte descriptors, sorted, within the buffer.
#![no_main]
use efi_emulator::abi::firmware::{complete, merge_maps, StubFacts};
use efi_emulator::abi::validate::PhysMemory;
use efi_emulator::abi::{BlockFields, EfiEmulatorParam};
use efi_emulator::mem::{Descriptors, Extent};
use libfuzzer_sys::fuzz_target;

/// Physical memory: the input's last part, at an address the input chose.
struct Memory(u64, Vec<u8>);

impl PhysMemory for Memory {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.0)?).ok()?;
        self.1.get(off..off.checked_add(len)?)
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    data.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

fn check_merged(buffer: &[u8], len: usize) {
    assert!(len.is_multiple_of(40) && len <= buffer.len());
    let starts: Vec<u64> = Descriptors::new(&buffer[..len], 40).iter().map(|d| d.physical_start).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted");
}

fuzz_target!(|data: &[u8]| {
    // Header: loader map length (descriptors), firmware stride choice, buffer room, mempool.
    if data.len() < 32 {
        return;
    }
    let loader_len = (data[0] as usize % 16) * 40;
    let stride = [40usize, 48, 56, 64, 4096][data[1] as usize % 5];
    let room = (u16::from_le_bytes([data[2], data[3]]) as usize) * 8;
    let mempool = Extent::new(u64_at(data, 4) & !0xfff, u64_at(data, 12) % (1 << 32));
    let system_table = u64_at(data, 20);
    let rest = &data[28..];
    let (loader, rest) = rest.split_at(loader_len.min(rest.len()));
    let fw_len = (rest.len() / 2 / stride) * stride;
    let (firmware, memory) = rest.split_at(fw_len);

    // merge_maps alone.
    let mut buffer = loader.to_vec();
    buffer.resize(loader.len() + room, 0);
    if let Ok(len) = merge_maps(&mut buffer, loader.len(), &Descriptors::new(firmware, stride), mempool) {
        check_merged(&buffer, len);
    }

    // The whole completion, with the system table in the input's memory.
    let fields = BlockFields {
        sp: 0x8000_0000,
        load_address: 0x4008_0000,
        cmdline: &[],
        firmware: true,
        print: false,
        earlycon_name: "pl011",
        uart: (0x900_0000, 0x1000),
        kernel: Extent::new(0x4100_0000, 0x10_0000),
        dtb: 0x4800_0000,
        mempool,
        map_size: loader.len() as u64,
        buff_size: (loader.len() + room) as u64,
    };
    let mut p = EfiEmulatorParam::new(&fields);
    let mut buffer = loader.to_vec();
    buffer.resize(loader.len() + room, 0);
    let facts = StubFacts { system_table, mmap: Extent::new(0x4500_0000, firmware.len() as u64), desc_size: stride as u64, desc_ver: 1 };
    let mem = Memory(system_table & !0xfff, memory.to_vec());
    if complete(&mut p, &mut buffer, firmware, &facts, &mem).is_ok() {
        let n = p.rt_info.systab_nr_tables as usize;
        assert!(n <= p.rt_info.systab_tables.len());
        if p.noefi_boot == 0 {
            check_merged(&buffer, p.rt_info.memmap.map_size as usize);
        }
    }
});
