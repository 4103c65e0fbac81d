//! The payload the `kexec_file_load` door brings as its "initrd": one PE file (a UKI, an EFI
//! zboot image, an arm64 Image with its EFI stub, a boot loader), or a bundle of several files
//! as a newc cpio archive (`cpio -o -H newc`: every tool makes one):
//!
//! | member | what |
//! |---|---|
//! | `kernel` | the PE file to start (required) |
//! | `initrd` | its initrd, served through LoadFile2 (`LINUX_EFI_INITRD_MEDIA_GUID`) |
//! | `cmdline` | its command line (UTF-8; a trailing newline is dropped); it replaces `bootargs` |
//! | `esp` | an EFI system partition image (a FAT volume, or a GPT disk with one), served as a disk |
//! | `esp-path` | where `kernel` lies in `esp` (UTF-8, such as `EFI/BOOT/BOOTAA64.EFI`): it is then started as firmware starts a file of the ESP, with the ESP as its device, so a loader (shim, systemd-boot, GRUB) finds its files beside it |
//!
//! Directories (such as `.`) are skipped; any other member is refused by name, so a typo does
//! not silently boot without what was meant. The bytes come from the previous kernel's user
//! space: every field is checked, and nothing is copied (the members are ranges of the archive).

use core::fmt;
use core::ops::Range;

/// What the payload holds, as byte ranges of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub kernel: Range<usize>,
    pub initrd: Option<Range<usize>>,
    pub cmdline: Option<Range<usize>>,
    pub esp: Option<Range<usize>>,
    pub esp_path: Option<Range<usize>>,
    /// A cpio bundle (false: the payload is one PE file).
    pub bundle: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// Neither a PE file ("MZ") nor a newc cpio archive ("070701"/"070702").
    Unknown {
        first: [u8; 6],
    },
    /// A header field is not 8 hexadecimal digits, or lies past the end.
    Field {
        offset: usize,
        field: &'static str,
    },
    /// A member runs past the end of the archive.
    Truncated {
        offset: usize,
        needed: usize,
        len: usize,
    },
    /// A member whose name is not one of the three.
    UnknownMember {
        offset: usize,
    },
    Duplicate {
        name: &'static str,
    },
    NoKernel,
    /// The command line, or the ESP path, is not UTF-8.
    NotUtf8 {
        name: &'static str,
        offset: usize,
    },
    /// `esp-path` names a file of an ESP the bundle does not have.
    EspPathWithoutEsp,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { first } => write!(f, "payload starts with {first:02x?}: neither a PE file (\"MZ\") nor a newc cpio bundle (\"070701\")"),
            Self::Field { offset, field } => write!(f, "bundle: the cpio header at offset {offset:#x} has a bad {field} (expected 8 hexadecimal digits)"),
            Self::Truncated { offset, needed, len } => write!(f, "bundle: the member at offset {offset:#x} needs {needed} bytes, the archive has {len}"),
            Self::UnknownMember { offset } => write!(f, "bundle: the member at offset {offset:#x} is none of \"kernel\", \"initrd\", \"cmdline\", \"esp\", \"esp-path\""),
            Self::Duplicate { name } => write!(f, "bundle: \"{name}\" appears twice"),
            Self::NoKernel => write!(f, "bundle: no \"kernel\" member (the PE file to start)"),
            Self::NotUtf8 { name, offset } => write!(f, "bundle: \"{name}\" at offset {offset:#x} is not UTF-8"),
            Self::EspPathWithoutEsp => write!(f, "bundle: \"esp-path\" without an \"esp\" to find it in"),
        }
    }
}

const HEADER: usize = 110;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

fn align4(v: usize) -> usize {
    v.div_ceil(4) * 4
}

/// One of the 13 eight-digit hexadecimal fields after the magic.
fn field(bytes: &[u8], at: usize, index: usize, name: &'static str) -> Result<u32, BundleError> {
    let start = at + 6 + 8 * index;
    let digits = bytes.get(start..start + 8).ok_or(BundleError::Field { offset: at, field: name })?;
    let text = core::str::from_utf8(digits).map_err(|_| BundleError::Field { offset: at, field: name })?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BundleError::Field { offset: at, field: name });
    }
    u32::from_str_radix(text, 16).map_err(|_| BundleError::Field { offset: at, field: name })
}

