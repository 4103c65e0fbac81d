//! Decisions about the image the loader handed over that depend on what kind of image it is.

use super::pe::PeImage;

/// A systemd UKI: a stub with the kernel in a `.linux` section.
pub fn is_uki(pe: &PeImage) -> bool {
    pe.sections().any(|s| s.name() == ".linux")
}

/// A UKI that brings its own (non-empty) `.initrd`: publishing the loader's initrd through
/// LoadFile2 too would make systemd-stub abort (it refuses a second initrd provider).
pub fn carries_initrd(pe: &PeImage) -> bool {
    is_uki(pe) && pe.sections().any(|s| s.name() == ".initrd" && s.virtual_size > 0)
}

/// What LoadOptions the first image gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadOptions {
    /// None at all (LoadOptionsSize 0): a UKI then uses its `.cmdline`.
    Empty,
    /// The loader's command line.
    FromLoader,
}

pub fn load_options(loader_cmdline_empty: bool) -> LoadOptions {
    if loader_cmdline_empty {
        LoadOptions::Empty
    } else {
        LoadOptions::FromLoader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The synthetic image with its `.text` renamed (and sized) as given.
    fn with_section(name: &[u8], virtual_size: u32) -> std::vec::Vec<u8> {
        let mut f = super::super::pe::test_image();
        let s = 0x58 + 240;
        f[s..s + 8].fill(0);
        f[s..s + name.len()].copy_from_slice(name);
        f[s + 8..s + 12].copy_from_slice(&virtual_size.to_le_bytes());
        f
    }

    #[test]
    fn recognises_ukis_and_their_initrd() {
        let plain = super::super::pe::test_image();
        assert!(!is_uki(&PeImage::parse(&plain).unwrap()));
        let uki = with_section(b".linux", 0x200);
        assert!(is_uki(&PeImage::parse(&uki).unwrap()));
        assert!(!carries_initrd(&PeImage::parse(&uki).unwrap()), "no .initrd section");
        // A lone .initrd does not make a UKI.
        let initrd_only = with_section(b".initrd", 0x200);
        assert!(!carries_initrd(&PeImage::parse(&initrd_only).unwrap()));
    }

    #[test]
    fn an_empty_command_line_leaves_the_uki_its_own() {
        assert_eq!(load_options(true), LoadOptions::Empty);
        assert_eq!(load_options(false), LoadOptions::FromLoader);
    }
}
