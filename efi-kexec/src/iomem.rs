//! `/proc/iomem`: where the RAM is, and what of it the running kernel has claimed.
//!
//! Top-level "System RAM" entries are the RAM. Everything nested in them ("Kernel code",
//! "reserved", "Crash kernel", ...) is the running kernel's: no segment, stack or mempool may
//! land there, although it is the next kernel's RAM once the emulator has handed over. Entries
//! outside System RAM (firmware, `no-map` reservations, MMIO) are not RAM at all. RAM a driver
//! manages ("System RAM (kmem)", "System RAM (virtio_mem)") is the crashed kernel's memory for
//! a dump, but not the next kernel's: its driver hands it over again (Linux's kexec_file leaves
//! it out the same way).

use efi_emulator::mem::Extent;

/// One line: depth (two spaces per level), the inclusive range, the name.
fn parse_line(line: &str) -> Option<(usize, Extent, &str)> {
    let depth = (line.len() - line.trim_start().len()) / 2;
    let (range, name) = line.trim_start().split_once(" : ")?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    // iomem ends are inclusive; an end below the start is an empty or hidden entry.
    (end >= start).then(|| (depth, Extent::new(start, end - start + 1), name.trim()))
}

/// RAM and the busy ranges inside it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Iomem {
    pub ram: Vec<Extent>,
    pub busy: Vec<(Extent, String)>,
    /// "System RAM (driver)": dax kmem, virtio-mem.
    pub driver_managed: Vec<Extent>,
    /// Every top-level entry, RAM or not.
    pub top: Vec<Extent>,
    /// A TPM behind a TIS over MMIO that ACPI described (`MSFT0101`, bound by tpm_tis): the
    /// device tree of an ACPI machine does not name it, and the emulator measures with it.
    pub tpm_tis: Option<Extent>,
}

impl Iomem {
    /// RAM the device tree has and the running kernel never registered at all (it was booted
    /// with `mem=`): the next kernel's, though nothing may be placed there.
    pub fn hidden_ram(&self, dt_ram: &[Extent]) -> Vec<Extent> {
        dt_ram.iter().flat_map(|&r| efi_emulator::mem::split(r, || self.top.iter().copied())).filter(|e| e.size > 0).collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum IomemError {
    /// Every address reads as 0: the file was read without CAP_SYS_ADMIN.
    Hidden,
    NoRam,
}

impl std::fmt::Display for IomemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hidden => write!(f, "/proc/iomem shows every address as 0: it must be read as root"),
            Self::NoRam => write!(f, "/proc/iomem has no \"System RAM\" entry"),
        }
    }
}

pub fn parse(text: &str) -> Result<Iomem, IomemError> {
    let mut out = Iomem::default();
    let mut in_ram = false;
    let mut hidden = true;
    for line in text.lines() {
        let Some((depth, extent, name)) = parse_line(line) else { continue };
        if extent.start != 0 || extent.size > 1 {
            hidden = false;
        }
        if out.tpm_tis.is_none() && name.starts_with("MSFT0101") {
            out.tpm_tis = Some(extent);
        }
        if depth == 0 {
            out.top.push(extent);
            in_ram = name == "System RAM";
            if in_ram {
                out.ram.push(extent);
            }
        } else if in_ram {
            out.busy.push((extent, name.to_string()));
        }
        // Driver-managed RAM sits at the top (dax kmem) or inside its device's region
        // (virtio-mem: "virtio0" > "System RAM (virtio_mem)").
        if !in_ram && name.starts_with("System RAM (") {
            out.driver_managed.push(extent);
        }
    }
    if hidden && !text.trim().is_empty() {
        return Err(IomemError::Hidden);
    }
    if out.ram.is_empty() {
        return Err(IomemError::NoRam);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's 6.12 prints on QEMU virt with 2 GiB, shortened, plus a second bank.
    const VIRT: &str = "\
00000000-03ffffff : LNRO0009:00
09000000-09000fff : pl011@9000000
0c000000-0c004fff : MSFT0101:00
  0c000000-0c004fff : MSFT0101:00
  09000000-09000fff : 9000000.pl011 pl011@9000000
40000000-bfffffff : System RAM
  40210000-4223ffff : Kernel code
  42240000-4277ffff : reserved
  42780000-42b6ffff : Kernel data
  48000000-480fffff : reserved
    48000000-4800ffff : nested deeper
  bfe00000-bfffffff : reserved
c0000000-c01fffff : reserved
100000000-17fffffff : System RAM
  17f000000-17fffffff : Crash kernel
180000000-1bfffffff : virtio0
  180000000-18fffffff : System RAM (virtio_mem)
  190000000-197ffffff : System RAM (virtio_mem)
1c0000000-1ffffffff : System RAM (kmem)
";

    #[test]
    fn ram_banks_and_what_the_kernel_holds() {
        let m = parse(VIRT).unwrap();
        assert_eq!(m.ram, [Extent::new(0x4000_0000, 0x8000_0000), Extent::new(0x1_0000_0000, 0x8000_0000)]);
        let names: Vec<_> = m.busy.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["Kernel code", "reserved", "Kernel data", "reserved", "nested deeper", "reserved", "Crash kernel"]);
        assert_eq!(m.busy[0].0, Extent::new(0x4021_0000, 0x4224_0000 - 0x4021_0000), "inclusive ends become exclusive");
        assert_eq!(m.tpm_tis, Some(Extent::new(0xc00_0000, 0x5000)), "QEMU's tpm-tis-device, as ACPI names it");
        assert!(!m.busy.iter().any(|(e, _)| e.start == 0xc000_0000), "top-level reserved is not RAM at all");
        assert_eq!(
            m.driver_managed,
            [Extent::new(0x1_8000_0000, 0x1000_0000), Extent::new(0x1_9000_0000, 0x800_0000), Extent::new(0x1_c000_0000, 0x4000_0000)],
            "virtio-mem (inside its device's region, as 6.12 lists it) and dax kmem: dumped, not handed on"
        );
    }

    /// `mem=2G` on a 4 GiB machine: the device tree still has the RAM the kernel left alone.
    #[test]
    fn ram_hidden_by_mem_is_found_in_the_device_tree() {
        let m = parse(VIRT).unwrap();
        let dt = [Extent::new(0x4000_0000, 0x8000_0000), Extent::new(0x1_0000_0000, 0x1_0000_0000)];
        assert_eq!(m.hidden_ram(&dt), [], "all of it registered (the driver-managed RAM too)");
        let dt = [Extent::new(0x4000_0000, 0x8000_0000), Extent::new(0x1_0000_0000, 0x2_0000_0000)];
        assert_eq!(m.hidden_ram(&dt), [Extent::new(0x2_0000_0000, 0x1_0000_0000)], "beyond what iomem lists; the top-level reserved range stays out");
    }

    #[test]
    fn unprivileged_reads_are_refused() {
        let hidden = "00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n";
        assert_eq!(parse(hidden), Err(IomemError::Hidden));
        assert_eq!(parse("09000000-09000fff : pl011@9000000\n"), Err(IomemError::NoRam));
    }
}
