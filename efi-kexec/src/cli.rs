//! The command line: subcommands, and kexec-tools' spellings of them (`-l`, `-e`, `-u`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "efi-kexec",
    version,
    // The build script names the commit and the blob; it builds the man page from this file too,
    // where no such variable is set yet.
    long_version = option_env!("EFI_KEXEC_LONG_VERSION").unwrap_or(env!("CARGO_PKG_VERSION")),
    about = "kexec a PE/UEFI kernel (Image with EFI stub, zboot, UKI) through the efi-emulator, running its own EFI stub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The whole command line, for the man page and the shell completions (made by build.rs, which
/// includes this file).
#[cfg_attr(not(test), allow(dead_code))]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// Load IMAGE for the next `exec` (kexec-tools: -l/--load).
    Load(LoadArgs),
    /// Boot the loaded image now (kexec-tools: -e/--exec). File systems are synced first.
    Exec(ExecArgs),
    /// Exit 0 when an image is loaded, 1 when none is (kexec-tools: -S/--status, which asks
    /// about the crash kernel unless -l is given).
    Status {
        /// The crash kernel rather than the image `exec` boots.
        #[arg(short = 'p', long = "load-panic")]
        panic: bool,
    },
    /// Drop the loaded image (kexec-tools: -u/--unload), or with -p the crash kernel.
    Unload {
        #[arg(short = 'p', long = "load-panic")]
        panic: bool,
        /// Through kexec_file_load's KEXEC_FILE_UNLOAD (chosen by itself under lockdown).
        #[arg(short = 's', long = "file")]
        file: bool,
    },
    /// Tell what IMAGE is: Image with EFI stub, zboot and its compression, UKI and its sections.
    Info { image: PathBuf },
    /// Replay the running kernel's TPM event log and compare every PCR with the TPM's: exits 0
    /// when each replays (measured boot through the emulator keeps one log that does).
    TpmLog {
        /// The log (default: /sys/kernel/security/tpm0/binary_bios_measurements).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Where the TPM's PCRs are read (default: /sys/class/tpm/tpm0, `pcr-<bank>/<n>`).
        #[arg(long)]
        pcrs: Option<PathBuf>,
        /// List every event.
        #[arg(long)]
        events: bool,
    },
}

#[derive(Args, Debug, PartialEq, Default)]
pub struct ExecArgs {
    /// Do not sync file systems first (kexec-tools: -y/--no-sync).
    #[arg(short = 'y', long)]
    pub no_sync: bool,
    /// Accepted for kexec-tools' sake (-x/--no-ifdown): efi-kexec never takes interfaces down.
    #[arg(short = 'x', long)]
    pub no_ifdown: bool,
}

