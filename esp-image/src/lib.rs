//! EFI system partition images: a FAT file system holding the files given, or a directory's
//! tree (`efi-kexec load --esp /boot/efi`, `cargo xtask run --esp DIR`, the FAT fuzz seeds).

use anyhow::{Context, Result};
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

/// A FAT image holding the tree under `dir`, sized to fit it with room to spare.
pub fn image_from_dir(dir: &Path) -> Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    collect(dir, dir, &mut files)?;
    let bytes: usize = files.iter().map(|(_, d)| d.len().next_multiple_of(4096) + 4096).sum();
    // FAT overhead, directories, and a floor that keeps FAT16 sane.
    let size = (bytes + bytes / 8 + (8 << 20)).next_multiple_of(1 << 20);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    image_from_files(&refs, size)
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

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
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
}
