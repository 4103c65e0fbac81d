//! The kexec_file door's parsers of what the previous kernel handed over: the payload (a PE
//! file or a newc bundle) and the DTB the emulator makes its parameter block from.
#![no_main]
use efi_emulator::abi::validate::PhysMemory;
use efi_emulator::abi::{bundle, dtb_entry, EfiEmulatorParam};
use efi_emulator::drivers::fdt::Fdt;
use efi_emulator::mem::{desc_extent, Extent};
use libfuzzer_sys::fuzz_target;

const PAYLOAD_AT: u64 = 0x4400_0000;

/// RAM that holds only the payload.
struct Payload<'a>(&'a [u8]);

impl PhysMemory for Payload<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = addr.checked_sub(PAYLOAD_AT)? as usize;
        self.0.get(off..off.checked_add(len)?)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = bundle::open(data) {
        assert!(p.kernel.end <= data.len() && p.initrd.as_ref().is_none_or(|i| i.end <= data.len()));
        let _ = bundle::cmdline(data, &p);
    }
    let Ok(fdt) = Fdt::new(data) else { return };
    let payload = efi_emulator_loader::bundle::make(b"MZ a kernel", Some(b"an initrd"), Some("quiet"));
    let mem = Payload(&payload);
    let inputs = dtb_entry::Inputs { fdt, dtb: Extent::new(0x7fe0_0000, data.len() as u64), footprint: Extent::new(0x4020_0000, 0x5_0000), blob_start: 0x4020_1000, mem: &mem };
    let Ok(plan) = dtb_entry::plan(&inputs) else { return };
    // SAFETY: plain old data: all zeros is a valid block.
    let mut p: EfiEmulatorParam = unsafe { core::mem::zeroed() };
    let mut map = vec![r_efi::efi::MemoryDescriptor { r#type: 0, physical_start: 0, virtual_start: 0, number_of_pages: 0, attribute: 0 }; 1596];
    let Ok(n) = dtb_entry::write(&inputs, &plan, &payload, &mut p, &mut map) else { return };
    // Sorted, and the mempool is free memory that overlaps nothing else.
    assert!(map[..n].windows(2).all(|w| w[0].physical_start <= w[1].physical_start));
    let free: Vec<Extent> = map[..n].iter().filter(|d| d.r#type == r_efi::efi::CONVENTIONAL_MEMORY).map(desc_extent).collect();
    assert_eq!(free, [plan.mempool]);
    assert!(map[..n].iter().filter(|d| d.r#type != r_efi::efi::CONVENTIONAL_MEMORY).all(|d| !desc_extent(d).overlaps(&plan.mempool)));
});
