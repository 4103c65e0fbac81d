//! The command line of `cargo xtask`: its commands and flags (clap).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use xtask::harness::run;
use xtask::harness::trampoline::EntryEl;

#[derive(Parser)]
#[command(about = "Build, run and test efi-emulator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build the blob (target/efi-emulator/efi-emulator.bin), efi_emulator.h, and efi-kexec
    /// (target/aarch64-unknown-linux-musl/release/efi-kexec) with the blob inside.
    Build {
        #[arg(long)]
        verbose: bool,
    },
    /// Install the host tools: QEMU >= 8, the aarch64-unknown-none target, dpkg-deb, cc.
    Setup,
    /// Download the Debian payloads into the cache and build the test initramfs.
    Payloads,
    /// Boot a PE kernel through the emulator under QEMU, laid out like kexec_file_load.
    Run(RunArgs),
    /// Real kexec: Debian's 6.12 boots directly, and its /init kexecs PE through efi-kexec.
    Kexec(KexecArgs),
    /// Boot times beside direct boot, U-Boot and EDK2 (medians with min-max, interleaved), the
    /// emulator's phases under -icount, sizes; writes docs/bench.{md,json,svg} (one suite:
    /// docs/bench-SUITE.*).
    Bench {
        /// Boots per configuration (the icount suite repeats exactly and takes at most 3).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// boot: the payloads under the emulator (printing on and off), direct -kernel, U-Boot
        /// and EDK2; icount: the emulator's phases in guest time and how they scale; standard:
        /// both; kexec: real kexec from Debian 6.12, kexec-tools beside efi-kexec (about 15 min
        /// for 5 rounds: kexec-tools loads for 80-100 s under TCG); secure-boot: verifying the 46
        /// MB UKI in guest time, SHA-256 instructions and portable (also in standard); all: every
        /// suite.
        #[arg(long, value_enum, default_value = "standard")]
        suite: BenchSuite,
        /// Where the report goes (default: docs/ of the repository).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the fuzz targets in fuzz/ (cargo-fuzz, nightly), seeded from the payloads.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// The lint gate: rustfmt, and clippy with -D warnings for the host, the blob (with and
    /// without the test hooks), the UEFI test payload and efi-kexec for arm64 musl.
    Lint,
    /// Everything: the lint gate, setup, build, payloads, host tests, Miri, QEMU tests.
    Test {
        /// Only the host unit tests.
        #[arg(long)]
        host_only: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSuite {
    Standard,
    All,
    Boot,
    Icount,
    Kexec,
    SecureBoot,
    MeasuredBoot,
}

/// What to boot: shared by `run` and `kexec`.
#[derive(clap::Args)]
pub struct PayloadArgs {
    /// The PE file (default: Debian's 6.12 arm64 kernel for run, 6.1 for kexec).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// The initrd (default: the busybox test initramfs).
    #[arg(long, conflicts_with = "no_initrd")]
    pub initrd: Option<PathBuf>,
    /// Boot without an initrd.
    #[arg(long)]
    pub no_initrd: bool,
    /// The kernel command line (`--append ""` lets a UKI use its own).
    #[arg(long, default_value = run::DEFAULT_APPEND)]
    pub append: String,
}

#[derive(clap::Args)]
pub struct KexecArgs {
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// The first kernel's EL: 1, 2 (nVHE: kvm-arm.mode=nvhe) or 2vhe.
    #[arg(long, value_enum, default_value = "1")]
    pub el: EntryEl,
    #[arg(long, default_value_t = 240)]
    pub timeout: u64,
    /// Only `efi-kexec load --dry-run`: print the plan, kexec nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// EDK2 boots the first kernel (which then runs on ACPI): the firmware is passed through.
    #[arg(long)]
    pub edk2: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// An EFI system partition served as a disk: a directory (made into a FAT image) or a FAT
    /// image; `--kernel ESP/EFI/BOOT/BOOTAA64.EFI` then boots the loader from it, as firmware.
    #[arg(long)]
    pub esp: Option<PathBuf>,
    /// Serve an `--esp` directory as a GPT disk with one EFI system partition (`HD()` device
    /// paths, a partition handle under the disk's), as a real disk's ESP looks.
    #[arg(long, requires = "esp")]
    pub esp_gpt: bool,
    /// The exception level the emulator is entered at.
    #[arg(long, value_enum, default_value = "1")]
    pub el: EntryEl,
    #[arg(long, default_value_t = 1)]
    pub smp: u32,
    #[arg(long, default_value = "1G")]
    pub mem: String,
    #[arg(long, default_value = "max")]
    pub cpu: String,
    /// The GIC of QEMU's `virt` machine (2 or 3).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub gic: u8,
    /// Seconds before the run is stopped and counted as failed.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Clear print_enabled: the emulator prints only fatal errors.
    #[arg(long)]
    pub quiet: bool,
    /// Make the emulator fault on purpose after the MMU is on: data-abort or undefined.
    #[arg(long)]
    pub debug_fault: Option<String>,
    /// Have the emulator CRC the kernel, initrd and DTB at entry and check them again.
    #[arg(long)]
    pub integrity: bool,
    /// Have the emulator print its timeline line even with `--quiet`.
    #[arg(long)]
    pub timeline: bool,
    /// Run QEMU with `-icount shift=0`: guest time that repeats exactly.
    #[arg(long)]
    pub icount: bool,
    /// Have the emulator verify the kernel image's signature and say the verdict and its cost,
    /// without enforcing (there are no firmware databases here).
    #[arg(long)]
    pub secure_boot_audit: bool,
    /// Have the emulator hash with the portable SHA-256, not the CPU's instructions.
    #[arg(long)]
    pub generic_sha256: bool,
    /// Give the machine a fresh TPM 2.0 (swtpm behind QEMU's tpm-tis-device): measured boot.
    #[arg(long)]
    pub tpm: bool,
    /// Reserve this many 64 KiB ranges in the upper half of RAM (a map of hundreds of
    /// descriptors).
    #[arg(long, default_value_t = 0)]
    pub reserved_ranges: usize,
    /// Reserve only the kernel file's bytes, not SizeOfImage, as a loader that ignores the PE
    /// header would: the emulator must copy the kernel.
    #[arg(long)]
    pub kernel_file_size_only: bool,
    /// Boot the Image form (efi-emulator.efi) as arm64 kexec_file_load does: the kernel as its
    /// initrd (with --initrd, a bundle of kernel, initrd and command line), entered with x0 =
    /// the DTB.
    #[arg(long)]
    pub kexec_file: bool,
}