/// What `bytes` is: one PE file, or a bundle.
pub fn open(bytes: &[u8]) -> Result<Payload, BundleError> {
    if bytes.starts_with(b"MZ") {
        return Ok(Payload { kernel: 0..bytes.len(), initrd: None, cmdline: None, esp: None, esp_path: None, bundle: false });
    }
    if !(bytes.starts_with(b"070701") || bytes.starts_with(b"070702")) {
        let mut first = [0u8; 6];
        let n = bytes.len().min(6);
        first[..n].copy_from_slice(&bytes[..n]);
        return Err(BundleError::Unknown { first });
    }
    let (mut kernel, mut initrd, mut cmdline, mut esp, mut esp_path) = (None, None, None, None, None);
    let mut at = 0;
    loop {
        if bytes.len().saturating_sub(at) < HEADER || !(bytes[at..].starts_with(b"070701") || bytes[at..].starts_with(b"070702")) {
            return Err(BundleError::Field { offset: at, field: "magic (no TRAILER!!! before the end)" });
        }
        let mode = field(bytes, at, 1, "mode")?;
        let size = field(bytes, at, 6, "filesize")? as usize;
        let name_size = field(bytes, at, 11, "namesize")? as usize;
        let name_end = at + HEADER + name_size;
        let data = align4(name_end);
        let end = data.checked_add(size).ok_or(BundleError::Field { offset: at, field: "filesize" })?;
        if name_size == 0 || end > bytes.len() {
            return Err(BundleError::Truncated { offset: at, needed: end, len: bytes.len() });
        }
        // The name, without its NUL and a leading "./".
        let raw = &bytes[at + HEADER..name_end - 1];
        let name = raw.strip_prefix(b"./").unwrap_or(raw);
        if name == b"TRAILER!!!" {
            break;
        }
        let slot = match (name, mode & S_IFMT) {
            (_, S_IFDIR) => None,
            (b"kernel", S_IFREG) => Some((&mut kernel, "kernel")),
            (b"initrd", S_IFREG) => Some((&mut initrd, "initrd")),
            (b"cmdline", S_IFREG) => Some((&mut cmdline, "cmdline")),
            (b"esp", S_IFREG) => Some((&mut esp, "esp")),
            (b"esp-path", S_IFREG) => Some((&mut esp_path, "esp-path")),
            _ => return Err(BundleError::UnknownMember { offset: at }),
        };
        if let Some((slot, name)) = slot {
            if slot.is_some() {
                return Err(BundleError::Duplicate { name });
            }
            *slot = Some(data..end);
        }
        at = align4(end);
    }
    let kernel = kernel.ok_or(BundleError::NoKernel)?;
    for (text, name) in [(&cmdline, "cmdline"), (&esp_path, "esp-path")] {
        if let Some(t) = text {
            core::str::from_utf8(&bytes[t.clone()]).map_err(|_| BundleError::NotUtf8 { name, offset: t.start })?;
        }
    }
    if esp_path.is_some() && esp.is_none() {
        return Err(BundleError::EspPathWithoutEsp);
    }
    Ok(Payload { kernel, initrd, cmdline, esp, esp_path, bundle: true })
}

/// Where the kernel lies in the bundle's ESP, as text.
pub fn esp_path<'a>(bytes: &'a [u8], p: &Payload) -> Option<&'a str> {
    core::str::from_utf8(&bytes[p.esp_path.clone()?]).ok().map(|t| t.trim_end_matches('\n'))
}

