//! EFI system partition images: a FAT file system holding the files given, or a directory's
//! tree (`efi-kexec load --esp /boot/efi`, `cargo xtask run --esp DIR`, the FAT fuzz seeds).

pub mod input;

use anyhow::{bail, Context, Result};
use std::io::{Cursor, Write};
use std::path::Path;

/// A FAT image of `size` bytes (FAT12/16/32 as the size makes it) with `files` (paths with `/`).
pub fn image_from_files(files: &[(&str, &[u8])], size: usize) -> Result<Vec<u8>> {
    let mut disk = Cursor::new(vec![0u8; size]);
    fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().volume_label(*b"ESP        ")).context("formatting the ESP image")?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
        let root = fs.root_dir();
        for (path, data) in files {
            let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let file = parts.pop().context("an empty path")?;
            let mut dir = root.clone();
            for p in parts {
                dir = match dir.open_dir(p) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(p).with_context(|| format!("creating {p} for {path}"))?,
                };
            }
            dir.create_file(file).and_then(|mut f| f.write_all(data)).with_context(|| format!("writing {path} into the ESP image"))?;
        }
    }
    Ok(disk.into_inner())
}

/// A FAT image holding the tree under `dir`, sized to fit it with room to spare. Regular files
/// only (links to them are followed), no link to a directory (it may loop, or lead out of the
/// tree), at most [`input::INITRD_MAX`] bytes in all.
pub fn image_from_dir(dir: &Path) -> Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    collect(dir, dir, &mut files, &mut 0)?;
    let bytes: usize = files.iter().map(|(_, d)| d.len().next_multiple_of(4096) + 4096).sum();
    // FAT overhead, directories, and a floor that keeps FAT16 sane.
    let size = (bytes + bytes / 8 + (8 << 20)).next_multiple_of(1 << 20);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    image_from_files(&refs, size)
}

/// The EFI system partition type GUID, as GPT stores it.
const ESP_TYPE: [u8; 16] = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
/// Where the partition starts: 1 MiB, as partitioning tools align it.
const FIRST_LBA: u64 = 2048;

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| (0..8).fold(crc ^ b as u32, |c, _| if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 }))
}

/// A GPT disk whose one partition, an EFI system partition with the unique GUID `unique`, holds
/// `volume` (a FAT image of whole 512-byte blocks): protective MBR, primary and backup headers
/// and entry arrays with their CRCs, as a disk's ESP looks to firmware.
pub fn gpt_disk(volume: &[u8], unique: [u8; 16]) -> Vec<u8> {
    let blocks = volume.len().div_ceil(512) as u64;
    let total = FIRST_LBA + blocks + 33;
    let mut disk = vec![0u8; total as usize * 512];
    // Protective MBR: one 0xEE partition over the disk.
    disk[446 + 4] = 0xee;
    disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&((total - 1).min(u32::MAX as u64) as u32).to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xaa]);
    let mut entries = vec![0u8; 128 * 128];
    entries[..16].copy_from_slice(&ESP_TYPE);
    entries[16..32].copy_from_slice(&unique);
    entries[32..40].copy_from_slice(&FIRST_LBA.to_le_bytes());
    entries[40..48].copy_from_slice(&(FIRST_LBA + blocks - 1).to_le_bytes());
    for (i, u) in "EFI System".encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    let header = |my: u64, alternate: u64, entries_at: u64| {
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(total - 34).to_le_bytes());
        h[56..72].copy_from_slice(&[0x5a; 16]);
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
        let crc = crc32(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let at = |lba: u64| lba as usize * 512;
    disk[at(1)..at(1) + 92].copy_from_slice(&header(1, total - 1, 2));
    disk[at(2)..at(2) + entries.len()].copy_from_slice(&entries);
    disk[at(FIRST_LBA)..at(FIRST_LBA) + volume.len()].copy_from_slice(volume);
    disk[at(total - 33)..at(total - 33) + entries.len()].copy_from_slice(&entries);
    disk[at(total - 1)..at(total - 1) + 92].copy_from_slice(&header(total - 1, 1, total - 33));
    disk
}

