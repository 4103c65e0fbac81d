//! The boot suite of `cargo xtask bench`: the same payloads under the emulator (printing on and
//! off), QEMU's direct `-kernel` boot, U-Boot (`bootefi`) and EDK2 (`-bios QEMU_EFI.fd -kernel`),
//! interleaved round by round, timed at each milestone from QEMU's start; and its chart.

use crate::build::Blob;
use crate::harness::qemu::{self, Transcript};
use crate::harness::run::{self, RunOptions};
use crate::harness::trampoline::EntryEl;
use crate::harness::uboot;
use crate::payloads::initramfs::MARKER;
use crate::payloads::Payloads;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
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
    /// Debian's U-Boot for QEMU loads the kernel from a virtio disk and runs `bootefi`.
    UBoot,
    /// Debian's EDK2 for QEMU loads the kernel itself and starts its EFI stub.
    Edk2,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct -kernel (no EFI)",
            Mode::Emulator => "efi-emulator",
            Mode::EmulatorQuiet => "efi-emulator, printing off",
            Mode::UBoot => "U-Boot 2023.01 bootefi",
            Mode::Edk2 => "EDK2 2022.11",
        }
    }
}

/// Where a milestone's time comes from.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// The console's first byte.
    FirstByte,
    /// The first console line containing this text.
    Line(&'static str),
    /// QEMU's exit.
    Exit,
}

/// The milestones of a boot.
pub const MILESTONES: [(&str, Mark); 6] = [
    ("first console byte", Mark::FirstByte),
    ("EFI stub entered", Mark::Line("EFI stub: ")),
    ("ExitBootServices", Mark::Line("EFI stub: Exiting boot services")),
    ("first kernel message", Mark::Line("Booting Linux on physical CPU")),
    ("userspace marker", Mark::Line(MARKER)),
    ("QEMU exit", Mark::Exit),
];

/// What one boot measured: seconds from QEMU's start per milestone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub at: [Option<f64>; 6],
}

fn sample(t: &Transcript) -> Result<Sample> {
    if !t.contains(MARKER) {
        bail!("no userspace marker:\n{}", t.text());
    }
    let at = MILESTONES.map(|(_, mark)| match mark {
        Mark::FirstByte => t.first_byte.map(|d| d.as_secs_f64()),
        Mark::Line(text) => t.find(text).map(|(d, _)| d.as_secs_f64()),
        Mark::Exit => Some(t.elapsed.as_secs_f64()),
    });
    Ok(Sample { at })
}

/// Debian's EDK2 build for QEMU (package `qemu-efi-aarch64`).
pub const QEMU_EFI: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/// QEMU's arguments for booting `kernel` directly, through EDK2 or through U-Boot.
fn peer_args(mode: Mode, kernel: &Path, initrd: Option<&Path>, append: &str, dir: &Path) -> Result<Vec<String>> {
    // The machine the emulator's boots get (`virt`, `-cpu max`, 1 GiB, one CPU).
    let mut args = run::machine_args(&RunOptions::default());
    match mode {
        Mode::UBoot => args.extend(uboot::qemu_args(kernel, initrd, append, dir)?),
        Mode::Direct | Mode::Edk2 => {
            if mode == Mode::Edk2 {
                args.extend(["-bios".into(), QEMU_EFI.into()]);
            }
            args.extend(["-kernel".into(), kernel.display().to_string(), "-append".into(), append.into()]);
            if let Some(i) = initrd {
                args.extend(["-initrd".into(), i.display().to_string()]);
            }
        }
        Mode::Emulator | Mode::EmulatorQuiet => unreachable!("the emulator boots through run::boot"),
    }
    Ok(args)
}

/// One configuration of the boot suite.
pub struct Config {
    pub kernel: String,
    pub mode: Mode,
    how: How,
}

/// What a boot is given.
enum How {
    /// The emulator's run, through the kexec hand-off.
    Emulator(Box<RunOptions>),
    /// A peer's: the kernel, initrd and command line.
    Peer { kernel: PathBuf, initrd: Option<PathBuf>, append: String },
}

fn boot_configs(payloads: &Payloads, timeout: Duration) -> Result<Vec<Config>> {
    let emu = |kernel: &Path, no_initrd: bool, append: &str, print: bool| RunOptions {
        kernel: Some(kernel.to_path_buf()),
        no_initrd,
        append: append.to_string(),
        el: EntryEl::El1,
        timeout,
        print,
        ..RunOptions::default()
    };
    let mut v = Vec::new();
    let mut add = |kernel: &str, modes: &[Mode], file: &Path, initrd: Option<&Path>, append: &str| {
        for &mode in modes {
            let how = match mode {
                Mode::Emulator | Mode::EmulatorQuiet => How::Emulator(Box::new(emu(file, initrd.is_none(), append, mode == Mode::Emulator))),
                _ => How::Peer { kernel: file.to_path_buf(), initrd: initrd.map(Path::to_path_buf), append: append.to_string() },
            };
            v.push(Config { kernel: kernel.to_string(), mode, how });
        }
    };
    let all = [Mode::Direct, Mode::Emulator, Mode::EmulatorQuiet, Mode::UBoot, Mode::Edk2];
    let initramfs = payloads.initramfs.as_path();
    for series in ["6.1", "6.12"] {
        add(&format!("Debian {series} Image"), &all, &payloads.kernel(series)?.image, Some(initramfs), run::DEFAULT_APPEND);
    }
    // An empty command line: the UKI uses its own `.cmdline` and `.initrd`.
    let uki = payloads.uki("254+6.12")?;
    add(&format!("UKI {}", uki.name), &all[1..], &uki.path, None, "");
    if let Some(z) = payloads.zboot.iter().find(|z| z.series == "6.12") {
        // Not EDK2: with `-kernel` it boots ACPI, which this small build leaves out.
        add(&format!("zboot {} ({})", z.series, z.compression), &all[1..4], &z.image, Some(initramfs), run::DEFAULT_APPEND);
    }
    // The copy a loader that reserves only the file's bytes makes the emulator do.
    let copied = RunOptions { kernel_file_size_only: true, ..emu(&payloads.kernel("6.12")?.image, false, run::DEFAULT_APPEND, false) };
    let at = v.iter().rposition(|c| c.kernel == "Debian 6.12 Image").map_or(v.len(), |i| i + 1);
    v.insert(at, Config { kernel: "Debian 6.12 Image, file size reserved: copied".into(), mode: Mode::EmulatorQuiet, how: How::Emulator(Box::new(copied)) });
    Ok(v)
}

