//! `efi-kexec`: kexec a PE/UEFI kernel (an arm64 `Image` with its EFI stub, an EFI zboot
//! `vmlinuz.efi`, a systemd UKI) through the efi-emulator blob, from a running arm64 Linux.
//!
//! It places what the in-kernel PE loader of the original design would have placed (the PE file
//! raw, the initrd, a DTB with `/chosen` updated, the emulator blob, the parameter block) with
//! `kexec_load(2)`, which lets user space pick the segments and the entry point. arm64 enters
//! a `kexec_load` image with `x0 = 0`, so the blob's copy carries the parameter block's address
//! in its header (`param_slot`). The layout and the block come from the emulator crate's loader
//! library, and the emulator's own validator checks them before anything is loaded.

/// `println!` that outlives its reader: once a load has succeeded, a closed pipe on stdout
/// (`efi-kexec load … | head -1`) must not turn it into a crash.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod cli;
mod cmdline;
mod crash;
mod iomem;
mod system;
mod tpm_log;

use efi_emulator::drivers::fdt::Fdt;
use efi_emulator::efi::image_info::{self, ImageKind};
use efi_emulator::mem::Extent;
use efi_emulator_loader::plan::{self as loader, BootSpec, KexecImage, MemoryLayout, RandomSeeds};
use esp_image::input::{DTB_MAX, IMAGE_MAX, INITRD_MAX};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The emulator blob this tool places (built from the same tree).
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/efi-emulator.bin"));

const FDT_PATH: &str = "/sys/firmware/fdt";
const IOMEM_PATH: &str = "/proc/iomem";
/// Bytes of `rng-seed` for the next kernel (as much as `kexec_file_load` gives).
const RNG_SEED_BYTES: usize = 128;

fn main() -> ExitCode {
    match cli::parse().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("efi-kexec: {e}\n"));
            ExitCode::FAILURE
        }
    }
}

/// Boots the loaded image. reboot(LINUX_REBOOT_CMD_KEXEC) is allowed under lockdown and after
/// kexec_load_disabled: only root and a loaded image are needed, however it was loaded.
fn exec(e: &cli::ExecArgs) -> Result<(), String> {
    if let Some(why) = system::exec_refusal(&system::Facts::of_this_system()) {
        return Err(why);
    }
    if system::loaded(false) != Some(true) {
        return Err("nothing is loaded: run `efi-kexec load IMAGE` first".into());
    }
    Err(system::kexec_exec(!e.no_sync))
}

fn run(command: cli::Command) -> Result<(), String> {
    match command {
        cli::Command::Info { image } => info(&image),
        cli::Command::TpmLog { log, pcrs, events } => {
            let log_path = log.unwrap_or_else(|| PathBuf::from(tpm_log::LOG_PATH));
            let bytes = std::fs::read(&log_path).map_err(|e| format!("cannot read {}: {e} (is securityfs mounted, is there a TPM?)", log_path.display()))?;
            let dir = pcrs.unwrap_or_else(|| PathBuf::from(tpm_log::PCRS_PATH));
            let report = tpm_log::check(&bytes, &|bank, n| tpm_log::read_pcr(&dir, bank, n), events)?;
            for line in &report.lines {
                say!("efi-kexec: {line}");
            }
            match report.mismatches {
                0 => Ok(()),
                n => Err(format!("{n} PCRs do not replay from {}", log_path.display())),
            }
        }
        cli::Command::Load(args) => {
            load(&args)?;
            if args.force {
                say!("efi-kexec: -f: booting it now");
                return exec(&cli::ExecArgs::default());
            }
            Ok(())
        }
        cli::Command::Exec(e) => exec(&e),
        cli::Command::Status { panic } => {
            let what = if panic { "crash kernel" } else { "image" };
            match system::loaded(panic) {
                Some(true) => {
                    say!("efi-kexec: a {what} is loaded");
                    Ok(())
                }
                Some(false) => Err(format!("no {what} is loaded")),
                None => Err("this kernel says nothing of kexec (no /sys/kernel/kexec_loaded)".into()),
            }
        }
        cli::Command::Unload { panic, file } => {
            let facts = system::Facts::of_this_system();
            if let Some(why) = system::load_refusal(&facts, panic) {
                return Err(why);
            }
            let what = if panic { "crash kernel" } else { "image" };
            if system::loaded(panic) == Some(false) {
                say!("efi-kexec: no {what} is loaded: nothing to unload");
                return Ok(());
            }
            if file || system::lockdown(&facts).is_some() {
                system::kexec_file_unload(panic)?;
                say!("efi-kexec: {what} unloaded (kexec_file_load, KEXEC_FILE_UNLOAD)");
                return Ok(());
            }
            match system::kexec_load(0, &[], panic) {
                Err(e) if e.absent() || e.refused() => system::kexec_file_unload(panic)?,
                other => other?,
            }
            say!("efi-kexec: {what} unloaded");
            Ok(())
        }
    }
}

