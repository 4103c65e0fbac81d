//! `cargo xtask run`: boots a PE kernel through the emulator under QEMU, laid out the way arm64
//! `kexec_file_load` lays it out, entered the way `arm64_relocate_new_kernel` enters it.

use crate::build::Blob;
use crate::harness::qemu::{self, Transcript};
use crate::harness::trampoline::{self, EntryEl};
use crate::paths;
use crate::payloads::initramfs::MARKER;
use crate::payloads::Payloads;
use anyhow::{bail, ensure, Context, Result};
use efi_emulator::drivers::fdt::Fdt;
use efi_emulator::mem::Extent;
use efi_emulator_loader::plan::{self as loader, BootSpec, KexecImage, MemoryLayout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_APPEND: &str = "console=ttyAMA0 earlycon panic=-1";
/// QEMU virt's PL011.
const VIRT_UART: (u64, u64) = (0x0900_0000, 0x1000);
/// QEMU keeps its own DTB in the first MiB of RAM when started without `-kernel`.
const QEMU_DTB_AREA: u64 = 1 << 20;

/// A change to the planned boot before it is placed: corrupting the parameter block in tests.
pub type Tweak = Arc<dyn Fn(&mut KexecImage) + Send + Sync>;

#[derive(Clone)]
pub struct RunOptions {
    /// The PE file to boot (default: Debian's 6.12 kernel).
    pub kernel: Option<PathBuf>,
    /// The initrd (default: the busybox test initramfs).
    pub initrd: Option<PathBuf>,
    /// An EFI system partition for the emulator to serve as a disk: a directory (made into a
    /// FAT image) or an image file. A kernel inside the directory is named by its path in it.
    pub esp: Option<PathBuf>,
    /// Serve an ESP directory as a GPT disk with one EFI system partition (as a real disk's ESP
    /// looks), not as a bare FAT volume.
    pub esp_gpt: bool,
    /// Boot as a crash kernel (kexec -p) confined to the top this many bytes of RAM, with an ELF
    /// core header of the rest (no real panic: the "crashed" memory is what QEMU started with).
    pub crash_region: Option<u64>,
    pub no_initrd: bool,
    pub append: String,
    pub el: EntryEl,
    pub smp: u32,
    pub mem: String,
    pub cpu: String,
    /// The GIC version of the `virt` machine (2 or 3).
    pub gic: u8,
    pub timeout: Duration,
    /// `print_enabled` in the parameter block.
    pub print: bool,
    /// Sets `/chosen/efi-emulator,debug-fault` to make the emulator fault on purpose.
    pub debug_fault: Option<String>,
    /// Sets `/chosen/efi-emulator,debug-stale-map-key`: the first ExitBootServices fails.
    pub stale_map_key: bool,
    /// Sets `/chosen/efi-emulator,integrity`: CRCs of the loader's segments, checked again.
    pub integrity: bool,
    /// Sets `/chosen/efi-emulator,timeline`: the emulator's phase line even with printing off.
    pub timeline: bool,
    /// Sets `/chosen/efi-emulator,secure-boot-audit`: the kernel image verified (never refused).
    pub secure_boot_audit: bool,
    /// Sets `/chosen/efi-emulator,generic-sha256`: the portable SHA-256, not the CPU's.
    pub generic_sha256: bool,
    /// This many 64 KiB reserved ranges spread over the upper half of RAM: a memory map of
    /// hundreds of descriptors, as on large machines.
    pub reserved_ranges: usize,
    /// The loader reserves only the kernel file's bytes, not SizeOfImage: the emulator copies.
    pub kernel_file_size_only: bool,
    /// Boots the Image form (`efi-emulator.efi`) as arm64 `kexec_file_load` does: the Image 2
    /// MiB aligned, the payload as its initrd (the PE file alone, or with an initrd a bundle
    /// with the command line), a DTB top-down, and `x0` = the DTB.
    pub kexec_file: bool,
    /// Runs QEMU with `-icount shift=0`: one nanosecond of guest time per instruction, so the
    /// emulator's counter readings repeat exactly.
    pub icount: bool,
    /// Stream the console while it runs.
    pub echo: bool,
    pub tweak: Option<Tweak>,
    /// Keys typed on the console during the run (menu tests).
    pub input: Option<qemu::Input>,
    /// The control socket of a running swtpm: QEMU gets a `tpm-tis-device` on it, and the
    /// emulator is told where it is (`/chosen/efi-emulator,tpm-tis`), since QEMU's device tree
    /// is dumped without it.
    pub tpm: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            kernel: None,
            initrd: None,
            esp: None,
            esp_gpt: false,
            crash_region: None,
            no_initrd: false,
            append: DEFAULT_APPEND.into(),
            el: EntryEl::El1,
            smp: 1,
            mem: "1G".into(),
            gic: 2,
            cpu: "max".into(),
            timeout: Duration::from_secs(120),
            print: true,
            debug_fault: None,
            stale_map_key: false,
            integrity: false,
            timeline: false,
            secure_boot_audit: false,
            generic_sha256: false,
            icount: false,
            reserved_ranges: 0,
            kernel_file_size_only: false,
            kexec_file: false,
            echo: false,
            tweak: None,
            input: None,
            tpm: None,
        }
    }
}

