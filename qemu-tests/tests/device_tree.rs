//! The DT reader and editor on QEMU's own `virt` device trees.

use efi_emulator::drivers::fdt::Fdt;
use efi_emulator_loader::dtb_edit::Tree;
use qemu_tests::{options, EntryEl};

fn dump(el: EntryEl, mem: &str, smp: u32) -> Vec<u8> {
    let mut o = options(el);
    o.mem = mem.into();
    o.smp = smp;
    let dir = std::env::temp_dir().join(format!("efi-emu-dtb-{}-{el:?}-{mem}-{smp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = xtask::harness::run::dump_dtb(&o, &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    dtb
}

#[test]
fn reads_memory_psci_console_and_cpus() {
    for (el, mem, bytes, method) in [(EntryEl::El1, "1G", 1u64 << 30, "hvc"), (EntryEl::El2, "2G", 2 << 30, "smc")] {
        let blob = dump(el, mem, 2);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.memory().collect::<Vec<_>>(), [(0x4000_0000, bytes)]);
        assert_eq!(fdt.psci_method(), Some(method), "PSCI conduit at {el:?}");
        let path = fdt.find("/chosen").unwrap().property_str("stdout-path").unwrap();
        let uart = fdt.find(path).unwrap();
        assert!(uart.compatible_with("arm,pl011"));
        assert_eq!(uart.reg(fdt.root().cells()).next(), Some((0x900_0000, 0x1000)));
        let cpus = fdt.find("/cpus").unwrap();
        assert_eq!(cpus.children().filter(|c| c.name.starts_with("cpu@")).count(), 2);
    }
}

#[test]
fn editing_chosen_keeps_everything_else() {
    let blob = dump(EntryEl::El1, "1G", 1);
    let tree = Tree::parse(&blob).unwrap();
    assert_eq!(Tree::parse(&tree.to_blob()).unwrap(), tree, "a real tree survives a round trip");
    let mut edited = tree.clone();
    edited.chosen_mut().set_property("bootargs", b"quiet\0".to_vec());
    let out = edited.to_blob();
    let fdt = Fdt::new(&out).unwrap();
    assert_eq!(fdt.find("/chosen").unwrap().property_str("bootargs"), Some("quiet"));
    assert_eq!(fdt.find("/chosen").unwrap().property("rng-seed").map(|v| v.len()), Some(32), "QEMU's rng-seed kept");
    assert_eq!(fdt.psci_method(), Some("hvc"));
}

/// Every device tree Debian's 6.12 package ships for real boards: the console the emulator
/// would drive is a PL011 or SBSA UART at its CPU address, or there is none (and why); never
/// another device. Spot checks against the boards' own sources.
#[test]
fn real_board_consoles_are_a_pl011_or_none() {
    let image = &qemu_tests::payloads().kernel("6.12").unwrap().image;
    let lib = image.parent().unwrap().parent().unwrap().join("usr/lib");
    let dir = std::fs::read_dir(&lib).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with("linux-image-")).unwrap();
    let mut dtbs: Vec<std::path::PathBuf> = Vec::new();
    for vendor in std::fs::read_dir(&dir).unwrap().flatten() {
        dtbs.extend(std::fs::read_dir(vendor.path()).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "dtb")));
    }
    dtbs.sort();
    let mut outcomes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut found = std::collections::BTreeMap::new();
    for path in &dtbs {
        let blob = std::fs::read(path).unwrap();
        let fdt = Fdt::new(&blob).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let outcome = match fdt.stdout_uart() {
            Ok((base, size)) => {
                found.insert(name.clone(), (base, size));
                "PL011".to_string()
            }
            Err(e) => e.to_string(),
        };
        outcomes.entry(outcome).or_default().push(name);
    }
    for (outcome, boards) in &outcomes {
        eprintln!("{:4} {outcome}: {}", boards.len(), boards.iter().take(3).cloned().collect::<Vec<_>>().join(", "));
    }
    // The boards' own sources: a PL011 at the root, under /soc with identity ranges, and under
    // a bus that translates (a Raspberry Pi's 0x7e201000 is the CPU's 0x3f201000; the Pi 5's
    // debug UART sits above 4 GiB); a 16550-style UART and the Pi 4's mini UART are no console.
    for (board, expected) in [
        ("arm/juno.dtb", Some((0x7ff8_0000, 0x1000))),
        ("hisilicon/hi6220-hikey.dtb", Some((0xf711_3000, 0x1000))),
        ("amd/amd-overdrive-rev-b1.dtb", Some((0xe101_0000, 0x1000))),
        ("freescale/fsl-lx2160a-rdb.dtb", Some((0x21c_0000, 0x1000))),
        ("broadcom/bcm2837-rpi-cm3-io3.dtb", Some((0x3f20_1000, 0x200))),
        ("broadcom/bcm2712-rpi-5-b.dtb", Some((0x10_7d00_1000, 0x200))),
        ("broadcom/bcm2711-rpi-4-b.dtb", None),
        ("rockchip/rk3399-rockpro64.dtb", None),
        ("nvidia/tegra210-p2371-2180.dtb", None),
    ] {
        assert_eq!(found.get(board).copied(), expected, "{board}");
    }
    let refused: usize = outcomes.iter().filter(|(o, _)| o.contains("not a PL011 or SBSA UART")).map(|(_, b)| b.len()).sum();
    assert!(found.len() >= 30 && refused >= 800, "{} PL011 consoles, {refused} other UARTs of {}", found.len(), dtbs.len());
}
