//! Fixtures for tests of loaders and of the emulator: a QEMU-virt-like device tree, a blob that
//! is only a header, and a planned boot of both.

use crate::dtb_edit::{Tree, TreeNode};
use crate::plan::{plan, BootSpec, KexecImage, MemoryLayout};
use efi_emulator::abi::*;
use efi_emulator::mem::Extent;

pub const RAM_START: u64 = 0x4000_0000;
pub const UART: u64 = 0x900_0000;

fn node(name: &str, props: Vec<(&str, Vec<u8>)>, children: Vec<TreeNode>) -> TreeNode {
    TreeNode { name: name.to_string(), properties: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), children }
}

fn cells(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| [((x >> 32) as u32).to_be_bytes(), (*x as u32).to_be_bytes()]).flatten().collect()
}

fn string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A device tree shaped like QEMU virt's: 2/2 cells, one RAM range, PL011, GIC, PSCI, chosen.
pub fn virt_dtb(ram_size: u64, psci_method: &str) -> Vec<u8> {
    let root = node(
        "",
        vec![("#address-cells", 2u32.to_be_bytes().to_vec()), ("#size-cells", 2u32.to_be_bytes().to_vec()), ("compatible", string("linux,dummy-virt"))],
        vec![
            node("psci", vec![("compatible", string("arm,psci-1.0")), ("method", string(psci_method))], vec![]),
            node(&format!("memory@{RAM_START:x}"), vec![("device_type", string("memory")), ("reg", cells(&[RAM_START, ram_size]))], vec![]),
            node("pl011@9000000", vec![("compatible", string("arm,pl011")), ("reg", cells(&[UART, 0x1000]))], vec![]),
            node("intc@8000000", vec![("compatible", string("arm,cortex-a15-gic")), ("reg", cells(&[0x800_0000, 0x1_0000, 0x801_0000, 0x1_0000]))], vec![]),
            node("disabled@a000000", vec![("status", string("disabled")), ("reg", cells(&[0xa00_0000, 0x1000]))], vec![]),
            node("chosen", vec![("stdout-path", string("/pl011@9000000"))], vec![]),
        ],
    );
    Tree { reservations: vec![], root, boot_cpuid: 0 }.to_blob()
}

/// A blob that is only a valid header, with the given footprint.
pub fn fake_blob(mem_size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[8..16].copy_from_slice(&BLOB_MAGIC);
    b[16..20].copy_from_slice(&ABI_VERSION.to_le_bytes());
    b[20..24].copy_from_slice(&BLOB_HEADER_SIZE.to_le_bytes());
    b[24..32].copy_from_slice(&4096u64.to_le_bytes());
    b[32..40].copy_from_slice(&mem_size.to_le_bytes());
    b[56..60].copy_from_slice(&(BLOB_FLAG_POSITION_INDEPENDENT | BLOB_FLAG_PARAM_SLOT).to_le_bytes());
    b
}

pub struct Fixture {
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub dtb: Vec<u8>,
    pub blob: Vec<u8>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        Fixture { kernel: vec![0x4d; 3 << 20], initrd: vec![0x1a; 12345], dtb: virt_dtb(1 << 30, "hvc"), blob: fake_blob(0x2_0000) }
    }
    pub fn spec(&self) -> BootSpec<'_> {
        BootSpec {
            kernel: &self.kernel,
            initrd: Some(&self.initrd),
            esp: None,
            dtb: &self.dtb,
            emulator: &self.blob,
            cmdline: "console=ttyAMA0 earlycon panic=-1",
            uart: (UART, 0x1000),
            earlycon_name: "amba-pl011",
            print: true,
            memory: MemoryLayout::from_dtb(&self.dtb).unwrap().with_busy(Extent::new(RAM_START, 1 << 20)),
            placement: Default::default(),
            file_size_only: false,
            firmware: false,
            seeds: None,
            extra_chosen: vec![],
            crash: None,
            page_size: PAGE_SIZE,
        }
    }
    pub fn image(&self) -> KexecImage {
        plan(&self.spec()).unwrap()
    }
}