/// `\\EFI\\BOOT\\BOOTAA64.EFI` when `file` lies under the ESP directory `esp`: how the
/// emulator names the kernel's LoadedImage.FilePath, as firmware would.
pub fn path_in(esp: &Path, file: &Path) -> Option<String> {
    let (esp, file) = (esp.canonicalize().ok()?, file.canonicalize().ok()?);
    let rel = file.strip_prefix(esp).ok()?;
    Some(rel.components().fold(String::new(), |mut s, c| {
        s.push('\\');
        s.push_str(&c.as_os_str().to_string_lossy());
        s
    }))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>, total: &mut u64) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let own = std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if own.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            bail!("{} is a symbolic link to a directory: refused (it may loop, or lead out of the ESP)", path.display());
        }
        if own.is_dir() {
            collect(root, &path, out, total)?;
        } else {
            let rel = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            let bytes = input::read_regular(&path, input::INITRD_MAX - *total).with_context(|| format!("the ESP's files together may be {} B at most", input::INITRD_MAX))?;
            *total += bytes.len() as u64;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_reads_what_is_written() {
        let img = image_from_files(&[("EFI/BOOT/BOOTAA64.EFI", b"MZ"), ("loader/entries/a long name.conf", b"title A\n")], 256 * 1024).unwrap();
        let fat = efi_emulator::efi::fat::Fat::new(&img).unwrap();
        let path: Vec<u16> = "loader\\entries\\A LONG NAME.CONF".encode_utf16().collect();
        let e = fat.open(&path).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(fat.read(&e, 0, &mut buf), 8);
        assert_eq!(&buf[..8], b"title A\n");
    }

    /// A link back up the tree would recurse for ever, a link to `/` would read `/proc`; a FIFO
    /// would hang the walk.
    #[test]
    fn the_walk_refuses_directory_links_and_special_files() {
        let dir = std::env::temp_dir().join(format!("esp-image-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("EFI/BOOT")).unwrap();
        std::fs::write(dir.join("EFI/BOOT/BOOTAA64.EFI"), b"MZ").unwrap();
        std::os::unix::fs::symlink(dir.join("EFI/BOOT/BOOTAA64.EFI"), dir.join("EFI/linked.efi")).unwrap();
        let fat_bytes = image_from_dir(&dir).unwrap();
        let fat = efi_emulator::efi::fat::Fat::new(&fat_bytes).unwrap();
        assert!(fat.open(&"EFI\\linked.efi".encode_utf16().collect::<Vec<_>>()).is_some(), "a link to a file is followed");
        std::os::unix::fs::symlink(&dir, dir.join("EFI/loop")).unwrap();
        let e = format!("{:#}", image_from_dir(&dir).unwrap_err());
        assert!(e.ends_with("EFI/loop is a symbolic link to a directory: refused (it may loop, or lead out of the ESP)"), "{e}");
        std::fs::remove_file(dir.join("EFI/loop")).unwrap();
        let c = std::ffi::CString::new(dir.join("EFI/fifo").to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path of our own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = format!("{:#}", image_from_dir(&dir).unwrap_err());
        assert!(e.contains("EFI/fifo is a FIFO, not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_gpt_disk_holds_the_volume_with_valid_crcs() {
        let img = image_from_files(&[("EFI/BOOT/BOOTAA64.EFI", b"MZ")], 256 * 1024).unwrap();
        let disk = gpt_disk(&img, [9; 16]);
        let p = efi_emulator::efi::fat::partition(&disk).unwrap().unwrap();
        assert_eq!((p.number, p.start, p.size), (1, 2048 * 512, img.len() as u64));
        assert_eq!(p.signature, efi_emulator::efi::fat::Signature::Gpt([9; 16]));
        assert!(efi_emulator::efi::fat::Fat::new(&disk).unwrap().open(&"EFI\\BOOT\\BOOTAA64.EFI".encode_utf16().collect::<Vec<_>>()).is_some());
        // Both headers check out (CRC32 over the header with its CRC field zeroed).
        for lba in [1, disk.len() / 512 - 1] {
            let mut h = disk[lba * 512..lba * 512 + 92].to_vec();
            let stored = u32::from_le_bytes(h[16..20].try_into().unwrap());
            h[16..20].fill(0);
            assert_eq!(crc32(&h), stored);
            assert_eq!(efi_emulator::efi::crc32::crc32(&h), stored, "the same CRC as the emulator's");
        }
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