#[derive(Args, Debug, PartialEq)]
pub struct LoadArgs {
    /// The PE file: an arm64 Image with the EFI stub, a zboot vmlinuz.efi, or a UKI.
    pub image: PathBuf,
    /// The initrd, served to the EFI stub through LoadFile2 (`--ramdisk` in kexec-tools).
    #[arg(long, alias = "ramdisk")]
    pub initrd: Option<PathBuf>,
    /// An EFI system partition for the next boot, served as a disk: a directory (`/boot/efi`,
    /// made into a FAT image) or a FAT image. With IMAGE a file of it, the boot loader starts
    /// from the ESP as firmware would start it, and finds its files beside it (tested with
    /// systemd-boot).
    #[arg(long, value_name = "DIR|IMAGE")]
    pub esp: Option<PathBuf>,
    /// Where IMAGE lies in the ESP (`\EFI\BOOT\BOOTAA64.EFI`), when IMAGE is not a file of
    /// the ESP directory (an ESP image, or a copy).
    #[arg(long, requires = "esp")]
    pub esp_path: Option<String>,
    /// The next kernel's command line; empty lets a UKI use its own `.cmdline`.
    #[arg(long, alias = "command-line")]
    pub append: Option<String>,
    /// Start from the running kernel's command line (`--append` is added after it).
    #[arg(long)]
    pub reuse_cmdline: bool,
    /// The device tree to start from (default: /sys/firmware/fdt).
    #[arg(long)]
    pub dtb: Option<PathBuf>,
    /// The PL011 the emulator prints on (default: the device tree's stdout-path).
    #[arg(long, value_parser = parse_address)]
    pub earlycon: Option<u64>,
    /// The emulator prints only fatal errors.
    #[arg(long)]
    pub quiet: bool,
    /// Print the segment plan and the parameter block; load nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the segment plan and the parameter block, then load (kexec-tools: -d/--debug).
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Load, then boot it at once, without a shutdown (kexec-tools: -f/--force).
    #[arg(short = 'f', long, conflicts_with_all = ["dry_run", "panic"])]
    pub force: bool,
    /// Place nothing below this address (kexec-tools: --mem-min).
    #[arg(long, value_parser = parse_address)]
    pub mem_min: Option<u64>,
    /// Place nothing above this address (kexec-tools: --mem-max, inclusive).
    #[arg(long, value_parser = parse_address)]
    pub mem_max: Option<u64>,
    /// Load IMAGE as the crash kernel, started by a panic, in the "Crash kernel" region
    /// (`crashkernel=`), with an ELF core header of the rest of RAM (kexec-tools: -p).
    #[arg(short = 'p', long = "load-panic")]
    pub panic: bool,
    /// Load through kexec_file_load(2), which lockdown allows for signed images: the emulator
    /// goes as an arm64 Image (`--emulator`), IMAGE (with `--initrd`, a bundle of both) as its
    /// initrd; the kernel builds the DTB (kexec-tools: -s). Chosen by itself when the kernel is
    /// locked down or has no kexec_load.
    #[arg(short = 's', long = "file", conflicts_with_all = ["syscall", "dtb", "earlycon", "quiet"])]
    pub file: bool,
    /// Load through kexec_load(2) only (kexec-tools: -c).
    #[arg(short = 'c', long = "syscall")]
    pub syscall: bool,
    /// The efi-emulator.efi to load with -s: signed, for a locked-down kernel (default: the
    /// built-in emulator as an unsigned Image).
    #[arg(long, value_name = "FILE")]
    pub emulator: Option<PathBuf>,
}

fn parse_address(s: &str) -> Result<u64, String> {
    let digits = s.trim_start_matches("pl011,").trim_start_matches("0x");
    u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?} is not a hex address: {e}"))
}

/// kexec-tools' action flags, anywhere on the line, turned into our subcommands.
fn translate(args: Vec<String>) -> Vec<String> {
    if let Some(i) = args.iter().skip(1).position(|a| a == "-S" || a == "--status").map(|i| i + 1) {
        // Like kexec-tools: the crash kernel, unless the line says -l.
        let reboot = args.iter().any(|a| a == "-l" || a == "--load");
        let mut out = vec![args[0].clone(), "status".to_string()];
        out.extend(args.iter().skip(1).enumerate().filter(|&(j, a)| j + 1 != i && a != "-l" && a != "--load" && a != "-p" && a != "--load-panic").map(|(_, a)| a.clone()));
        if !reboot {
            out.push("-p".to_string());
        }
        return out;
    }
    let is_action = |a: &str| matches!(a, "-l" | "--load" | "-e" | "--exec" | "-u" | "--unload");
    let mut out = args.clone();
    match args.iter().skip(1).position(|a| is_action(a)).map(|i| i + 1) {
        Some(i) => {
            let sub = match out.remove(i).as_str() {
                "-l" | "--load" => "load",
                "-e" | "--exec" => "exec",
                _ => "unload",
            };
            out.insert(1, sub.to_string());
        }
        // `kexec [-s] -p IMAGE`: -p alone is the action, a crash-kernel load.
        None if !args.iter().skip(1).any(|a| matches!(a.as_str(), "load" | "exec" | "unload" | "info")) && args.iter().skip(1).any(|a| a == "-p" || a == "--load-panic") => {
            out.insert(1, "load".to_string())
        }
        None => {}
    }
    out
}

pub fn parse() -> Result<Command, String> {
    parse_from(std::env::args().collect())
}

