//! What kind of PE image a loader was given, for `efi-kexec info` and its refusals: an arm64
//! Linux `Image` with the EFI stub, an EFI zboot image, a systemd UKI, or another EFI
//! application; and whether the emulator would load it.

use super::pe::{PeError, PeImage};
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The kind of a PE file, with what a user wants to know about each kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// An arm64 `Image` whose header makes it a PE file (`EFI stub <major>.<minor>`).
    LinuxImage { stub_version: (u16, u16), image_size: u64 },
    /// `vmlinuz.efi`: the EFI zboot decompressor with a compressed `Image` inside.
    Zboot { compression: String, payload_size: u32 },
    /// A systemd unified kernel image.
    Uki(Box<Uki>),
    /// Any other AArch64 EFI application (a boot loader, a test payload).
    Application,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uki {
    /// From `.sdmagic`, e.g. "systemd-stub 254.26-1~bpo12+1".
    pub stub: Option<String>,
    /// `.cmdline`, without a trailing NUL or newline.
    pub cmdline: Option<String>,
    /// `PRETTY_NAME` (or `NAME`) of `.osrel`.
    pub os_name: Option<String>,
    pub uname: Option<String>,
    /// Every section: name and size.
    pub sections: Vec<(String, u32)>,
    /// What `.linux` holds.
    pub linux: Option<ImageKind>,
}

/// Classifies a file that parses as a PE image.
pub fn classify(file: &[u8], pe: &PeImage) -> ImageKind {
    classify_to(file, pe, true)
}

/// [`classify`], reading a UKI's `.linux` only when `follow`: one level down, since a crafted
/// file may hold itself there.
fn classify_to(file: &[u8], pe: &PeImage, follow: bool) -> ImageKind {
    if let Some(size) = pe.linux_image_size {
        return ImageKind::LinuxImage { stub_version: (pe.major_image_version, pe.minor_image_version), image_size: size };
    }
    if file.get(4..8) == Some(b"zimg") {
        let compression = file.get(24..56).map(|b| text(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())])).unwrap_or_default();
        let payload_size = file.get(12..16).map(|b| u32::from_le_bytes(b.try_into().unwrap())).unwrap_or(0);
        return ImageKind::Zboot { compression, payload_size };
    }
    if super::image_policy::is_uki(pe) {
        let section = |name: &str| pe.sections().find(|s| s.name() == name).and_then(|s| file.get(s.raw_offset as usize..)?.get(..s.virtual_size.min(s.raw_size) as usize));
        let trimmed = |b: &[u8]| text(b).trim_end_matches(['\0', '\n', ' ']).to_string();
        let stub = section(".sdmagic").map(|b| trimmed(b).trim_matches('#').trim().trim_start_matches("LoaderInfo:").trim().to_string()).or_else(|| stub_info_utf16(file, pe));
        let os_name = section(".osrel").and_then(|b| {
            let osrel = text(b);
            let field = |key: &str| osrel.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim_matches('"').to_string());
            field("PRETTY_NAME=").or_else(|| field("NAME="))
        });
        let linux = section(".linux").filter(|_| follow).and_then(|b| PeImage::parse(b).ok().map(|inner| classify_to(b, &inner, false)));
        return ImageKind::Uki(Box::new(Uki {
            stub,
            cmdline: section(".cmdline").map(trimmed),
            os_name,
            uname: section(".uname").map(trimmed),
            sections: pe.sections().map(|s| (s.name().to_string(), s.virtual_size)).collect(),
            linux,
        }));
    }
    ImageKind::Application
}

/// Stubs without `.sdmagic` (gnu-efi builds, systemd 252) carry their version only as the UTF-16
/// `StubInfo` value, "systemd-stub <version>": looked for in the stub's own sections.
fn stub_info_utf16(file: &[u8], pe: &PeImage) -> Option<String> {
    let needle: Vec<u8> = "systemd-stub ".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let own = pe.sections().filter(|s| matches!(s.name(), ".text" | ".data" | ".rodata"));
    own.filter_map(|s| file.get(s.raw_offset as usize..)?.get(..s.raw_size as usize)).find_map(|b| {
        let at = b.windows(needle.len()).position(|w| w == needle)?;
        let units: Vec<u16> = b[at..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).take(128).collect();
        String::from_utf16(&units).ok()
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LinuxImage { stub_version: (major, minor), image_size } => {
                write!(f, "Linux arm64 Image with EFI stub {major}.{minor}, image_size {image_size:#x}")
            }
            Self::Zboot { compression, payload_size } => write!(f, "EFI zboot image, {compression}-compressed payload of {payload_size} B"),
            Self::Uki(u) => {
                write!(f, "systemd UKI, stub {}", u.stub.as_deref().unwrap_or("(no .sdmagic)"))?;
                if let Some(name) = &u.os_name {
                    write!(f, ", .osrel {name:?}")?;
                }
                if let Some(linux) = &u.linux {
                    write!(f, "; .linux: {linux}")?;
                }
                Ok(())
            }
            Self::Application => write!(f, "AArch64 EFI application"),
        }
    }
}

/// Parses the image and loads it into a scratch buffer, relocations included: the same checks,
/// with the same messages, as the emulator makes before it starts an image.
pub fn check_loadable(file: &[u8]) -> Result<PeImage<'_>, PeError> {
    let pe = PeImage::parse(file)?;
    let mut scratch = alloc::vec![0u8; pe.size_of_image as usize];
    pe.load(&mut scratch, 0x4000_0000)?;
    Ok(pe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_a_plain_application_and_refuses_garbage() {
        let img = super::super::pe::test_image();
        let pe = check_loadable(&img).unwrap();
        assert_eq!(classify(&img, &pe), ImageKind::Application);
        assert_eq!(check_loadable(b"not a PE file").err().unwrap().field, "DOS magic");
    }

    #[test]
    fn zboot_header_names_its_compression() {
        let mut img = super::super::pe::test_image();
        img[4..8].copy_from_slice(b"zimg");
        img[12..16].copy_from_slice(&1234u32.to_le_bytes());
        img[24..29].copy_from_slice(b"zstd\0");
        let pe = PeImage::parse(&img).unwrap();
        assert_eq!(classify(&img, &pe), ImageKind::Zboot { compression: "zstd".into(), payload_size: 1234 });
    }

    /// A 1 KiB PE whose `.linux` section is the whole file: a UKI inside itself, for ever. The
    /// classification names what `.linux` holds one level down and stops there.
    #[test]
    fn a_uki_that_holds_itself_is_classified_once() {
        let mut img = super::super::pe::test_image();
        let s = 0x58 + 240;
        img[s..s + 8].copy_from_slice(b".linux\0\0");
        let len = img.len() as u32;
        img[s + 8..s + 12].copy_from_slice(&len.to_le_bytes());
        img[s + 16..s + 20].copy_from_slice(&len.to_le_bytes());
        img[s + 20..s + 24].copy_from_slice(&0u32.to_le_bytes());
        let pe = PeImage::parse(&img).unwrap();
        let ImageKind::Uki(outer) = classify(&img, &pe) else { panic!("not a UKI") };
        let Some(ImageKind::Uki(inner)) = outer.linux else { panic!(".linux not read as a UKI: {:?}", outer.linux) };
        assert_eq!(inner.linux, None, "the nested UKI's own .linux is not followed");
    }
}
