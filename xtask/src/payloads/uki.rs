//! Unified kernel images: a systemd-stub with `.osrel`, `.cmdline`, `.uname`, `.initrd` and
//! `.linux` sections appended, laid out the way `ukify` lays them out (each section after the
//! stub's last, at SectionAlignment, raw data at FileAlignment); and the test UKIs made of the
//! payloads' stubs and kernels.

use crate::payloads::initramfs::build_initramfs;
use crate::payloads::packages::{efivarfs_module, payload_dir, Kernel, Stub};
use anyhow::{bail, ensure, Context, Result};
use efi_emulator::efi::pe::PeImage;
use std::path::{Path, PathBuf};

const SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
const SCN_MEM_READ: u32 = 0x4000_0000;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// Appends `sections` (name, contents) to the stub.
pub fn build(stub: &[u8], sections: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let pe = PeImage::parse(stub).context("systemd-stub is not a valid PE image")?;
    let lfanew = u32_at(stub, 0x3c) as usize;
    let coff = lfanew + 4;
    let count = u16_at(stub, coff + 2) as usize;
    let opt = coff + 20;
    let table = opt + u16_at(stub, coff + 16) as usize;
    let (sa, fa) = (pe.section_alignment as u64, pe.file_alignment.max(1) as u64);
    let first_raw = pe.sections().filter(|s| s.raw_size > 0).map(|s| s.raw_offset as usize).min().unwrap_or(stub.len());
    let room = first_raw.min(pe.size_of_headers as usize);
    ensure!(table + (count + sections.len()) * 40 <= room, "no room in the stub's headers for {} more section headers", sections.len());

    let raw_end = pe.sections().map(|s| s.raw_offset as u64 + s.raw_size as u64).max().unwrap_or(0);
    let mut out = stub[..raw_end as usize].to_vec();
    let mut va = pe.sections().map(|s| s.virtual_address as u64 + s.virtual_size.max(s.raw_size) as u64).max().unwrap_or(0).next_multiple_of(sa);
    for (i, (name, data)) in sections.iter().enumerate() {
        ensure!(name.len() <= 8, "section name {name} is longer than 8 bytes");
        let raw_at = (out.len() as u64).next_multiple_of(fa);
        out.resize(raw_at as usize, 0);
        out.extend_from_slice(data);
        let raw_size = (data.len() as u64).next_multiple_of(fa);
        out.resize((raw_at + raw_size) as usize, 0);
        let h = table + (count + i) * 40;
        out[h..h + 40].fill(0);
        out[h..h + name.len()].copy_from_slice(name.as_bytes());
        put32(&mut out, h + 8, data.len() as u32);
        put32(&mut out, h + 12, u32::try_from(va).context("UKI larger than 4 GiB")?);
        put32(&mut out, h + 16, raw_size as u32);
        put32(&mut out, h + 20, raw_at as u32);
        put32(&mut out, h + 36, SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ);
        va = (va + data.len() as u64).next_multiple_of(sa);
    }
    out[coff + 2..coff + 4].copy_from_slice(&((count + sections.len()) as u16).to_le_bytes());
    put32(&mut out, opt + 56, va as u32); // SizeOfImage
    put32(&mut out, opt + 64, 0); // CheckSum: not kept up to date by anyone
                                  // No certificate table: whatever signed the stub does not cover the UKI.
    if u32_at(&out, opt + 108) > 4 {
        out[opt + 112 + 32..opt + 112 + 40].fill(0);
    }
    PeImage::parse(&out).context("the assembled UKI does not parse")?;
    Ok(out)
}

/// The `.osrel` of the test UKIs.
pub fn os_release(name: &str) -> String {
    format!("ID=efi-emulator-test\nNAME=\"efi-emulator test UKI\"\nPRETTY_NAME=\"efi-emulator test UKI ({name})\"\nVERSION_ID=1\n")
}

/// Names of the sections of a PE file, to tell a UKI apart.
pub fn section_names(file: &[u8]) -> Result<Vec<String>> {
    let pe = PeImage::parse(file)?;
    Ok(pe.sections().map(|s| s.name().to_string()).collect())
}

/// Checks a built UKI: the sections are there and hold what was put in.
pub fn verify(uki: &[u8], sections: &[(&str, &[u8])]) -> Result<()> {
    let pe = PeImage::parse(uki)?;
    for (name, data) in sections {
        let Some(s) = pe.sections().find(|s| s.name() == *name) else { bail!("UKI has no {name}") };
        let at = s.raw_offset as usize;
        ensure!(&uki[at..at + data.len()] == *data && s.virtual_size as usize == data.len(), "{name} holds something else");
    }
    Ok(())
}

/// A unified kernel image built from a stub, a kernel and an initramfs.
#[derive(Clone, Debug)]
pub struct Uki {
    /// e.g. "252+6.1".
    pub name: String,
    pub path: PathBuf,
    /// Its embedded `.cmdline`.
    pub cmdline: String,
    pub stub_version: String,
    /// What `/initrd-id` in its initramfs says.
    pub initrd_id: String,
}

/// A UKI named `<stub major>+<series>`: the stub, `kernel`, an initramfs of its own (with the
/// kernel's efivarfs module) and a command line that names it.
pub fn build_uki(stub: &Stub, kernel: &Kernel, busybox: &Path) -> Result<Uki> {
    let series = kernel.series;
    let major = stub.version.split('.').next().unwrap_or("?").to_string();
    let name = format!("{major}+{series}");
    let id = format!("uki-{name}");
    let initramfs = payload_dir().join(format!("initramfs-{id}.cpio"));
    build_initramfs(busybox, &initramfs, &id, &[("efivarfs.ko", efivarfs_module(kernel)?)])?;
    let cmdline = format!("console=ttyAMA0 earlycon panic=-1 efi_emulator_uki={name}");
    let release = kernel.image.file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    let linux = std::fs::read(&kernel.image)?;
    let initrd = std::fs::read(&initramfs)?;
    let osrel = os_release(&name);
    let mut sections: Vec<(&str, &[u8])> = vec![(".osrel", osrel.as_bytes()), (".cmdline", cmdline.as_bytes())];
    if major != "252" {
        sections.push((".uname", release.as_bytes()));
    }
    sections.push((".initrd", &initrd));
    sections.push((".linux", &linux));
    let uki = build(&std::fs::read(&stub.path)?, &sections)?;
    verify(&uki, &sections)?;
    let path = payload_dir().join(format!("uki-{name}.efi"));
    std::fs::write(&path, uki)?;
    Ok(Uki { name, path, cmdline, stub_version: stub.version.clone(), initrd_id: id })
}

#[cfg(test)]
mod tests {
    #[test]
    fn appends_sections_to_a_synthetic_stub() {
        // The emulator's synthetic image stands in for a stub: one .text section at 0x1000.
        let stub = efi_emulator::efi::pe::test_image();
        let kernel = vec![0x4du8; 5000];
        let secs: [(&str, &[u8]); 3] = [(".osrel", b"ID=x\n"), (".cmdline", b"quiet"), (".linux", &kernel)];
        let uki = super::build(&stub, &secs).unwrap();
        super::verify(&uki, &secs).unwrap();
        let names = super::section_names(&uki).unwrap();
        assert_eq!(names, [".text", ".osrel", ".cmdline", ".linux"]);
        let pe = efi_emulator::efi::pe::PeImage::parse(&uki).unwrap();
        let linux = pe.sections().find(|s| s.name() == ".linux").unwrap();
        assert_eq!(linux.virtual_address % 0x1000, 0);
        assert!(pe.size_of_image as usize >= linux.virtual_address as usize + kernel.len());
    }
}