/// Which system call loads: `-s`/`-c`, else kexec_load unless lockdown forbids it (then
/// kexec_file_load, said so).
fn door(args: &cli::LoadArgs) -> Result<Door, String> {
    if args.dry_run {
        return Ok(if args.file { Door::File } else { Door::Load });
    }
    let facts = system::Facts::of_this_system();
    if let Some(why) = system::load_refusal(&facts, args.panic) {
        return Err(why);
    }
    match (args.file, args.syscall, system::lockdown(&facts)) {
        (true, _, _) => Ok(Door::File),
        (false, true, Some(_)) => Err(system::refusal(&facts, args.panic).unwrap_or_default()),
        (false, false, Some(mode)) => {
            say!("efi-kexec: the kernel is locked down ({mode}), which forbids kexec_load(2): loading through kexec_file_load(2) (as -s), which checks the emulator Image's signature");
            Ok(Door::File)
        }
        (false, _, None) => Ok(Door::Load),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// kexec_load(2): efi-kexec places everything (the flat blob, a parameter block).
    Load,
    /// kexec_file_load(2): the kernel places the emulator Image, the payload and a DTB.
    File,
}

/// The regular file at `path`, at most `max` bytes (see [`esp_image::input`]).
fn read(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, String> {
    esp_image::input::read_regular(path, max).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => format!("refusing the {what}: {e}"),
        _ => format!("cannot read the {what} {}: {e}", path.display()),
    })
}

/// What the image is: `efi-kexec info`.
fn info(path: &Path) -> Result<(), String> {
    let file = read(path, "image", IMAGE_MAX)?;
    let pe = image_info::check_loadable(&file).map_err(|e| format!("{}: {e}", path.display()))?;
    let kind = image_info::classify(&file, &pe);
    say!("{}: {kind}", path.display());
    say!("  PE32+ machine {:#06x}, {} B, SizeOfImage {:#x}, SectionAlignment {:#x}, entry {:#x}", pe.machine, file.len(), pe.size_of_image, pe.section_alignment, pe.entry_point);
    for s in pe.sections() {
        say!("  section {:<8} rva {:#010x} size {:#010x} {}", s.name(), s.virtual_address, s.virtual_size, String::from_utf8_lossy(&s.permissions()));
    }
    if let ImageKind::Uki(uki) = &kind {
        say!("  .cmdline {:?}", uki.cmdline.as_deref().unwrap_or("(none)"));
        if let Some(uname) = &uki.uname {
            say!("  .uname   {uname:?}");
        }
        if let Some(os) = &uki.os_name {
            say!("  .osrel   {os:?}");
        }
    }
    Ok(())
}

/// The next kernel's command line (see [`cmdline::compose`]), said where it came from.
/// `bootargs`: the device tree's `/chosen/bootargs` the next kernel would otherwise inherit.
fn cmdline(args: &cli::LoadArgs, kind: &ImageKind, bootargs: Option<&str>) -> Result<String, String> {
    let running = if args.reuse_cmdline { Some(std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("cannot read /proc/cmdline: {e}"))?) } else { None };
    let uki = matches!(kind, ImageKind::Uki(_));
    let (line, source) = cmdline::compose(&cmdline::Sources { running: running.as_deref(), append: args.append.as_deref(), bootargs, uki, panic: args.panic });
    say!("efi-kexec: command line ({source}): {line:?}");
    if let ImageKind::Uki(u) = kind {
        if line.is_empty() {
            say!("efi-kexec: empty command line: the UKI uses its own .cmdline {:?}", u.cmdline.as_deref().unwrap_or(""));
        }
    }
    Ok(line)
}