/// The bundle's command line as text, without a trailing newline.
pub fn cmdline<'a>(bytes: &'a [u8], p: &Payload) -> Option<&'a str> {
    let text = core::str::from_utf8(&bytes[p.cmdline.clone()?]).ok()?;
    Some(text.strip_suffix('\n').unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use efi_emulator_loader::bundle::{make, make_with_esp};
    use efi_emulator_loader::cpio::Cpio;

    /// An archive of `members` (name, mode with its type bits, data).
    fn newc(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut c = Cpio::default();
        for &(name, mode, data) in members {
            match mode & S_IFMT {
                S_IFDIR => c.dir(name),
                _ => c.file(name, mode & 0o7777, data),
            }
        }
        c.finish()
    }

    const FILE: u32 = 0o100644;
    const DIR: u32 = 0o040755;

    #[test]
    fn a_pe_file_is_its_own_kernel() {
        let pe = b"MZ rest of a PE file";
        assert_eq!(open(pe).unwrap(), Payload { kernel: 0..pe.len(), initrd: None, cmdline: None, esp: None, esp_path: None, bundle: false });
    }

    #[test]
    fn a_bundle_names_its_members() {
        let a = newc(&[(".", DIR, &[]), ("./kernel", FILE, b"MZ kernel"), ("initrd", FILE, b"initrd bytes"), ("cmdline", FILE, b"root=/dev/vda ro\n")]);
        let p = open(&a).unwrap();
        assert!(p.bundle);
        assert_eq!(&a[p.kernel.clone()], b"MZ kernel");
        assert_eq!(&a[p.initrd.clone().unwrap()], b"initrd bytes");
        assert_eq!(cmdline(&a, &p), Some("root=/dev/vda ro"));
        let only = newc(&[("kernel", FILE, b"MZ")]);
        assert_eq!(open(&only).unwrap().initrd, None);
        let made = make(b"MZ k", Some(b"i"), Some("quiet"));
        let p = open(&made).unwrap();
        assert_eq!((&made[p.kernel.clone()], &made[p.initrd.clone().unwrap()], cmdline(&made, &p)), (&b"MZ k"[..], &b"i"[..], Some("quiet")));
        // With an ESP and where the kernel is in it.
        let made = make_with_esp(b"MZ shim", None, None, Some((b"FAT image", Some("EFI/BOOT/BOOTAA64.EFI"))));
        let p = open(&made).unwrap();
        assert_eq!((&made[p.esp.clone().unwrap()], esp_path(&made, &p)), (&b"FAT image"[..], Some("EFI/BOOT/BOOTAA64.EFI")));
        assert_eq!(esp_path(&a, &open(&a).unwrap()), None);
    }

    #[test]
    fn bad_bundles_are_named() {
        assert_eq!(open(b"\x7fELF..."), Err(BundleError::Unknown { first: *b"\x7fELF.." }));
        assert_eq!(open(&newc(&[("initrd", FILE, b"x")])), Err(BundleError::NoKernel));
        assert_eq!(open(&newc(&[("kernal", FILE, b"MZ")])), Err(BundleError::UnknownMember { offset: 0 }));
        assert_eq!(open(&newc(&[("kernel", FILE, b"MZ"), ("kernel", FILE, b"MZ")])), Err(BundleError::Duplicate { name: "kernel" }));
        assert_eq!(open(&newc(&[("kernel", FILE, b"MZ"), ("cmdline", FILE, b"\xff")])), Err(BundleError::NotUtf8 { name: "cmdline", offset: 0x7c + 0x78 }));
        assert_eq!(open(&newc(&[("kernel", FILE, b"MZ"), ("esp-path", FILE, b"EFI/x.efi")])), Err(BundleError::EspPathWithoutEsp));
        let good = newc(&[("kernel", FILE, b"MZ kernel")]);
        // Cut inside the kernel's data, and without the trailer.
        assert!(matches!(open(&good[..0x74]), Err(BundleError::Truncated { offset: 0, .. })));
        assert!(matches!(open(&good[..0x7c + 12]), Err(BundleError::Field { field: "magic (no TRAILER!!! before the end)", .. })));
        let mut bad_size = good.clone();
        bad_size[6 + 6 * 8] = b'g';
        assert_eq!(open(&bad_size), Err(BundleError::Field { offset: 0, field: "filesize" }));
    }
}
