//! `cargo xtask bench`: boot times through the emulator (printing on and off) beside QEMU's
//! direct `-kernel` boot and EDK2 (`-bios QEMU_EFI.fd -kernel`), interleaved in one run,
//! medians of N.

use crate::build::Blob;
use crate::payloads::{Payloads, MARKER};
use crate::qemu::{self, Transcript};
use crate::run::{self, RunOptions};
use crate::trampoline::EntryEl;
use anyhow::{bail, Result};
use std::time::Duration;

/// One way of booting a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// QEMU loads the Image itself and enters it without EFI.
    Direct,
    /// The kexec-style hand-off into efi-emulator.
    Emulator,
    /// The same with `print_enabled = 0`.
    EmulatorQuiet,
    /// Debian's EDK2 for QEMU loads the kernel itself and starts its EFI stub.
    Edk2,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct -kernel (no EFI)",
            Mode::Emulator => "efi-emulator (kexec hand-off)",
            Mode::EmulatorQuiet => "efi-emulator, printing off",
            Mode::Edk2 => "EDK2 2022.11 (-bios -kernel)",
        }
    }
}

/// What one boot measured, in seconds from QEMU's start (and the emulator's own time).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub stub: Option<f64>,
    pub marker: f64,
    /// Emulator entry to payload entry, from its own CNTPCT reading.
    pub handoff_ms: Option<f64>,
}

fn sample(t: &Transcript) -> Result<Sample> {
    let marker = t.find(MARKER).map(|(d, _)| d.as_secs_f64());
    let Some(marker) = marker else {
        bail!("no userspace marker:\n{}", t.text());
    };
    let stub = t.find("EFI stub: ").map(|(d, _)| d.as_secs_f64());
    let handoff_ms = t.find("handing off to the payload").and_then(|(_, l)| {
        let ms = l.split(": ").nth(1)?.split(" ms").next()?;
        ms.trim().parse::<f64>().ok()
    });
    Ok(Sample { stub, marker, handoff_ms })
}

