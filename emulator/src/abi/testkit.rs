//! Test fixtures from the loader crate (a QEMU-virt-like DTB, a fake blob, a planned boot), and
//! what the validator needs of them on this side of the crate boundary.
//!
//! The loader crate depends on this one, so these tests link a second build of it: values
//! cross as bytes and numbers, never as this crate's types.

use super::validate::{BlobPlacement, PhysMemory};
pub use efi_emulator_loader::plan::KexecImage;
pub use efi_emulator_loader::testkit::{fake_blob, virt_dtb, Fixture, RAM_START, UART};
use std::vec::Vec;

/// Physical memory made of the segments of a planned boot, owned (tests corrupt it).
pub struct FakeMemory {
    pub regions: Vec<(u64, Vec<u8>)>,
}

impl FakeMemory {
    pub fn of(image: &KexecImage, fixture: &Fixture) -> Self {
        let spec = fixture.spec();
        FakeMemory { regions: image.segments(&spec).unwrap().into_iter().map(|s| (s.addr, s.bytes.into_owned())).collect() }
    }
}

impl PhysMemory for FakeMemory {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.regions.iter().find_map(|(start, data)| {
            let off = addr.checked_sub(*start)? as usize;
            data.get(off..off.checked_add(len)?)
        })
    }
}

/// An extent of the loader's build of this crate as this build's.
pub fn extent(e: efi_emulator_loader::contract::mem::Extent) -> crate::mem::Extent {
    crate::mem::Extent::new(e.start, e.size)
}

/// The parameter block of a planned boot, read back as the emulator reads it.
pub fn param(image: &KexecImage, fixture: &Fixture) -> super::EfiEmulatorParam {
    super::validate::read_param(&FakeMemory::of(image, fixture), image.param_addr).unwrap()
}

/// Where the planned boot put the blob, as this crate's validator takes it.
pub fn placement(image: &KexecImage) -> BlobPlacement {
    BlobPlacement { start: image.emulator.start, mem_size: image.emulator.size }
}