/// Parses `1G`, `1024M` or `1024` (MiB) into bytes.
pub fn parse_mem(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "M"),
    };
    let n: u64 = num.parse().with_context(|| format!("memory size {s:?}"))?;
    Ok(match unit.to_ascii_uppercase().as_str() {
        "G" | "GB" | "GIB" => n << 30,
        "M" | "MB" | "MIB" => n << 20,
        other => bail!("memory size {s:?}: unknown unit {other:?} (use M or G)"),
    })
}

/// Where a simulated crash boot puts the "crashed" kernel's vmcoreinfo note: low RAM, outside
/// the crash region and clear of the harness's DTB area and trampoline.
const CRASH_NOTE_OFFSET: u64 = 4 << 20;

/// An ELF note named VMCOREINFO with `text`, as the kernel keeps it.
fn vmcoreinfo_note(text: &str) -> Vec<u8> {
    let pad = |n: usize| n.next_multiple_of(4);
    let name = b"VMCOREINFO\0";
    let mut note = Vec::new();
    for v in [name.len() as u32, text.len() as u32, 0] {
        note.extend_from_slice(&v.to_le_bytes());
    }
    note.extend_from_slice(name);
    note.resize(pad(note.len()), 0);
    note.extend_from_slice(text.as_bytes());
    note.resize(pad(note.len()), 0);
    note
}

fn machine(o: &RunOptions) -> String {
    let virt = match o.el {
        EntryEl::El1 => "virt",
        EntryEl::El2 | EntryEl::El2Vhe => "virt,virtualization=on",
    };
    if o.gic == 2 {
        virt.to_string()
    } else {
        format!("{virt},gic-version={}", o.gic)
    }
}

/// Deterministic guest time: one instruction is one nanosecond, and idle time is skipped
/// rather than slept through.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

fn base_args(o: &RunOptions) -> Vec<String> {
    ["-cpu", &o.cpu, "-m", &o.mem, "-smp", &o.smp.to_string(), "-nodefaults", "-display", "none", "-no-reboot"].iter().map(|s| s.to_string()).collect()
}

/// QEMU's arguments for the machine `o` describes, with the console on stdio: what every boot
/// of the harness starts from, and the bench's peers too.
pub fn machine_args(o: &RunOptions) -> Vec<String> {
    let mut args = vec!["-M".to_string(), machine(o)];
    args.extend(base_args(o));
    if o.icount {
        args.extend(ICOUNT.iter().map(|s| s.to_string()));
    }
    args.extend(["-serial".into(), "stdio".into(), "-monitor".into(), "none".into()]);
    if let Some(socket) = &o.tpm {
        args.extend(crate::harness::tpm::qemu_args(socket));
    }
    args
}

