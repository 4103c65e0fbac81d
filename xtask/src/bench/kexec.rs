//! The real-kexec suite of `cargo xtask bench`: `kexec -e` to the userspace marker, Debian's
//! kexec-tools ([`crate::payloads::kexec_tools`]) beside `efi-kexec`, from the same first kernel
//! (Debian's 6.12 under QEMU, [`crate::harness::kexec`]) through `kexec_load`, and from the
//! kexec_file first kernel through `kexec_file_load`.

use crate::bench::stats::cell;
use crate::harness::kexec::{self, FirstBoot, FIRST_CPU};
use crate::harness::qemu::{self, Transcript};
use crate::harness::run;
use crate::harness::trampoline::EntryEl;
use crate::paths;
use crate::payloads::apt::Apt;
use crate::payloads::file_kernel;
use crate::payloads::initramfs::MARKER;
use crate::payloads::kexec_stage::{self, NextBoot};
use crate::payloads::kexec_tools::{self, ensure_kexec_tools, EXEC_LINE, LOAD_LINE, STAGE};
use crate::payloads::Payloads;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The emulator's banner and the payload's EFI stub: milestones only the EFI path has.
const BANNER: &str = "efi-emulator 0.";
const EFI_STUB: &str = "EFI stub: ";

/// One boot's milestones after the first kernel's `exec at uptime` line, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// `load` to `exec` in the first kernel's own uptime: how long the loader took.
    pub load: Option<f64>,
    pub banner: Option<f64>,
    pub stub: Option<f64>,
    pub marker: f64,
}

/// The last lines of a transcript, for errors.
fn tail(t: &Transcript) -> String {
    let skip = t.lines.len().saturating_sub(40);
    t.lines[skip..].iter().map(|(d, l)| format!("[{:8.3}] {l}", d.as_secs_f64())).collect::<Vec<_>>().join("\n")
}