pub(crate) fn parse_from(args: Vec<String>) -> Result<Command, String> {
    match Cli::try_parse_from(translate(args)) {
        Ok(cli) => Ok(cli.command),
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => Err(e.to_string().trim_start_matches("error: ").trim_end().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Command {
        parse_from(line.split(' ').map(str::to_string).collect()).unwrap()
    }

    #[test]
    fn subcommands_and_kexec_tools_spellings_agree() {
        let ours = parse("efi-kexec load /Image --initrd /initrd --append console=ttyAMA0");
        let theirs = parse("efi-kexec -l /Image --initrd=/initrd --command-line=console=ttyAMA0");
        assert_eq!(ours, theirs);
        let Command::Load(a) = ours else { panic!() };
        assert_eq!(a.image, PathBuf::from("/Image"));
        assert_eq!(a.append.as_deref(), Some("console=ttyAMA0"));
        assert_eq!(parse("efi-kexec --load --ramdisk /i /Image"), parse("efi-kexec load /Image --initrd /i"));
        assert_eq!(parse("efi-kexec -e"), Command::Exec(ExecArgs::default()));
        assert_eq!(parse("efi-kexec --unload"), Command::Unload { panic: false, file: false });
        assert_eq!(parse("efi-kexec -p -u"), Command::Unload { panic: true, file: false });
        assert_eq!(parse("efi-kexec unload -p"), Command::Unload { panic: true, file: false });
        assert_eq!(parse("efi-kexec -s -u"), Command::Unload { panic: false, file: true });
        let Command::Load(crash) = parse("efi-kexec -p /Image --initrd=/i --append=maxcpus=1") else { panic!() };
        assert!(crash.panic && crash.initrd.is_some());
        assert_eq!(parse("efi-kexec load -p /Image"), parse("efi-kexec --load-panic /Image"));
        assert_eq!(parse("efi-kexec exec"), Command::Exec(ExecArgs::default()));
        // kexec-tools' -s, before or after the action, and with -p.
        assert_eq!(parse("efi-kexec -s -l /uki.efi --initrd /i"), parse("efi-kexec load --file /uki.efi --initrd /i"));
        let Command::Load(file_crash) = parse("efi-kexec -s -p /uki.efi --emulator /signed.efi") else { panic!() };
        assert!(file_crash.file && file_crash.panic && file_crash.emulator.is_some());
        assert!(parse_from("efi-kexec load -s -c /x".split(' ').map(str::to_string).collect()).is_err(), "-s and -c exclude each other");
        assert!(parse_from("efi-kexec load -s --dtb /x.dtb /x".split(' ').map(str::to_string).collect()).unwrap_err().contains("--dtb"), "the kernel builds the DTB for -s");
        let Command::Load(with_esp) = parse("efi-kexec load -s --esp /boot/efi /boot/efi/EFI/BOOT/BOOTAA64.EFI") else { panic!() };
        assert!(with_esp.file && with_esp.esp.is_some(), "the ESP goes in the bundle");
    }

    /// kexec-tools' habits: -S (crash kernel unless -l), -x/-y on exec, -d, -f, --mem-min/max,
    /// and the action anywhere on the line.
    #[test]
    fn kexec_tools_habits() {
        assert_eq!(parse("efi-kexec -S"), Command::Status { panic: true });
        assert_eq!(parse("efi-kexec -S -l"), Command::Status { panic: false });
        assert_eq!(parse("efi-kexec --status -p"), Command::Status { panic: true });
        assert_eq!(parse("efi-kexec -e -x -y"), Command::Exec(ExecArgs { no_sync: true, no_ifdown: true }));
        assert_eq!(parse("efi-kexec /Image --initrd=/i -l"), parse("efi-kexec load /Image --initrd /i"), "the action last");
        let Command::Load(a) = parse("efi-kexec -l -d -f /Image --mem-min=0x80000000 --mem-max 0xffffffff") else { panic!() };
        assert!(a.debug && a.force);
        assert_eq!((a.mem_min, a.mem_max), (Some(0x8000_0000), Some(0xffff_ffff)));
        assert!(parse_from("efi-kexec -f -p /Image".split(' ').map(str::to_string).collect()).is_err(), "a crash kernel is not booted now");
    }

    /// What clap checks of a definition (conflicting names, missing values), on all of it.
    #[test]
    fn the_definition_is_sound() {
        command().debug_assert();
    }

    #[test]
    fn options() {
        let Command::Load(a) = parse("efi-kexec load /uki.efi --append= --reuse-cmdline --dry-run --earlycon pl011,0x9000000") else { panic!() };
        assert_eq!(a.append.as_deref(), Some(""));
        assert!(a.reuse_cmdline && a.dry_run);
        assert_eq!(a.earlycon, Some(0x900_0000));
        assert!(parse_from(vec!["efi-kexec".into(), "load".into()]).unwrap_err().contains("IMAGE"));
    }
}