/// The boot suite: every configuration once per round, `runs` rounds.
pub fn boot_suite(blob: &Blob, payloads: &Payloads, runs: usize, dir: &Path) -> Result<(Vec<Config>, Vec<Vec<Sample>>)> {
    let timeout = Duration::from_secs(180);
    let configs = boot_configs(payloads, timeout)?;
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=runs {
        // Interleaved, so drift hits all alike.
        for (c, out) in configs.iter().zip(samples.iter_mut()) {
            let t = match &c.how {
                How::Emulator(o) => run::boot(o, blob, Some(payloads))?,
                How::Peer { kernel, initrd, append } => qemu::run(&peer_args(c.mode, kernel, initrd.as_deref(), append, dir)?, timeout, false)?,
            };
            let s = sample(&t).with_context(|| format!("{} {}", c.kernel, c.mode.name()))?;
            let f = |i: usize| s.at[i].map_or("-".into(), |v| format!("{v:.3}"));
            eprintln!("round {round}/{runs}: {:<24} {:<28} stub {:>6} EBS {:>6} marker {:>6} s", c.kernel, c.mode.name(), f(1), f(2), f(4));
            out.push(s);
        }
    }
    Ok((configs, samples))
}

/// The chart: one bar per boot, its phases stacked (medians), seconds on the x axis.
pub fn svg(title: &str, rows: &[(String, [Option<f64>; 6])]) -> String {
    const COLORS: [&str; 6] = ["#bbbbbb", "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1"];
    let phase_names = ["QEMU start → first console byte", "→ EFI stub", "→ ExitBootServices", "→ first kernel message", "→ userspace marker", "→ QEMU exit"];
    let (label_w, bar_w, row_h, top) = (330.0, 560.0, 22.0, 50.0);
    let max_t = rows.iter().filter_map(|(_, at)| at.iter().flatten().copied().reduce(f64::max)).fold(1.0, f64::max).ceil();
    let x = |t: f64| label_w + t / max_t * bar_w;
    let height = top + rows.len() as f64 * row_h + 70.0;
    let width = label_w + bar_w + 30.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        xml(title)
    );
    for sec in 0..=max_t as u32 {
        let gx = x(sec as f64);
        s.push_str(&format!(
            "<line x1=\"{gx:.1}\" y1=\"{:.1}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666666\">{sec} s</text>\n",
            top - 8.0,
            top + rows.len() as f64 * row_h,
            top - 12.0
        ));
    }
    for (i, (label, at)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n", label_w - 8.0, y + 15.0, xml(label)));
        let mut from = 0.0;
        for (k, t) in at.iter().enumerate() {
            let Some(t) = *t else { continue };
            if t > from {
                s.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {t:.3} s</title></rect>\n",
                    x(from),
                    y + 3.0,
                    x(t) - x(from),
                    row_h - 6.0,
                    COLORS[k],
                    xml(phase_names[k])
                ));
                from = t;
            }
        }
    }
    let ly = top + rows.len() as f64 * row_h + 20.0;
    for (k, name) in phase_names.iter().enumerate() {
        let lx = 10.0 + (k % 3) as f64 * 300.0;
        let lyk = ly + (k / 3) as f64 * 20.0;
        s.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            lyk - 10.0,
            COLORS[k],
            lx + 18.0,
            lyk,
            xml(name)
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_boot_the_harness_machine() {
        let args = peer_args(Mode::Direct, Path::new("Image"), None, "quiet", Path::new(".")).unwrap();
        let machine = ["-M", "virt", "-cpu", "max", "-m", "1G", "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none"];
        assert_eq!(args[..machine.len()], machine);
        assert_eq!(args[machine.len()..], ["-kernel", "Image", "-append", "quiet"]);
    }

    #[test]
    fn the_chart_stacks_the_phases_it_has() {
        let s = svg("t", &[("a & b".into(), [Some(0.1), Some(0.2), None, Some(0.5), Some(4.0), Some(4.2)])]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("a &amp; b"));
        // Five phases drawn (the missing ExitBootServices merges into the next).
        assert_eq!(s.matches("<rect x=").count() - 6, 5, "{s}");
        assert!(s.contains(">5 s</text>"), "the axis reaches past the longest bar");
    }
}