/// Measures one boot: everything relative to the `exec at uptime` line, and only what
/// follows it (the first kernel prints nothing of the kind, but stay strict).
fn sample(t: &Transcript) -> Result<Sample> {
    let Some(exec) = t.lines.iter().position(|(_, l)| l.contains(EXEC_LINE)) else {
        bail!("the first kernel never reached `kexec -e` ({}):\n{}", t.command, tail(t));
    };
    let t_exec = t.lines[exec].0;
    let after = |needle: &str| t.lines[exec + 1..].iter().find(|(_, l)| l.contains(needle)).map(|(d, _)| d.saturating_sub(t_exec).as_secs_f64());
    let Some(marker) = after(MARKER) else {
        bail!("no userspace marker after kexec ({}):\n{}", t.command, tail(t));
    };
    let uptime = |needle: &str| t.lines.iter().find_map(|(_, l)| l.split(needle).nth(1)?.trim().parse::<f64>().ok());
    let load = uptime(EXEC_LINE).zip(uptime(LOAD_LINE)).map(|(exec, load)| exec - load);
    Ok(Sample { load, banner: after(BANNER), stub: after(EFI_STUB), marker })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Times kexec into the next kernel six ways, interleaved round by round. From Debian's 6.12
/// through `kexec_load`: Debian's kexec-tools with the 6.1 Image (no EFI), `efi-kexec` with the
/// same Image (through the emulator and the kernel's EFI stub), and `efi-kexec` with the
/// 254+6.12 UKI. From the kexec_file kernel through `kexec_file_load` (`kexec -s`): the raw 6.12
/// Image (no EFI), and the emulator Image (`emulator_blob` wrapped) with the same Image and
/// initrd as a bundle, and with the UKI. Returns the report (a Markdown table).
pub fn bench_kexec(efi_kexec: &Path, emulator_blob: &Path, payloads: &Payloads, runs: usize) -> Result<String> {
    let timeout = Duration::from_secs(300);
    let tools = ensure_kexec_tools()?;
    let image = payloads.kernel("6.1")?.image.clone();
    let initrd = std::fs::read(&payloads.initramfs).with_context(|| format!("reading {}", payloads.initramfs.display()))?;
    let next_image = || NextBoot {
        image: image.clone(),
        initrd: Some(initrd.clone()),
        append: Some(run::DEFAULT_APPEND.into()),
        extra: Vec::new(),
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let uki = payloads.uki("254+6.12")?;
    // An empty command line lets the UKI use its own `.cmdline`.
    let next_uki = NextBoot { image: uki.path.clone(), initrd: None, append: Some(String::new()), extra: Vec::new(), before_load: None, before_exec: None, files: Vec::new() };
    // Each configuration's first-kernel initramfs, built once. kexec-tools with `-i`: no
    // purgatory SHA-256 check of the segments at `kexec -e` (about 10 s under TCG), as efi-kexec
    // does none. Loading takes kexec-tools 80-100 s under TCG either way; this release cannot
    // use `kexec_file_load` (`-s`) on arm64.
    let unchecked = NextBoot { extra: vec!["-i".into()], ..next_image() };
    let debian = payloads.kernel("6.12")?.image.clone();
    // The signed door: kexec_file_load from the kexec_file first kernel, kexec-tools' `-s`, with
    // the raw 6.12 Image (no EFI) and through the emulator Image with the same Image and initrd
    // (a bundle) and with the UKI.
    let file_kernel = file_kernel::ensure(&Apt::open(&paths::cache_dir())?)?.image;
    let emulator = efi_emulator::abi::image::wrap(&std::fs::read(emulator_blob)?).map_err(anyhow::Error::msg)?;
    let emulator_file = std::env::temp_dir().join(format!("efi-emulator-bench-{}.efi", std::process::id()));
    std::fs::write(&emulator_file, &emulator)?;
    let image_612 = std::fs::read(&debian)?;
    let raw_file = NextBoot {
        image: debian.clone(),
        initrd: Some(initrd.clone()),
        append: Some(run::DEFAULT_APPEND.into()),
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let bundle = efi_emulator_loader::bundle::make(&image_612, Some(&initrd), None);
    let emulator_bundle = NextBoot {
        image: emulator_file.clone(),
        initrd: Some(bundle),
        append: Some(run::DEFAULT_APPEND.into()),
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let emulator_uki = NextBoot {
        image: emulator_file.clone(),
        initrd: Some(std::fs::read(&uki.path)?),
        append: Some(String::new()),
        extra: vec!["-s".into()],
        before_load: None,
        before_exec: None,
        files: Vec::new(),
    };
    let first_612 = payloads.kernel("6.12")?.image.clone();
    let configs: Vec<(String, Vec<u8>, PathBuf)> = vec![
        (
            format!("kexec-tools {} `kexec -l -i` Image 6.1 + initrd (no EFI)", tools.version),
            kexec_tools::stage_initramfs(&payloads.busybox, &tools, &unchecked)?,
            first_612.clone(),
        ),
        ("efi-kexec, Image 6.1 + initrd (emulator, EFI stub)".into(), kexec_stage::stage_initramfs(&payloads.busybox, efi_kexec, STAGE, &next_image())?, first_612.clone()),
        (format!("efi-kexec, UKI {} (emulator, systemd-stub)", uki.name), kexec_stage::stage_initramfs(&payloads.busybox, efi_kexec, STAGE, &next_uki)?, first_612),
        ("kexec-tools `kexec -s` Image 6.12 + initrd (kexec_file_load, no EFI)".into(), kexec_tools::stage_initramfs(&payloads.busybox, &tools, &raw_file)?, file_kernel.clone()),
        (
            "kexec-tools `kexec -s` efi-emulator.efi + bundle of Image 6.12 and initrd".into(),
            kexec_tools::stage_initramfs(&payloads.busybox, &tools, &emulator_bundle)?,
            file_kernel.clone(),
        ),
        (format!("kexec-tools `kexec -s` efi-emulator.efi + UKI {}", uki.name), kexec_tools::stage_initramfs(&payloads.busybox, &tools, &emulator_uki)?, file_kernel),
    ];
    let _ = std::fs::remove_file(&emulator_file);
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved: every configuration once per round, so drift hits all alike.
        for ((name, initramfs, first), out) in configs.iter().zip(samples.iter_mut()) {
            let t = kexec::boot_first_kernel(first, EntryEl::El1, FirstBoot::Direct, initramfs, None, timeout, false)?;
            let s = sample(&t).with_context(|| name.clone())?;
            eprintln!("round {round}/{runs}: {name:<72} load {:>7} banner {:>6} stub {:>6} marker {:6.3} s", opt(s.load), opt(s.banner), opt(s.stub), s.marker);
            out.push(s);
        }
    }
    let (major, minor) = qemu::version()?;
    let mut report = format!(
        "QEMU {major}.{minor} virt, TCG, -cpu {FIRST_CPU}, -m 2G, -smp 2, EL1; first kernel Debian {} (`-kernel`; for `kexec -s` the kexec_file kernel built from linux-source {}), \
         next kernel Debian {} (`kexec -s`: {}); kexec-tools {} (Debian arm64); medians of {runs} (min–max), interleaved; seconds after the first kernel's `exec at uptime` line.\n\n",
        payloads.kernel("6.12")?.version,
        file_kernel::SERIES,
        payloads.kernel("6.1")?.version,
        payloads.kernel("6.12")?.version,
        tools.version,
    );
    report.push_str("| configuration | load (guest time) | exec → emulator banner | exec → EFI stub | exec → marker |\n|---|---:|---:|---:|---:|\n");
    for ((name, _, _), s) in configs.iter().zip(&samples) {
        let col = |f: fn(&Sample) -> Option<f64>| cell(&s.iter().filter_map(f).collect::<Vec<_>>(), runs);
        report.push_str(&format!("| {name} | {} | {} | {} | {} |\n", col(|x| x.load), col(|x| x.banner), col(|x| x.stub), col(|x| Some(x.marker))));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[(f64, &str)]) -> Transcript {
        Transcript {
            lines: lines.iter().map(|&(t, l)| (Duration::from_secs_f64(t), l.to_string())).collect(),
            exit: None,
            timed_out: false,
            elapsed: Duration::from_secs(10),
            first_byte: None,
            command: "qemu-system-aarch64 ...".into(),
        }
    }

    #[test]
    fn samples_are_relative_to_exec_and_only_after_it() {
        let t = transcript(&[
            (1.0, "EFI stub: a line before kexec does not count"),
            (1.5, "efi-kexec-test: first: load at uptime 0.75"),
            (2.0, "efi-kexec-test: first: exec at uptime 1.50"),
            (2.25, "[    0.004961] efi-emulator 0.1.0 (ABI 1), running at EL1"),
            (2.5, "EFI stub: Booting Linux Kernel..."),
            (4.0, MARKER),
            (4.5, MARKER),
        ]);
        let s = sample(&t).unwrap();
        assert_eq!(s, Sample { load: Some(0.75), banner: Some(0.25), stub: Some(0.5), marker: 2.0 });

        let plain = transcript(&[(3.0, "efi-kexec-test: first: exec at uptime 2.00"), (3.5, "Booting Linux"), (5.0, MARKER)]);
        assert_eq!(sample(&plain).unwrap(), Sample { load: None, banner: None, stub: None, marker: 2.0 });
    }

    #[test]
    fn a_boot_without_marker_or_exec_is_an_error() {
        let refused = transcript(&[(1.0, "efi-kexec-test: first: load refused; still running 6.12"), (1.1, MARKER)]);
        assert!(sample(&refused).unwrap_err().to_string().contains("load refused"));
        let hung = transcript(&[(1.0, "efi-kexec-test: first: exec at uptime 1.0"), (2.0, "Kernel panic")]);
        let e = sample(&hung).unwrap_err().to_string();
        assert!(e.contains("no userspace marker") && e.contains("Kernel panic"), "{e}");
    }

    /// One real round of [`bench_kexec`] (six QEMU boots, minutes):
    /// `cargo test -p xtask --lib bench::kexec::tests::bench_smoke -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_smoke() -> Result<()> {
        let payloads = crate::payloads::ensure()?;
        let blob = crate::build::Blob::load(&paths::out_dir().join("efi-emulator.bin"))?;
        let efi_kexec = crate::build::build_efi_kexec(&blob)?;
        let tools = ensure_kexec_tools()?;
        println!("kexec-tools {} from {:?}", tools.version, tools.packages);
        for (path, host) in &tools.libs {
            println!("  /{path} <- {}", host.display());
        }
        println!("{}", bench_kexec(&efi_kexec, &blob.bin, &payloads, 1)?);
        Ok(())
    }
}
