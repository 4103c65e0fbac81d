//! `cargo xtask fuzz`: the libFuzzer targets in `fuzz/` (cargo-fuzz, which needs a nightly
//! toolchain for its sanitizer flags), seeded from the real payloads.

use crate::cargo::{Cargo, Toolchain};
use crate::paths;
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use efi_emulator_loader::plan as loader;
use std::path::{Path, PathBuf};

pub const TARGETS: [&str; 14] = [
    "pe_loader",
    "param_validate",
    "dtb_reader",
    "device_path",
    "memory_map",
    "variable_store",
    "fat_image",
    "decompress",
    "kexec_file_entry",
    "secure_boot",
    "image_info",
    "service_calls",
    "firmware_merge",
    "event_log",
];

/// Installs cargo-fuzz when it is missing (from crates.io).
pub fn ensure_tools() -> Result<()> {
    if Cargo::new("fuzz").toolchain(Toolchain::Nightly).caller_dir().arg("--version").command().output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz");
    crate::process::run_checked(&mut Cargo::new("install").toolchain(Toolchain::RustupDefault).caller_dir().args(["--locked", "cargo-fuzz"]).command())
        .context("installing cargo-fuzz")
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// Seed inputs from the real payloads.
fn seeds(p: &Payloads, misbehave: &Path, target: &str) -> Result<PathBuf> {
    let dir = paths::cache_dir().join("fuzz/seeds").join(target);
    match target {
        "secure_boot" => {
            // A length, a db, a PE file: Microsoft's db (from Debian's AAVMF store) with the
            // signed shim it accepts and the GRUB it refuses, when the boot loaders are in the
            // cache (`cargo xtask payloads`); an unsigned image with no db always.
            let with_db = |db: &[u8], file: &[u8]| [&(db.len() as u16).to_le_bytes()[..], db, file].concat();
            if let Ok(loaders) = p.loaders() {
                let store = std::fs::read(crate::harness::secure_boot::MS_VARS).with_context(|| crate::harness::secure_boot::MS_VARS)?;
                let db = crate::harness::secure_boot::read_variable(&store, "db", &crate::harness::secure_boot::IMAGE_SECURITY_DATABASE).context("no db in the Microsoft store")?;
                write_seed(&dir, "ms-db-shim-signed", &with_db(&db, &std::fs::read(&loaders.shim.path)?))?;
                write_seed(&dir, "ms-db-grub-signed", &with_db(&db, &std::fs::read(&loaders.grub.signed)?))?;
            }
            write_seed(&dir, "misbehave.efi", &with_db(&[], &std::fs::read(misbehave)?))?;
        }
        "image_info" => {
            // The UKIs, the kernels' heads, and a UKI that holds itself as .linux.
            for u in &p.ukis {
                write_seed(&dir, &format!("uki-{}", u.name), &std::fs::read(&u.path)?)?;
            }
            let k = std::fs::read(&p.kernel("6.12")?.image)?;
            write_seed(&dir, "debian-6.12-head", &k[..k.len().min(256 * 1024)])?;
            let mut own = efi_emulator::efi::pe::test_image();
            let s = 0x58 + 240;
            own[s..s + 8].copy_from_slice(b".linux\0\0");
            let len = (own.len() as u32).to_le_bytes();
            own[s + 8..s + 12].copy_from_slice(&len);
            own[s + 16..s + 20].copy_from_slice(&len);
            own[s + 20..s + 24].copy_from_slice(&[0; 4]);
            write_seed(&dir, "uki-holding-itself", &own)?;
        }
        "pe_loader" => {
            for s in &p.stubs {
                write_seed(&dir, &format!("systemd-stub-{}", s.version), &std::fs::read(&s.path)?)?;
            }
            write_seed(&dir, "misbehave.efi", &std::fs::read(misbehave)?)?;
            // The kernel's headers and first section start: what the parser looks at.
            let k = std::fs::read(&p.kernel("6.12")?.image)?;
            write_seed(&dir, "debian-6.12-head", &k[..k.len().min(256 * 1024)])?;
        }
        "kexec_file_entry" => {
            use efi_emulator_loader::bundle;
            write_seed(&dir, "bundle", &bundle::make(b"MZ kernel", Some(b"initrd"), Some("console=ttyAMA0")))?;
            // QEMU's DTB as kexec_file_load passes it: the payload named in /chosen.
            let mut tree = efi_emulator_loader::dtb_edit::Tree::parse(&qemu_dtb()?).map_err(|e| anyhow::anyhow!("{e}"))?;
            let chosen = tree.chosen_mut();
            chosen.set_property("linux,initrd-start", 0x4400_0000u64.to_be_bytes().to_vec());
            // The fuzz target's own payload, so the plan gets past reading it.
            let payload = bundle::make(b"MZ a kernel", Some(b"an initrd"), Some("quiet"));
            chosen.set_property("linux,initrd-end", (0x4400_0000 + payload.len() as u64).to_be_bytes().to_vec());
            write_seed(&dir, "kexec-file.dtb", &tree.to_blob())?;
        }
        "param_validate" | "dtb_reader" => {
            let dtb = qemu_dtb()?;
            if target == "dtb_reader" {
                write_seed(&dir, "qemu-virt.dtb", &dtb)?;
            } else {
                let kernel = vec![0u8; 4096];
                let blob = std::fs::read(crate::build::build_blob(false)?.bin)?;
                let spec = loader::BootSpec {
                    kernel: &kernel,
                    initrd: None,
                    esp: None,
                    dtb: &dtb,
                    emulator: &blob,
                    cmdline: "console=ttyAMA0",
                    uart: (0x900_0000, 0x1000),
                    earlycon_name: "amba-pl011",
                    print: true,
                    memory: loader::MemoryLayout::from_dtb(&dtb).map_err(|e| anyhow::anyhow!("{e}"))?.with_busy(efi_emulator::mem::Extent::new(0x4000_0000, 1 << 20)),
                    placement: Default::default(),
                    file_size_only: false,
                    firmware: false,
                    seeds: None,
                    extra_chosen: Vec::new(),
                    crash: None,
                    page_size: efi_emulator::mem::PAGE_SIZE,
                };
                let img = loader::plan(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
                let param = img.param_bytes();
                let mut seed = (param.len() as u16).to_le_bytes().to_vec();
                seed[0] |= 1;
                seed.extend_from_slice(&param);
                seed.extend_from_slice(&img.dtb);
                write_seed(&dir, "loader-library-block", &seed)?;
            }
        }
        "device_path" => {
            use efi_emulator::efi::device_path;
            write_seed(&dir, "initrd-vendor-media", &device_path::vendor_media(&efi_emulator::efi::guids::LINUX_EFI_INITRD_MEDIA))?;
            write_seed(&dir, "memory-mapped", &device_path::memory_mapped(2, 0x4000_0000, 0x4fff_ffff))?;
        }
        "fat_image" => {
            let files: &[(&str, &[u8])] = &[("EFI/BOOT/BOOTAA64.EFI", b"MZ"), ("loader/entries/a long entry name.conf", b"title A\n"), ("EFI/Linux/x.efi", &[0u8; 5000])];
            write_seed(&dir, "fat12-esp", &esp_image::image_from_files(files, 256 * 1024)?)?;
            // Long names everywhere: names of up to 255 units (20 pieces each), a directory of
            // them, and a deep path of long directory names.
            let names: Vec<String> = (0..60).map(|i| format!("loader/entries/{}-{i}.conf", "a long entry name with spaces".repeat(1 + i % 8))).collect();
            let deep = format!("{}/leaf.efi", (0..6).map(|i| format!("directory number {i} {}", "x".repeat(200))).collect::<Vec<_>>().join("/"));
            let mut long: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"title\n"[..])).collect();
            long.push((deep.as_str(), b"MZ"));
            write_seed(&dir, "long-names", &esp_image::image_from_files(&long, 1024 * 1024)?)?;
        }
        "firmware_merge" => {
            // An EDK2-like completion: the loader's three descriptors, the firmware's six at
            // EDK2's 48-byte stride (runtime code and data moved, ACPI, flash MMIO), and a system
            // table with its signature (see the target for the layout).
            let desc = |ty: u32, start: u64, pages: u64, virt: u64, attr: u64, stride: usize| {
                let mut d = vec![0u8; stride];
                d[0..4].copy_from_slice(&ty.to_le_bytes());
                d[8..16].copy_from_slice(&start.to_le_bytes());
                d[16..24].copy_from_slice(&virt.to_le_bytes());
                d[24..32].copy_from_slice(&pages.to_le_bytes());
                d[32..40].copy_from_slice(&attr.to_le_bytes());
                d
            };
            let (rt, wb) = (0x8000_0000_0000_0008u64, 0x8u64);
            let mut seed = vec![3u8, 1];
            seed.extend_from_slice(&2048u16.to_le_bytes());
            seed.extend_from_slice(&0x5000_0000u64.to_le_bytes());
            seed.extend_from_slice(&0x1000_0000u64.to_le_bytes());
            seed.extend_from_slice(&0xbf10_0000u64.to_le_bytes());
            for (ty, start, pages) in [(4u32, 0x4000_0000u64, 0x10000u64), (7, 0x5000_0000, 0x10000), (4, 0x6000_0000, 0x5f000)] {
                seed.extend(desc(ty, start, pages, 0, wb, 40));
            }
            for (ty, start, pages, virt, attr) in [
                (11u32, 0x0400_0000u64, 0x4000u64, 0x2000_0000u64, rt),
                (4, 0x4000_0000, 0x7e000, 0, wb),
                (9, 0xbe00_0000, 0x10, 0, wb),
                (7, 0xbe01_0000, 0xff0, 0, wb),
                (5, 0xbf00_0000, 0x100, 0x2400_0000, rt),
                (6, 0xbf10_0000, 0x100, 0x2410_0000, rt),
            ] {
                seed.extend(desc(ty, start, pages, virt, attr, 48));
            }
            let mut systab = vec![0u8; 300];
            systab[0..8].copy_from_slice(&efi_emulator::efi::guids::SYSTEM_TABLE_SIGNATURE.to_le_bytes());
            systab[8..12].copy_from_slice(&((2u32 << 16) | 70).to_le_bytes());
            seed.extend(systab);
            write_seed(&dir, "edk2-like", &seed)?;
        }
        "event_log" => {
            // A crypto-agile log with SHA-1 and SHA-256 banks: a separator, an image, the locality.
            use efi_emulator::efi::event_log::{event_type, Writer};
            use efi_emulator::efi::secure_boot::hash::{Hash, HashAlg};
            let mut buf = vec![0u8; 4096];
            let mut w = Writer::new(&mut buf, &[HashAlg::Sha1, HashAlg::Sha256]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            w.measure(4, event_type::SEPARATOR, &[&[0u8; 4]], &[0u8; 4]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            w.measure(4, event_type::EFI_BOOT_SERVICES_APPLICATION, &[b"an image"], &[0u8; 40]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            w.append(0, event_type::NO_ACTION, &[Hash::new(&[0; 20]), Hash::new(&[0; 32])], b"StartupLocality\0\x03").map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let log = w.bytes().to_vec();
            write_seed(&dir, "two-banks", &log)?;
            // An earlier boot's memory: Linux's copy (size, preboot 0, version 2, the log), then
            // a final-events table of one event, its offset in the last two bytes.
            let mut fin = vec![0u8; 512];
            let mut f = Writer::events_only(&mut fin, &[HashAlg::Sha1, HashAlg::Sha256]);
            f.measure(5, event_type::EFI_ACTION, &[b"Exit Boot Services Invocation"], b"Exit Boot Services Invocation").map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let mut memory = Vec::new();
            memory.extend_from_slice(&(log.len() as u32).to_le_bytes());
            memory.extend_from_slice(&0u32.to_le_bytes());
            memory.push(2);
            memory.extend_from_slice(&log);
            let table_at = memory.len() as u16;
            memory.extend_from_slice(&1u64.to_le_bytes());
            memory.extend_from_slice(&1u64.to_le_bytes());
            memory.extend_from_slice(f.bytes());
            memory.extend_from_slice(&table_at.to_le_bytes());
            write_seed(&dir, "earlier-boot", &memory)?;
        }
        "decompress" => {
            let data = paths::root().join("emulator/tests/data/decompress");
            for name in ["text.efi", "mixed.efi", "text.tiano"] {
                write_seed(&dir, name, &std::fs::read(data.join(name))?)?;
            }
        }
        _ => write_seed(&dir, "empty", &[0u8; 64])?,
    }
    Ok(dir)
}

fn qemu_dtb() -> Result<Vec<u8>> {
    let dir = paths::cache_dir().join("fuzz");
    std::fs::create_dir_all(&dir)?;
    crate::harness::run::dump_dtb(&crate::harness::run::RunOptions::default(), &dir)
}

/// Runs every target (or one) for `seconds` each; fails on the first crash, or on an input that
/// takes over 30 s (a stall is a finding too).
pub fn fuzz(p: &Payloads, seconds: u64, only: Option<&str>) -> Result<Vec<(String, String)>> {
    ensure_tools()?;
    let misbehave = crate::build::build_misbehave()?;
    let mut results = Vec::new();
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        let seeds = seeds(p, &misbehave, target)?;
        let corpus = paths::cache_dir().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        eprintln!("fuzz: {target} for {seconds} s");
        let out = Cargo::new("fuzz")
            .toolchain(Toolchain::Nightly)
            .dir(&paths::root().join("fuzz"))
            .args(["run", target])
            .arg(&corpus)
            .arg(&seeds)
            .args(["--", &format!("-max_total_time={seconds}"), "-max_len=262144", "-print_final_stats=1", "-timeout=30"])
            .command()
            .output()
            .context("cargo +nightly fuzz run")?;
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        let execs = log.lines().find_map(|l| l.strip_prefix("stat::number_of_executed_units:")).map(|s| s.trim().to_string()).unwrap_or_else(|| "?".into());
        anyhow::ensure!(out.status.success(), "fuzz target {target} failed:\n{}", log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
        eprintln!("fuzz: {target}: {execs} executions, no crash");
        results.push((target.to_string(), execs));
    }
    Ok(results)
}