/// The firmware of a first kernel booted by UEFI, as its stub recorded it in `/chosen`: the
/// emulator takes the rest from there (`noefi_boot` 0, `rt_info` derived; see the ABI notes).
struct Firmware {
    system_table: u64,
    /// The device tree holds only `/chosen`: the machine is described by ACPI.
    acpi_only: bool,
}

fn firmware(fdt: &Fdt) -> Option<Firmware> {
    let systab = fdt.find("/chosen")?.property("linux,uefi-system-table")?;
    Some(Firmware {
        system_table: efi_emulator::drivers::fdt::be_uint(systab).unwrap_or(0),
        acpi_only: fdt.root().children().all(|n| n.name == "chosen" || n.name == "hypervisor"),
    })
}

/// On an ACPI machine the device tree names no TPM: the TIS ACPI described (`/proc/iomem`)
/// goes to the emulator in `/chosen` (`efi-emulator,tpm-tis`: base and size, 64-bit each),
/// which it measures the boot with. A device-tree machine's node speaks for itself.
fn tpm_chosen(firmware: Option<&Firmware>, iomem: &iomem::Iomem) -> Vec<(String, Vec<u8>)> {
    match (firmware.filter(|f| f.acpi_only), iomem.tpm_tis) {
        (Some(_), Some(tpm)) => {
            say!("efi-kexec: the TPM at {:#x} (ACPI MSFT0101) goes to the emulator for measured boot", tpm.start);
            vec![(efi_emulator::drivers::fdt::TPM_TIS_CHOSEN.to_string(), [tpm.start.to_be_bytes(), tpm.size.to_be_bytes()].concat())]
        }
        _ => Vec::new(),
    }
}

const SPCR_PATH: &str = "/sys/firmware/acpi/tables/SPCR";

/// The earlycon: `--earlycon`, else the DTB's `stdout-path`, else ACPI's SPCR.
fn earlycon(args: &cli::LoadArgs, fdt: &Fdt) -> Result<(u64, u64), String> {
    if let Some(base) = args.earlycon {
        return Ok((base, 0x1000));
    }
    let from_dt = fdt.stdout_uart();
    if let Ok(uart) = from_dt {
        return Ok(uart);
    }
    if let Some(base) = std::fs::read(SPCR_PATH).ok().as_deref().and_then(efi_emulator::abi::firmware::spcr_pl011) {
        return Ok((base, 0x1000));
    }
    let why = from_dt.err().map(|e| e.to_string()).unwrap_or_default();
    Err(format!("no console the emulator can drive: {why}, and ACPI ({SPCR_PATH}) names no PL011 or SBSA UART: pass --earlycon ADDRESS of a PL011"))
}

