//! The emulator's switches in `/chosen` (`efi-emulator,*` properties), part of the hand-off a
//! loader or the harness may write, read once by the boot flow and passed down.

use crate::drivers::fdt::Fdt;

/// Each switch is on when its property exists (`debug-fault` carries a value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// `efi-emulator,integrity`: CRCs of the loader's segments at entry, checked again later.
    pub integrity: bool,
    /// `efi-emulator,timeline`: the phase line even with printing off.
    pub timeline: bool,
    /// `efi-emulator,no-memory-attribute`: EFI_MEMORY_ATTRIBUTE_PROTOCOL not published.
    pub no_memory_attribute: bool,
    /// `efi-emulator,secure-boot-audit`: verify images where nothing is enforced, and say so.
    pub secure_boot_audit: bool,
    /// `efi-emulator,generic-sha256`: the portable SHA-256, not the CPU's instructions.
    pub generic_sha256: bool,
    /// Test hooks (heeded only by the `test-hooks` blob): the first ExitBootServices fails...
    pub debug_stale_map_key: bool,
    /// ...and a fault on purpose (`data-abort` or `undefined`).
    pub debug_fault: Option<&'a str>,
    /// `efi-emulator,cmdline`: a command line longer than the parameter block holds (at most
    /// [`super::MAX_CMDLINE_BYTES`]; a longer one is ignored, as the kernel would cut it).
    pub cmdline: Option<&'a str>,
}

impl<'a> Options<'a> {
    pub fn from_fdt(fdt: &Fdt<'a>) -> Options<'a> {
        let Some(chosen) = fdt.find("/chosen") else { return Options::default() };
        let on = |name: &str| chosen.property(name).is_some();
        Options {
            integrity: on("efi-emulator,integrity"),
            timeline: on("efi-emulator,timeline"),
            no_memory_attribute: on("efi-emulator,no-memory-attribute"),
            secure_boot_audit: on("efi-emulator,secure-boot-audit"),
            generic_sha256: on("efi-emulator,generic-sha256"),
            debug_stale_map_key: on("efi-emulator,debug-stale-map-key"),
            debug_fault: chosen.property_str("efi-emulator,debug-fault"),
            cmdline: chosen.property_str(super::LONG_CMDLINE_CHOSEN).filter(|c| c.len() <= super::MAX_CMDLINE_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use efi_emulator_loader::dtb_edit::Tree;

    #[test]
    fn every_switch_is_read_from_chosen() {
        let mut tree = Tree::parse(&crate::abi::testkit::virt_dtb(1 << 30, "hvc")).unwrap();
        assert_eq!(Options::from_fdt(&Fdt::new(&tree.to_blob()).unwrap()), Options::default());
        let chosen = tree.chosen_mut();
        for name in ["integrity", "timeline", "no-memory-attribute", "secure-boot-audit", "generic-sha256", "debug-stale-map-key"] {
            chosen.set_property(&std::format!("efi-emulator,{name}"), std::vec::Vec::new());
        }
        chosen.set_property("efi-emulator,debug-fault", b"undefined\0".to_vec());
        let blob = tree.to_blob();
        let o = Options::from_fdt(&Fdt::new(&blob).unwrap());
        assert!(o.integrity && o.timeline && o.no_memory_attribute && o.secure_boot_audit && o.generic_sha256 && o.debug_stale_map_key);
        assert_eq!(o.debug_fault, Some("undefined"));
        assert_eq!(o.cmdline, None);
        // A long command line, and one longer than the kernel takes (ignored, not cut).
        let line = "x".repeat(2047);
        tree.chosen_mut().set_property(crate::abi::LONG_CMDLINE_CHOSEN, [line.as_bytes(), b"\0"].concat());
        let blob = tree.to_blob();
        assert_eq!(Options::from_fdt(&Fdt::new(&blob).unwrap()).cmdline, Some(line.as_str()));
        tree.chosen_mut().set_property(crate::abi::LONG_CMDLINE_CHOSEN, [&[b'x'; 2048][..], b"\0"].concat());
        assert_eq!(Options::from_fdt(&Fdt::new(&tree.to_blob()).unwrap()).cmdline, None);
    }
}