/// Debian's EDK2 build for QEMU (package `qemu-efi-aarch64`).
pub const QEMU_EFI: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/// QEMU boots `kernel` itself (`-kernel`), directly or through `firmware` (`-bios`).
fn qemu_kernel(firmware: Option<&str>, kernel: &std::path::Path, initrd: Option<&std::path::Path>, append: &str, timeout: Duration) -> Result<Transcript> {
    let mut args: Vec<String> = ["-M", "virt", "-cpu", "max", "-m", "1G", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(f) = firmware {
        args.extend(["-bios".into(), f.into()]);
    }
    args.extend(["-kernel".into(), kernel.display().to_string(), "-append".into(), append.into()]);
    if let Some(i) = initrd {
        args.extend(["-initrd".into(), i.display().to_string()]);
    }
    qemu::run(&args, timeout, false)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How one configuration boots.
enum How {
    /// QEMU's `-kernel`, directly (`None`) or through a firmware.
    Qemu {
        firmware: Option<&'static str>,
        kernel: std::path::PathBuf,
        initrd: Option<std::path::PathBuf>,
        append: String,
    },
    Emulator(Box<RunOptions>),
}

/// One configuration of the benchmark.
struct Config {
    kernel: String,
    mode: Mode,
    how: How,
}

fn configs(payloads: &Payloads, timeout: Duration) -> Result<Vec<Config>> {
    let emu = |kernel: std::path::PathBuf, no_initrd: bool, append: &str, print: bool| RunOptions {
        kernel: Some(kernel),
        no_initrd,
        append: append.to_string(),
        el: EntryEl::El1,
        timeout,
        print,
        ..RunOptions::default()
    };
    let qemu = |firmware, kernel: std::path::PathBuf, initrd: Option<std::path::PathBuf>, append: &str| How::Qemu { firmware, kernel, initrd, append: append.to_string() };
    let initramfs = Some(payloads.initramfs.clone());
    let mut v = Vec::new();
    for series in ["6.1", "6.12"] {
        let k = payloads.kernel(series)?.image.clone();
        let name = format!("Debian {series} Image");
        v.push(Config { kernel: name.clone(), mode: Mode::Direct, how: qemu(None, k.clone(), initramfs.clone(), run::DEFAULT_APPEND) });
        v.push(Config { kernel: name.clone(), mode: Mode::Emulator, how: How::Emulator(Box::new(emu(k.clone(), false, run::DEFAULT_APPEND, true))) });
        v.push(Config { kernel: name.clone(), mode: Mode::EmulatorQuiet, how: How::Emulator(Box::new(emu(k.clone(), false, run::DEFAULT_APPEND, false))) });
        v.push(Config { kernel: name, mode: Mode::Edk2, how: qemu(Some(QEMU_EFI), k, initramfs.clone(), run::DEFAULT_APPEND) });
    }
    for u in &payloads.ukis {
        v.push(Config { kernel: format!("UKI {}", u.name), mode: Mode::Emulator, how: How::Emulator(Box::new(emu(u.path.clone(), true, "", true))) });
        // An empty command line: the UKI uses its own `.cmdline` and `.initrd`.
        v.push(Config { kernel: format!("UKI {}", u.name), mode: Mode::Edk2, how: qemu(Some(QEMU_EFI), u.path.clone(), None, "") });
    }
    for z in &payloads.zboot {
        // Beside it, the same build's plain Image booted directly.
        let image = z.image.with_file_name("Image");
        v.push(Config { kernel: format!("zboot {} (its Image)", z.series), mode: Mode::Direct, how: qemu(None, image, initramfs.clone(), run::DEFAULT_APPEND) });
        v.push(Config {
            kernel: format!("zboot {} ({})", z.series, z.compression),
            mode: Mode::Emulator,
            how: How::Emulator(Box::new(emu(z.image.clone(), false, run::DEFAULT_APPEND, true))),
        });
    }
    Ok(v)
}

/// Runs the benchmark and returns the report (a Markdown table).
pub fn bench(blob: &Blob, payloads: &Payloads, runs: usize) -> Result<String> {
    let timeout = Duration::from_secs(180);
    let configs = configs(payloads, timeout)?;
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved: every configuration once per round, so drift hits all alike.
        for (c, out) in configs.iter().zip(samples.iter_mut()) {
            let t = match &c.how {
                How::Qemu { firmware, kernel, initrd, append } => qemu_kernel(*firmware, kernel, initrd.as_deref(), append, timeout)?,
                How::Emulator(o) => run::boot(o, blob, Some(payloads))?,
            };
            let s = sample(&t)?;
            eprintln!("round {round}/{runs}: {:<22} {:<30} stub {:>6} marker {:6.3} s", c.kernel, c.mode.name(), s.stub.map_or("-".into(), |v| format!("{v:.3}")), s.marker);
            out.push(s);
        }
    }
    let (major, minor) = qemu::version()?;
    let mut report = format!("QEMU {major}.{minor} virt, TCG, -cpu max, -m 1G, -smp 1, EL1; medians of {runs}, interleaved; seconds from QEMU start.\n\n");
    report.push_str("| kernel | boot | EFI stub entered | userspace marker | emulator entry to handoff |\n|---|---|---:|---:|---:|\n");
    for (c, s) in configs.iter().zip(&samples) {
        let stub: Vec<f64> = s.iter().filter_map(|x| x.stub).collect();
        let handoff: Vec<f64> = s.iter().filter_map(|x| x.handoff_ms).collect();
        report.push_str(&format!(
            "| {} | {} | {} | {:.3} s | {} |\n",
            c.kernel,
            c.mode.name(),
            if stub.is_empty() { "-".into() } else { format!("{:.3} s", median(stub)) },
            median(s.iter().map(|x| x.marker).collect()),
            if handoff.is_empty() { "-".into() } else { format!("{:.1} ms", median(handoff)) },
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians() {
        assert_eq!(super::median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(vec![]).is_nan());
    }
}