fn load(args: &cli::LoadArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let door = door(args)?;
    let kernel = read(&args.image, "image", IMAGE_MAX)?;
    let pe = image_info::check_loadable(&kernel).map_err(|e| format!("refusing {}: {e}", args.image.display()))?;
    let kind = image_info::classify(&kernel, &pe);
    let initrd = args.initrd.as_deref().map(|p| read(p, "initrd", INITRD_MAX)).transpose()?;
    let esp = match &args.esp {
        Some(d) if d.is_dir() => Some(esp_image::image_from_dir(d).map_err(|e| format!("making an ESP image of {}: {e:#}", d.display()))?),
        Some(f) => {
            let image = read(f, "ESP image", INITRD_MAX)?;
            // The emulator's own reader, now: after exec a bad image could only be reported.
            efi_emulator::efi::fat::Fat::new(&image).map_err(|e| format!("refusing the ESP image {}: {e}", f.display()))?;
            Some(image)
        }
        None => None,
    };
    let esp_kernel_path = args.esp_path.clone().or_else(|| args.esp.as_deref().filter(|d| d.is_dir()).and_then(|d| esp_image::path_in(d, &args.image)));
    let esp_for_file = esp.as_deref().map(|image| (image, esp_kernel_path.as_deref()));
    if door == Door::File {
        return load_file(args, &kernel, &kind, initrd.as_deref(), esp_for_file, started);
    }
    let dtb_path = args.dtb.clone().unwrap_or_else(|| PathBuf::from(FDT_PATH));
    let dtb = esp_image::input::read_regular(&dtb_path, DTB_MAX).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            format!("refusing the device tree: {e}")
        } else if args.dtb.is_none() {
            format!("cannot read {FDT_PATH} ({e}): the running kernel exposes no device tree; pass --dtb FILE")
        } else {
            format!("cannot read the device tree {}: {e}", dtb_path.display())
        }
    })?;
    let fdt = Fdt::new(&dtb).map_err(|e| format!("{}: {e}", dtb_path.display()))?;
    let firmware = firmware(&fdt);

    let iomem_text = std::fs::read_to_string(IOMEM_PATH).map_err(|e| format!("cannot read {IOMEM_PATH}: {e}"))?;
    let iomem = iomem::parse(&iomem_text).map_err(|e| e.to_string())?;
    let crash_regions = if args.panic { Some(crash_regions(&iomem)?) } else { None };
    let mut memory = match &crash_regions {
        // A crash kernel gets its region only; the rest of RAM is the evidence.
        // Segments go to the main region only (the kernel refuses them elsewhere); a low
        // region (`crashkernel=X,high` with its `,low` part) is the crash kernel's RAM too.
        Some(regions) => MemoryLayout {
            ram: regions.clone(),
            busy: regions[1..].to_vec(),
            reserved: loader::dtb_reservations(&fdt).into_iter().filter(|r| regions.iter().any(|c| c.overlaps(r))).collect(),
        },
        None => {
            // RAM the running kernel was told to leave alone (mem=) is the next kernel's again;
            // nothing is placed there. A firmware's map already has it.
            let hidden = if firmware.is_some() { Vec::new() } else { iomem.hidden_ram(&fdt.memory().map(|(s, n)| Extent::new(s, n)).collect::<Vec<_>>()) };
            if !hidden.is_empty() {
                say!("efi-kexec: {} MiB of RAM the running kernel does not use (mem=?) goes to the next kernel", hidden.iter().map(|e| e.size).sum::<u64>() >> 20);
            }
            let busy = iomem.busy.iter().map(|(e, _)| *e).chain(hidden.iter().copied()).collect();
            MemoryLayout { ram: [&iomem.ram[..], &hidden[..]].concat(), busy, reserved: loader::dtb_reservations(&fdt) }
        }
    };
    // --mem-min/--mem-max: nothing is placed outside the window.
    if let Some(min) = args.mem_min {
        memory.busy.push(Extent::new(0, min));
    }
    if let Some(max) = args.mem_max.filter(|&m| m < u64::MAX - 1) {
        memory.busy.push(Extent::new(max + 1, u64::MAX - max - 1));
    }
    let core_header = crash_regions.as_ref().map(|regions| core_header(&iomem, regions)).transpose()?;
    let crash = core_header.as_ref().map(|(header, preserved)| loader::Crash { elfcorehdr: header, preserved: preserved.clone() });

    let cmdline = cmdline(args, &kind, fdt.find("/chosen").and_then(|c| c.property_str("bootargs")))?;
    let seeds = system::random_bytes(8 + RNG_SEED_BYTES)?;
    let spec = BootSpec {
        kernel: &kernel,
        initrd: initrd.as_deref(),
        esp: esp.as_deref().map(|image| loader::Esp { image, kernel_path: esp_kernel_path.as_deref() }),
        dtb: &dtb,
        emulator: BLOB,
        cmdline: &cmdline,
        uart: earlycon(args, &fdt)?,
        earlycon_name: "amba-pl011",
        print: !args.quiet,
        memory,
        placement: loader::Placement::Highest,
        file_size_only: false,
        firmware: firmware.is_some(),
        seeds: Some(RandomSeeds { kaslr: u64::from_le_bytes(seeds[..8].try_into().unwrap()), rng: seeds[8..].to_vec() }),
        extra_chosen: tpm_chosen(firmware.as_ref(), &iomem),
        crash,
        page_size: system::page_size(),
    };
    let image = loader::plan(&spec).map_err(|e| format!("refusing {}: {e}", args.image.display()))?;
    let warnings = image.validate_as_emulator(&spec).map_err(|e| format!("refusing {}: {e}", args.image.display()))?;

    say!("efi-kexec: {}: {kind}", args.image.display());
    if let Some(f) = &firmware {
        say!(
            "efi-kexec: booted by UEFI firmware (system table {:#x}{}): the emulator takes its memory map, runtime services and ACPI/SMBIOS tables from /chosen/linux,uefi-*",
            f.system_table,
            if f.acpi_only { ", ACPI only" } else { "" }
        );
    }
    for w in &warnings {
        say!("efi-kexec: warning: {w}");
    }
    if args.dry_run || args.debug {
        print_plan(&image, &spec, &iomem);
    }
    if args.dry_run {
        say!("efi-kexec: dry run, nothing loaded");
        return Ok(());
    }
    let segments = image.segments(&spec).map_err(|e| e.to_string())?;
    let raw: Vec<system::KexecSegment> =
        segments.iter().map(|s| system::KexecSegment { buf: s.bytes.as_ptr(), bufsz: s.bytes.len(), mem: s.addr, memsz: s.mem_size as usize }).collect();
    let entry = image.emulator.start + efi_emulator::abi::BlobHeader::parse(BLOB).map_err(|e| e.to_string())?.entry_offset;
    let planned = started.elapsed();
    match system::kexec_load(entry, &raw, args.panic) {
        Err(e) if e.absent() && !args.syscall => {
            say!("efi-kexec: this kernel has no kexec_load(2): loading through kexec_file_load(2) (as -s)");
            return load_file(args, &kernel, &kind, initrd.as_deref(), esp_for_file, started);
        }
        Err(e) if e.refused() && !args.syscall => {
            say!(
                "efi-kexec: kexec_load(2) was refused (EPERM) although this is root: the kernel is locked down, which /sys/kernel/security/lockdown would have said had securityfs been mounted; loading through kexec_file_load(2) (as -s)"
            );
            return load_file(args, &kernel, &kind, initrd.as_deref(), esp_for_file, started);
        }
        other => other?,
    }
    say!(
        "efi-kexec: loaded {} segments (checked and planned in {} ms, kexec_load {} ms), entry {entry:#x} (the emulator); kernel {:#x}, param {:#x}, mempool {} MiB: {}",
        raw.len(),
        planned.as_millis(),
        (started.elapsed() - planned).as_millis(),
        image.kernel.start,
        image.param_addr,
        image.param.mempool_sz >> 20,
        if args.panic { "the crash kernel starts at the next panic" } else { "run `efi-kexec exec`" }
    );
    Ok(())
}