/// A fresh directory for one run's files (runs may go in parallel).
fn run_dir() -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = paths::out_dir().join("runs").join(format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// QEMU's own device tree for the machine `o` describes, as the guest would get it.
pub fn dump_dtb(o: &RunOptions, dir: &std::path::Path) -> Result<Vec<u8>> {
    let path = dir.join("virt.dtb");
    let mut dump = vec!["-M".to_string(), format!("{},dumpdtb={}", machine(o), path.display())];
    dump.extend(base_args(o));
    crate::process::output_checked(std::process::Command::new(qemu::QEMU).args(&dump)).context("dumping QEMU's device tree")?;
    Ok(std::fs::read(&path)?)
}

/// A planned boot, ready to start.
pub struct Prepared {
    /// The planned kexec_load-style boot (none for `kexec_file`'s).
    pub image: Option<KexecImage>,
    /// The layout in words, one line per segment.
    pub summary: String,
    pub trampoline_addr: u64,
    pub qemu_args: Vec<String>,
    dir: PathBuf,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Dumps QEMU's DTB for the machine, lays the segments out, writes them and the trampoline.
pub fn prepare(o: &RunOptions, blob: &Blob, payloads: Option<&Payloads>) -> Result<Prepared> {
    if o.kexec_file {
        return prepare_kexec_file(o, blob, payloads);
    }
    let dir = run_dir()?;
    let (kernel_path, initrd_path) = kernel_and_initrd(o, payloads)?;
    let kernel = std::fs::read(&kernel_path).with_context(|| format!("reading kernel {}", kernel_path.display()))?;
    let initrd = initrd_path.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading initrd {}", p.display()))).transpose()?;

    let dtb = dump_dtb(o, &dir)?;
    let esp_image = esp_image_of(o)?;
    let esp_kernel_path = o.esp.as_ref().filter(|p| p.is_dir()).and_then(|d| esp_image::path_in(d, &kernel_path));

    let extra_chosen = hook_properties(o);
    let ram_start = Fdt::new(&dtb).ok().and_then(|f| f.memory().next()).map(|(s, _)| s).context("QEMU's DTB has no /memory")?;
    let mut memory = MemoryLayout::from_dtb(&dtb).map_err(|e| anyhow::anyhow!("{e}"))?.with_busy(Extent::new(ram_start, QEMU_DTB_AREA + 0x1000));
    if let Some(bank) = memory.ram.first().copied().filter(|_| o.reserved_ranges > 0) {
        let step = (bank.size / 2 / o.reserved_ranges as u64) & !0xffff;
        memory.reserved.extend((0..o.reserved_ranges as u64).map(|i| Extent::new(bank.start + bank.size / 2 + i * step, 0x10000)));
    }
    let crash = match o.crash_region {
        Some(size) => {
            use efi_emulator_loader::core_header::{elf_core_header, outside, CoreLayout};
            let bank = memory.ram.first().copied().context("QEMU's DTB has no RAM")?;
            let region = Extent::new((bank.end() - size) & !((2 << 20) - 1), size);
            let preserved = outside(&memory.ram, region);
            let note = vmcoreinfo_note("OSRELEASE=efi-emulator-harness\n");
            let layout = CoreLayout {
                cpu_notes: Vec::new(),
                vmcoreinfo: Extent::new(ram_start + CRASH_NOTE_OFFSET, note.len() as u64),
                kernel_text: None,
                ram: preserved.clone(),
                linear_offset: 0,
            };
            memory = MemoryLayout { ram: vec![region], busy: Vec::new(), reserved: Vec::new() };
            Some((elf_core_header(&layout), preserved, note))
        }
        None => None,
    };
    let spec = BootSpec {
        kernel: &kernel,
        initrd: initrd.as_deref(),
        esp: esp_image.as_deref().map(|image| loader::Esp { image, kernel_path: esp_kernel_path.as_deref() }),
        dtb: &dtb,
        emulator: &blob.bytes,
        cmdline: &o.append,
        uart: VIRT_UART,
        earlycon_name: "amba-pl011",
        print: o.print,
        memory,
        placement: Default::default(),
        file_size_only: o.kernel_file_size_only,
        firmware: false,
        seeds: None,
        extra_chosen,
        crash: crash.as_ref().map(|(header, preserved, _)| loader::Crash { elfcorehdr: header, preserved: preserved.clone() }),
        page_size: efi_emulator::mem::PAGE_SIZE,
    };
    let mut image = loader::plan(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(tweak) = &o.tweak {
        tweak(&mut image);
    }
    let trampoline_addr = ram_start + QEMU_DTB_AREA;

    let mut args = machine_args(o);
    for segment in image.segments(&spec).map_err(|e| anyhow::anyhow!("{e}"))? {
        let (addr, name) = (segment.addr, segment.name);
        // The kernel and initrd are placed raw: QEMU reads them from where they are.
        let file = match name {
            "kernel" => kernel_path.clone(),
            "initrd" => initrd_path.clone().context("initrd segment without a file")?,
            _ => {
                let file = dir.join(format!("{name}.bin"));
                std::fs::write(&file, &segment.bytes)?;
                file
            }
        };
        args.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    if let Some((_, _, note)) = &crash {
        // The "crashed" kernel's vmcoreinfo, where the core header says it is.
        let file = dir.join("vmcoreinfo.bin");
        std::fs::write(&file, note)?;
        args.extend(["-device".into(), format!("loader,file={},addr={:#x},force-raw=on", file.display(), ram_start + CRASH_NOTE_OFFSET)]);
    }
    let tramp = dir.join("trampoline.bin");
    std::fs::write(&tramp, trampoline::build(o.el, image.param_addr, image.emulator.start))?;
    args.extend(["-device".into(), format!("loader,file={},addr={trampoline_addr:#x},force-raw=on,cpu-num=0", tramp.display())]);
    Ok(Prepared { summary: image.describe(), image: Some(image), trampoline_addr, qemu_args: args, dir })
}

/// The kernel and initrd `o` names, or the payloads' defaults.
fn kernel_and_initrd(o: &RunOptions, payloads: Option<&Payloads>) -> Result<(PathBuf, Option<PathBuf>)> {
    let kernel = match (&o.kernel, payloads) {
        (Some(k), _) => k.clone(),
        (None, Some(p)) => p.kernel("6.12")?.image.clone(),
        (None, None) => bail!("no kernel given and no payloads"),
    };
    let initrd = match (&o.initrd, payloads, o.no_initrd) {
        (_, _, true) => None,
        (Some(i), _, _) => Some(i.clone()),
        (None, Some(p), _) => Some(p.initramfs.clone()),
        (None, None, _) => None,
    };
    Ok((kernel, initrd))
}

/// The `/chosen` properties the test hooks ask for.
fn hook_properties(o: &RunOptions) -> Vec<(String, Vec<u8>)> {
    let mut extra = Vec::new();
    if let Some(kind) = &o.debug_fault {
        let mut v = kind.as_bytes().to_vec();
        v.push(0);
        extra.push(("efi-emulator,debug-fault".to_string(), v));
    }
    let switches = [
        (o.integrity, "integrity"),
        (o.timeline, "timeline"),
        (o.stale_map_key, "debug-stale-map-key"),
        (o.secure_boot_audit, "secure-boot-audit"),
        (o.generic_sha256, "generic-sha256"),
    ];
    for (on, name) in switches {
        if on {
            extra.push((format!("efi-emulator,{name}"), Vec::new()));
        }
    }
    if o.tpm.is_some() {
        let (base, size) = crate::harness::tpm::VIRT_TIS;
        extra.push((efi_emulator::drivers::fdt::TPM_TIS_CHOSEN.to_string(), [base.to_be_bytes(), size.to_be_bytes()].concat()));
    }
    extra
}

/// The ESP image `--esp` names: a directory made into a FAT volume (or a GPT disk with one), or
/// an image file.
fn esp_image_of(o: &RunOptions) -> Result<Option<Vec<u8>>> {
    Ok(match &o.esp {
        Some(p) if p.is_dir() && o.esp_gpt => Some(esp_image::gpt_disk(&esp_image::image_from_dir(p)?, *b"efi-emulator-esp")),
        Some(p) if p.is_dir() => Some(esp_image::image_from_dir(p)?),
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading ESP image {}", p.display()))?),
        None => None,
    })
}

/// The boot arm64 `kexec_file_load` makes of `efi-emulator.efi` with the payload as its initrd
/// (`arch/arm64/kernel/kexec_image.c`, `machine_kexec_file.c`): the Image at the first 2 MiB
/// boundary of free RAM, the initrd page aligned after it, the DTB 2 MiB aligned from the top of
/// RAM, with `/chosen` as `of_kexec_alloc_and_setup_fdt` writes it (`bootargs`, the initrd range
/// and its `/memreserve/`, `linux,booted-from-kexec`); entered with `x0` = the DTB.
fn prepare_kexec_file(o: &RunOptions, blob: &Blob, payloads: Option<&Payloads>) -> Result<Prepared> {
    use efi_emulator::abi::image;
    use efi_emulator_loader::bundle;
    use efi_emulator_loader::dtb_edit::Tree;
    const MIB2: u64 = 2 << 20;
    ensure!(
        o.crash_region.is_none() && o.reserved_ranges == 0 && !o.kernel_file_size_only,
        "--kexec-file boots without --crash-region, --reserved-ranges and --kernel-file-size-only"
    );
    let dir = run_dir()?;
    let (kernel_path, initrd_path) = kernel_and_initrd(o, payloads)?;
    let kernel = std::fs::read(&kernel_path).with_context(|| format!("reading kernel {}", kernel_path.display()))?;
    let esp = esp_image_of(o)?;
    let esp_kernel_path = o.esp.as_ref().filter(|p| p.is_dir()).and_then(|d| esp_image::path_in(d, &kernel_path));
    // With an initrd or an ESP, a bundle that also carries the command line; without, the PE
    // file alone and the command line in bootargs (kexec -s --append).
    let initrd = initrd_path.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading initrd {}", p.display()))).transpose()?;
    let (payload, bootargs) = if initrd.is_some() || esp.is_some() {
        let esp = esp.as_deref().map(|image| (image, esp_kernel_path.as_deref()));
        (bundle::make_with_esp(&kernel, initrd.as_deref(), Some(&o.append), esp), String::new())
    } else {
        (kernel, o.append.clone())
    };
    let efi = image::wrap(&blob.bytes).map_err(anyhow::Error::msg)?;
    let header = image::parse(&efi).map_err(anyhow::Error::msg)?;

    let qemu_dtb = dump_dtb(o, &dir)?;
    let (ram_start, ram_size) = Fdt::new(&qemu_dtb).ok().and_then(|f| f.memory().next()).context("QEMU's DTB has no /memory")?;
    let image_at = (ram_start + QEMU_DTB_AREA + 0x1000).next_multiple_of(MIB2) + header.text_offset;
    let payload_at = (image_at + header.image_size).next_multiple_of(0x1000);
    let mut tree = Tree::parse(&qemu_dtb).map_err(|e| anyhow::anyhow!("{e}"))?;
    let chosen = tree.chosen_mut();
    let mut args = bootargs.into_bytes();
    args.push(0);
    chosen.set_property("bootargs", args);
    chosen.set_property("linux,initrd-start", payload_at.to_be_bytes().to_vec());
    chosen.set_property("linux,initrd-end", (payload_at + payload.len() as u64).to_be_bytes().to_vec());
    chosen.set_property("linux,booted-from-kexec", Vec::new());
    for (k, v) in hook_properties(o) {
        chosen.set_property(&k, v);
    }
    tree.reservations.push((payload_at, payload.len() as u64));
    let dtb = tree.to_blob();
    let dtb_at = (ram_start + ram_size - dtb.len() as u64) & !(MIB2 - 1);
    ensure!(dtb_at >= payload_at + payload.len() as u64, "the payload ({} MiB) does not fit below the DTB in {} MiB of RAM", payload.len() >> 20, ram_size >> 20);

    let mut args = machine_args(o);
    let mut summary = String::new();
    for (name, addr, bytes) in [("image", image_at, &efi), ("payload", payload_at, &payload), ("dtb", dtb_at, &dtb)] {
        summary.push_str(&format!("  {name:<9} {addr:#012x}..{:#012x} {:>11} B\n", addr + bytes.len() as u64, bytes.len()));
        let file = dir.join(format!("{name}.bin"));
        std::fs::write(&file, bytes)?;
        args.extend(["-device".into(), format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    let trampoline_addr = ram_start + QEMU_DTB_AREA;
    let tramp = dir.join("trampoline.bin");
    std::fs::write(&tramp, trampoline::build(o.el, dtb_at, image_at))?;
    args.extend(["-device".into(), format!("loader,file={},addr={trampoline_addr:#x},force-raw=on,cpu-num=0", tramp.display())]);
    Ok(Prepared { image: None, summary, trampoline_addr, qemu_args: args, dir })
}

/// Prepares and runs one boot.
pub fn boot(o: &RunOptions, blob: &Blob, payloads: Option<&Payloads>) -> Result<Transcript> {
    let prepared = prepare(o, blob, payloads)?;
    qemu::run_with_input(&prepared.qemu_args, o.timeout, o.echo, o.input.as_ref())
}

/// How a run ended, in words; `Err` when it is a failure.
pub fn verdict(t: &Transcript) -> Result<&'static str> {
    if let Some((_, line)) = t.find("efi-emulator: fatal:") {
        bail!("the emulator stopped with an error: {line}");
    }
    if t.timed_out {
        bail!("timed out after {:.1} s without a power-off", t.elapsed.as_secs_f64());
    }
    match t.exit {
        Some(s) if s.success() => {}
        other => bail!("QEMU exited with {other:?}"),
    }
    // Linux's own checks of the firmware: x18 and the IRQ mask kept across runtime calls, ...
    if let Some((_, line)) = t.find("[Firmware Bug]").or_else(|| t.find("FIRMWARE BUG")) {
        bail!("Linux reports a firmware bug: {line}");
    }
    if t.contains(MARKER) {
        Ok("the payload reached userspace and powered off")
    } else if t.contains("Kernel panic") {
        bail!("the kernel panicked")
    } else {
        bail!("QEMU powered off before the userspace marker")
    }
}

/// The milestones a boot passes, in order, with the console line that marks each.
pub const MILESTONES: [(&str, &str); 6] = [
    ("emulator banner", "efi-emulator 0."),
    ("MMU on", "mmu: identity map on"),
    ("handoff", "handing off to the payload"),
    ("EFI stub", "EFI stub: "),
    ("ExitBootServices", "ExitBootServices: the payload ran"),
    ("userspace marker", MARKER),
];

/// Times of the milestones a boot passed, from QEMU's start.
pub fn milestones(t: &Transcript) -> Vec<(&'static str, Duration)> {
    let mut out: Vec<_> = MILESTONES.iter().filter_map(|(name, needle)| t.find(needle).map(|(d, _)| (*name, *d))).collect();
    out.push(("QEMU exit", t.elapsed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("1G").unwrap(), 1 << 30);
        assert_eq!(parse_mem("512M").unwrap(), 512 << 20);
        assert_eq!(parse_mem("2048").unwrap(), 2048 << 20);
        assert!(parse_mem("1T").is_err());
        assert!(parse_mem("x").is_err());
    }
}
