//! Reading the files a root tool is handed: regular files only (a FIFO would hang the read, a
//! device like `/dev/zero` never ends), no larger than what they can be.

use std::fs::{File, FileType, OpenOptions};
use std::io::{Error, ErrorKind, Read, Result};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest kernel image or emulator Image read (a UKI with a large initrd is about 200 MB).
pub const IMAGE_MAX: u64 = 1 << 30;
/// The largest initrd or ESP read.
pub const INITRD_MAX: u64 = 4 << 30;
/// The largest device tree read (the kernel's own limit for the DTB it builds, `MAX_FDT_SIZE`).
pub const DTB_MAX: u64 = 2 << 20;

/// The contents of the regular file at `path` (a symbolic link to one is followed), refused when
/// it is anything else or larger than `max` bytes. Opened non-blocking, so a FIFO is refused
/// instead of waiting for a writer.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, format!("{} is {}, not a regular file", path.display(), kind(meta.file_type()))));
    }
    check_size(path, meta.len(), max)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is cut at one byte past the limit and refused.
    Read::take(&file as &File, max + 1).read_to_end(&mut bytes)?;
    check_size(path, bytes.len() as u64, max)?;
    Ok(bytes)
}

fn check_size(path: &Path, len: u64, max: u64) -> Result<()> {
    if len > max {
        return Err(Error::new(ErrorKind::InvalidInput, format!("{} is {len} B, more than the {max} B it may be", path.display())));
    }
    Ok(())
}

/// What a file that is not a regular one is.
pub fn kind(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("esp-image-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_regular_files_of_a_bounded_size_are_read() {
        let dir = temp("kinds");
        let file = dir.join("image");
        std::fs::write(&file, b"MZ and the rest").unwrap();
        assert_eq!(read_regular(&file, 100).unwrap(), b"MZ and the rest");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, 100).unwrap(), b"MZ and the rest", "a link to a regular file is followed");
        let e = read_regular(&file, 4).unwrap_err().to_string();
        assert!(e.ends_with("is 15 B, more than the 4 B it may be"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), IMAGE_MAX).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero is a character device, not a regular file");
        let e = read_regular(&dir, IMAGE_MAX).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        // A FIFO with no writer: refused at once, not waited on.
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path of our own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, IMAGE_MAX).unwrap_err().to_string();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