/// The options given that only a loader that builds the DTB and the parameter block (kexec_load)
/// can honour.
fn kexec_load_only(args: &cli::LoadArgs) -> Vec<&'static str> {
    [(args.dtb.is_some(), "--dtb"), (args.earlycon.is_some(), "--earlycon"), (args.quiet, "--quiet")].into_iter().filter_map(|(given, name)| given.then_some(name)).collect()
}

/// Loads through kexec_file_load(2): the emulator as an arm64 Image (`--emulator`, signed, or the
/// built-in one wrapped), the PE file (with an initrd or an ESP: a bundle, see
/// `efi_emulator::abi::bundle`) as its initrd, the command line as the kernel's. The kernel
/// checks the Image's signature under lockdown, places everything, builds the DTB (with the ELF
/// core header for `-p`) and enters the emulator with `x0` = that DTB.
fn load_file(args: &cli::LoadArgs, kernel: &[u8], kind: &ImageKind, initrd: Option<&[u8]>, esp: Option<(&[u8], Option<&str>)>, started: std::time::Instant) -> Result<(), String> {
    use efi_emulator::abi::image;
    use efi_emulator_loader::bundle;
    let needs_kexec_load = kexec_load_only(args);
    if !needs_kexec_load.is_empty() {
        return Err(format!(
            "{} need kexec_load(2), and this load goes through kexec_file_load(2), where the kernel builds the device tree: drop them, or load where kexec_load is allowed",
            needs_kexec_load.join(", ")
        ));
    }
    let (emulator, source) = match &args.emulator {
        Some(path) => {
            let bytes = read(path, "emulator Image", IMAGE_MAX)?;
            image::parse(&bytes).map_err(|e| format!("{}: {e} (build it with `cargo xtask build`: target/efi-emulator/efi-emulator.efi)", path.display()))?;
            (bytes, format!("{}", path.display()))
        }
        None => (image::wrap(BLOB).map_err(|e| e.to_string())?, "the built-in emulator, unsigned".to_string()),
    };
    let payload: std::borrow::Cow<[u8]> = if initrd.is_some() || esp.is_some() { bundle::make_with_esp(kernel, initrd, None, esp).into() } else { kernel.into() };
    say!("efi-kexec: {}: {kind}", args.image.display());
    // The running device tree's bootargs, as the kernel would otherwise drop them.
    let running_dtb = esp_image::input::read_regular(Path::new(FDT_PATH), DTB_MAX).ok();
    let bootargs = running_dtb.as_deref().and_then(|d| Fdt::new(d).ok()).and_then(|f| f.find("/chosen")?.property_str("bootargs"));
    let cmdline = cmdline(args, kind, bootargs)?;
    let what = if initrd.is_some() || esp.is_some() {
        let parts = [initrd.map(|_| "its initrd".to_string()), esp.map(|(_, path)| format!("an ESP{}", path.map(|p| format!(" (the image is its {p})")).unwrap_or_default()))];
        format!("a bundle of {} and {} ({} B)", args.image.display(), parts.into_iter().flatten().collect::<Vec<_>>().join(" and "), payload.len())
    } else {
        format!("{} ({} B)", args.image.display(), payload.len())
    };
    if args.dry_run {
        say!(
            "efi-kexec: dry run, nothing loaded: kexec_file_load(2) with the Image {source} ({} B), as its initrd {what}, command line {cmdline:?}{}",
            emulator.len(),
            if args.panic { ", as the crash kernel" } else { "" }
        );
        return Ok(());
    }
    let image_fd = system::memfd("efi-emulator.efi", &emulator)?;
    let payload_fd = system::memfd("efi-emulator-payload", &payload)?;
    system::kexec_file_load(&image_fd, Some(&payload_fd), &cmdline, args.panic).map_err(|e| format!("{e}\nefi-kexec: the Image was {source}"))?;
    say!(
        "efi-kexec: loaded through kexec_file_load in {} ms: the Image {source}, as its initrd {what}: {}",
        started.elapsed().as_millis(),
        if args.panic { "the crash kernel starts at the next panic" } else { "run `efi-kexec exec`" }
    );
    Ok(())
}

