//! The icount suite of `cargo xtask bench`: the emulator's own phases in guest time under
//! `-icount shift=0` (they repeat exactly), and how they scale with the image, the memory and the
//! memory map.

use crate::build::Blob;
use crate::harness::qemu;
use crate::harness::run::{self, RunOptions};
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The emulator's phases from its timeline line (ms since entry) and its mempool use (KiB).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    pub mmu_on: f64,
    pub services_ready: f64,
    pub payload_entered: f64,
    pub exit_boot_services: f64,
    pub mempool_kib: u64,
}

pub fn phases(line: &str) -> Option<Phases> {
    let ms = |name: &str| -> Option<f64> { line.split(&format!("{name} ")).nth(1)?.split(" ms").next()?.parse().ok() };
    let mempool_kib = line.split("mempool used by the emulator: ").nth(1)?.split(" KiB").next()?.parse().ok()?;
    Some(Phases {
        mmu_on: ms("MMU on")?,
        services_ready: ms("boot services ready")?,
        payload_entered: ms("payload entered")?,
        exit_boot_services: ms("ExitBootServices")?,
        mempool_kib,
    })
}

/// One configuration of the icount suite.
pub struct IcountConfig {
    pub name: String,
    options: RunOptions,
}

fn icount_configs(payloads: &Payloads) -> Result<Vec<IcountConfig>> {
    let base =
        |kernel: &Path| RunOptions { kernel: Some(kernel.to_path_buf()), print: false, timeline: true, icount: true, timeout: Duration::from_secs(120), ..RunOptions::default() };
    let image = |series| payloads.kernel(series).map(|k| k.image.clone());
    let uki = payloads.uki("254+6.12")?;
    let uki_opts = |cpu: &str| RunOptions { no_initrd: true, append: String::new(), cpu: cpu.into(), ..base(&uki.path) };
    let mut v = vec![
        IcountConfig { name: "6.1 Image (32 MB), runs in place".into(), options: base(&image("6.1")?) },
        IcountConfig { name: "6.12 Image (43 MB), runs in place".into(), options: base(&image("6.12")?) },
        IcountConfig { name: "6.12 Image, printing on".into(), options: RunOptions { print: true, ..base(&image("6.12")?) } },
        IcountConfig { name: "6.12 Image, the loader reserved only its file size: copied".into(), options: RunOptions { kernel_file_size_only: true, ..base(&image("6.12")?) } },
        IcountConfig { name: format!("UKI {} (46 MB, copied: it is no Linux Image), FEAT_MOPS", uki.name), options: uki_opts("max") },
        IcountConfig { name: format!("UKI {}, the same on -cpu cortex-a72 (no FEAT_MOPS)", uki.name), options: uki_opts("cortex-a72") },
        IcountConfig { name: "6.12 Image, 8 GiB of RAM".into(), options: RunOptions { mem: "8G".into(), ..base(&image("6.12")?) } },
        IcountConfig { name: "6.12 Image, 300 reserved ranges (603 descriptors)".into(), options: RunOptions { reserved_ranges: 300, ..base(&image("6.12")?) } },
    ];
    if let Some(z) = payloads.zboot.iter().find(|z| z.series == "6.12") {
        v.push(IcountConfig { name: format!("zboot 6.12 ({}): the stub decompresses, LoadImage copies", z.compression), options: base(&z.image) });
    }
    Ok(v)
}

/// The icount suite: each configuration `runs` times, stopped at the timeline line.
pub fn icount_suite(blob: &Blob, payloads: &Payloads, runs: usize) -> Result<(Vec<IcountConfig>, Vec<Vec<Phases>>)> {
    let configs = icount_configs(payloads)?;
    let mut out: Vec<Vec<Phases>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        for (c, o) in configs.iter().zip(out.iter_mut()) {
            let prepared = run::prepare(&c.options, blob, Some(payloads))?;
            let t = qemu::run_until(&prepared.qemu_args, c.options.timeout, "timeline: ")?;
            let line = t.find("timeline: ").map(|(_, l)| l.clone()).with_context(|| format!("{}: no timeline line:\n{}", c.name, t.text()))?;
            let p = phases(&line).with_context(|| format!("{}: unreadable timeline {line:?}", c.name))?;
            eprintln!("icount {round}/{runs}: {:<58} payload entered {:8.3} ms, EBS {:8.3} ms", c.name, p.payload_entered, p.exit_boot_services);
            o.push(p);
        }
    }
    Ok((configs, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_lines_parse() {
        let l = "efi-emulator timeline: MMU on 0.637 ms, boot services ready 1.848 ms, payload entered 2.213 ms, ExitBootServices 11.580 ms; mempool used by the emulator: 184 KiB (page tables 52 KiB, heap 4 KiB, pages 128 KiB)";
        assert_eq!(phases(l), Some(Phases { mmu_on: 0.637, services_ready: 1.848, payload_entered: 2.213, exit_boot_services: 11.58, mempool_kib: 184 }));
        assert_eq!(phases("timeline: MMU on 1 ms"), None);
    }
}