/// The "Crash kernel" ranges of `/proc/iomem` (`crashkernel=` on the running kernel's command
/// line), largest first.
fn crash_regions(iomem: &iomem::Iomem) -> Result<Vec<Extent>, String> {
    let regions: Vec<Extent> = iomem.busy.iter().filter(|(_, name)| name.starts_with("Crash kernel")).map(|(e, _)| *e).collect();
    if regions.is_empty() {
        return Err("no \"Crash kernel\" range in /proc/iomem: boot the running kernel with crashkernel=SIZE (256M for a UKI) to load a crash kernel".into());
    }
    Ok(main_region_first(regions))
}

/// The crash regions, the one kexec loads into first: with `crashkernel=X,high` that is the high
/// one (`crashk_res`); the low one below 4 GiB (`crashk_low_res`) is only the crash kernel's DMA
/// memory.
fn main_region_first(mut regions: Vec<Extent>) -> Vec<Extent> {
    regions.sort_by_key(|r| std::cmp::Reverse(r.start));
    regions
}

/// The crashed kernel's memory as an ELF core header (what kexec-tools builds for arm64), and
/// the RAM outside the crash regions, which the crash kernel's boot must leave untouched.
fn core_header(iomem: &iomem::Iomem, regions: &[Extent]) -> Result<(Vec<u8>, Vec<Extent>), String> {
    let kernel_code = iomem.busy.iter().find(|(_, n)| n == "Kernel code").map(|(e, _)| *e);
    let kcore = crash::read_kcore_headers(&mut std::fs::File::open("/proc/kcore").map_err(|e| format!("cannot read /proc/kcore: {e}"))?)?;
    let (linear_offset, kernel_text) = crash::kcore_mappings(&kcore, kernel_code)?;
    let vmcoreinfo = std::fs::read_to_string("/sys/kernel/vmcoreinfo").map_err(|e| format!("cannot read /sys/kernel/vmcoreinfo: {e}"))?;
    use efi_emulator_loader::core_header::{elf_core_header, outside, CoreLayout};
    // The crashed kernel's memory: its RAM and the RAM its drivers managed (virtio-mem, kmem).
    let mut ram = [&iomem.ram[..], &iomem.driver_managed[..]].concat();
    ram.sort_by_key(|e| e.start);
    for r in regions {
        ram = outside(&ram, *r);
    }
    let layout = CoreLayout { cpu_notes: system::crash_notes()?, vmcoreinfo: crash::parse_vmcoreinfo(&vmcoreinfo)?, kernel_text, ram: ram.clone(), linear_offset };
    Ok((elf_core_header(&layout), ram))
}

fn print_plan(image: &KexecImage, spec: &BootSpec, iomem: &iomem::Iomem) {
    let ram: u64 = iomem.ram.iter().map(|e| e.size).sum();
    say!("efi-kexec: RAM: {} MiB in {} range(s), {} range(s) held by the running kernel", ram >> 20, iomem.ram.len(), iomem.busy.len());
    say!("segments, in kexec_load order:");
    let line = |name: &str, e: Extent, copied: &str| say!("  {name:<9} {:#012x}..{:#012x} {:>11} B  {copied}", e.start, e.end(), e.size);
    for s in image.segments(spec).into_iter().flatten() {
        line(s.name, Extent::new(s.addr, s.mem_size), &format!("{} B copied", s.bytes.len()));
    }
    let stack = image.param_addr + image.param_region();
    line("stack", Extent::new(stack, image.param.sp - stack), "not copied");
    line("mempool", Extent::new(image.param.mempool_start, image.param.mempool_sz), "not copied");
    let _ = std::io::Write::write_all(&mut std::io::stdout(), image.describe_param().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use efi_emulator_loader::dtb_edit::{Tree, TreeNode};

    /// `crashkernel=256M,high crashkernel=64M,low`: the high region is the one segments go to,
    /// and the first one `linux,usable-memory-range` names (kernels before 5.18 read only that).
    #[test]
    fn the_high_crash_region_is_the_main_one() {
        let low = Extent::new(0xb000_0000, 64 << 20);
        let high = Extent::new(0x1_3000_0000, 256 << 20);
        assert_eq!(main_region_first(vec![low, high]), [high, low]);
        assert_eq!(main_region_first(vec![high]), [high]);
    }

    fn dtb(devices: bool, uefi: bool) -> Vec<u8> {
        let node = |name: &str| TreeNode { name: name.into(), properties: vec![], children: vec![] };
        let mut chosen = node("chosen");
        if uefi {
            chosen.properties.push(("linux,uefi-system-table".into(), 0xbf5c_0018u64.to_be_bytes().to_vec()));
        }
        let mut root = node("");
        root.children.push(chosen);
        if devices {
            root.children.push(node("pl011@9000000"));
        }
        Tree { reservations: vec![], root, boot_cpuid: 0 }.to_blob()
    }

    #[test]
    fn uefi_booted_first_kernels() {
        assert!(firmware(&Fdt::new(&dtb(true, false)).unwrap()).is_none());
        let full = firmware(&Fdt::new(&dtb(true, true)).unwrap()).unwrap();
        assert_eq!((full.system_table, full.acpi_only), (0xbf5c_0018, false));
        assert!(firmware(&Fdt::new(&dtb(false, true)).unwrap()).unwrap().acpi_only);
    }

    #[test]
    fn options_only_kexec_load_honours_are_named() {
        let args = |line: &str| match cli::parse_from(line.split(' ').map(str::to_string).collect()).unwrap() {
            cli::Command::Load(a) => a,
            _ => unreachable!(),
        };
        assert!(kexec_load_only(&args("efi-kexec load /uki.efi --append=")).is_empty());
        assert_eq!(kexec_load_only(&args("efi-kexec load /uki.efi --esp /boot/efi --quiet")), ["--quiet"]);
    }

    #[test]
    fn spcr_names_the_pl011() {
        // QEMU virt's SPCR: interface type 3 (PL011), base 0x9000000 in the GAS at 40.
        let mut spcr = vec![0u8; 80];
        spcr[..4].copy_from_slice(b"SPCR");
        spcr[36] = 3;
        spcr[44..52].copy_from_slice(&0x900_0000u64.to_le_bytes());
        assert_eq!(efi_emulator::abi::firmware::spcr_pl011(&spcr), Some(0x900_0000));
        spcr[36] = 0x12; // a 16550
        assert_eq!(efi_emulator::abi::firmware::spcr_pl011(&spcr), None);
        assert_eq!(efi_emulator::abi::firmware::spcr_pl011(b"SPCR"), None);
    }
}
