//! Real kexec under QEMU: a first kernel (Debian's 6.12, booted directly with `-kernel`, or by
//! EDK2) whose initramfs is a stage ([`crate::payloads::kexec_stage`]): it holds `efi-kexec` and
//! the next payload, and its `/init` loads the payload through `efi-kexec` and kexecs into it.
//!
//! The first kernel runs on `-cpu max,lpa2=off`: Debian's 6.12.95 oopses in
//! `trans_pgd_create_copy` during `kexec_load` on a CPU with FEAT_LPA2 (52-bit VAs).

use crate::harness::qemu::{self, Transcript};
use crate::harness::trampoline::EntryEl;
use crate::paths;
use crate::payloads::kexec_stage::STAGE_PREFIX;
use crate::payloads::Payloads;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The first kernel's command line (the nVHE case adds `kvm-arm.mode=nvhe`).
pub const FIRST_APPEND: &str = "console=ttyAMA0 panic=-1";
/// What [`FirstBoot::DirectCrashKernel`] adds to it: the crash kernel region.
pub const CRASHKERNEL: &str = "crashkernel=256M";
/// What [`FirstBoot::DirectCrashKernelHighLow`] adds: a main region above 4 GiB and a low one.
pub const CRASHKERNEL_HIGH_LOW: &str = "crashkernel=256M,high crashkernel=64M,low";
/// QEMU's CPU for the first kernel: no FEAT_LPA2 (see the module comment).
pub const FIRST_CPU: &str = "max,lpa2=off";

/// The crash regions `boot` reserves, as command-line words.
fn crash_append(boot: FirstBoot) -> String {
    match boot {
        FirstBoot::DirectCrashKernel | FirstBoot::Edk2CrashKernel | FirstBoot::DirectCrashKernelVirtioMem => format!(" {CRASHKERNEL}"),
        FirstBoot::DirectCrashKernelHighLow => format!(" {CRASHKERNEL_HIGH_LOW}"),
        _ => String::new(),
    }
}

/// How the first kernel runs: its EL, and so its machine and command line.
pub fn first_machine(el: EntryEl) -> (&'static str, &'static str) {
    match el {
        EntryEl::El1 => ("virt", ""),
        EntryEl::El2Vhe => ("virt,virtualization=on", ""),
        EntryEl::El2 => ("virt,virtualization=on", " kvm-arm.mode=nvhe"),
    }
}

/// What starts the first kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstBoot {
    /// QEMU enters the Image itself: no UEFI, the machine's device tree.
    Direct,
    /// The same, with [`CRASHKERNEL`] reserving a crash kernel region.
    DirectCrashKernel,
    /// The same with 4 GiB and [`CRASHKERNEL_HIGH_LOW`]: two crash regions, as servers have them.
    DirectCrashKernelHighLow,
    /// EDK2 (Debian's AAVMF, with a writable variable store) boots it through its EFI stub; on
    /// QEMU `virt` the kernel then takes ACPI, and `/sys/firmware/fdt` holds only `/chosen`.
    Edk2,
    /// The same, with SMBIOS naming an Ampere eMAG processor: arm64 Linux then calls
    /// SetVirtualAddressMap (those machines need it), so the first kernel moves the firmware to
    /// new virtual addresses.
    Edk2Emag,
    /// EDK2 on a GICv3 with an ITS (`gic-version=3,its=on`): the first kernel's LPI tables are
    /// persistent reservations in its memreserve chain, which no later kernel may reuse.
    Edk2Gicv3Its,
    /// [`FirstBoot::Edk2Gicv3Its`] with a virtio-pci disk (MSI-X through the ITS) holding
    /// [`DISK_MARKER`] at its start.
    Edk2Gicv3ItsDisk,
    /// EDK2 boots it with [`CRASHKERNEL`]: kdump on a machine with UEFI firmware, as servers are.
    Edk2CrashKernel,
    /// Booted directly with [`CRASHKERNEL`] and a virtio-mem device of 1 GiB with 512 MiB to plug
    /// (`-m 2G,maxmem=4G`): RAM a driver manages, "System RAM (virtio_mem)" in /proc/iomem.
    DirectCrashKernelVirtioMem,
    /// Booted directly on two NUMA nodes of 1 GiB each: two `/memory` nodes, as multi-socket
    /// and multi-bank machines have them.
    DirectTwoNodes,
}

/// What the first bytes of [`FirstBoot::Edk2Gicv3ItsDisk`]'s disk say.
pub const DISK_MARKER: &str = "efi-emulator-test-disk";

/// Debian's EDK2 for QEMU: the code (read-only) and the variable store template.
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";

/// QEMU's arguments for Debian's AAVMF: its code read-only, `vars` (written by the firmware) as
/// the variable store.
pub fn edk2_flash(vars: &Path) -> [String; 4] {
    ["-drive".into(), format!("if=pflash,format=raw,readonly=on,file={AAVMF_CODE}"), "-drive".into(), format!("if=pflash,format=raw,file={}", vars.display())]
}

/// Boots Debian's 6.12 directly with `initramfs` as its initrd, 2 CPUs, 2 GiB.
pub fn boot_first(payloads: &Payloads, el: EntryEl, initramfs: &[u8], timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_with(payloads, el, FirstBoot::Direct, initramfs, timeout, echo)
}

/// Boots Debian's 6.12 as `boot` says, with `initramfs` as its initrd, 2 CPUs, 2 GiB.
pub fn boot_first_with(payloads: &Payloads, el: EntryEl, boot: FirstBoot, initramfs: &[u8], timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_vars(payloads, el, boot, initramfs, None, timeout, echo)
}

/// [`boot_first_with`], with EDK2's variable store in `vars` (kept across boots) instead of a
/// fresh copy.
pub fn boot_first_vars(payloads: &Payloads, el: EntryEl, boot: FirstBoot, initramfs: &[u8], vars: Option<&Path>, timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_kernel(&payloads.kernel("6.12")?.image, el, boot, initramfs, vars, timeout, echo)
}

/// [`boot_first_vars`] with another first kernel than Debian's 6.12, such as
/// [`crate::payloads::file_kernel`]'s `Image` (a raw arm64 Image with the EFI stub, for EDK2).
pub fn boot_first_kernel(kernel: &Path, el: EntryEl, boot: FirstBoot, initramfs: &[u8], vars: Option<&Path>, timeout: Duration, echo: bool) -> Result<Transcript> {
    boot_first_kernel_with(kernel, el, boot, initramfs, vars, Extras::default(), timeout, echo)
}

/// More for [`boot_first_kernel_with`]: QEMU arguments (a TPM: [`crate::harness::tpm::Swtpm`])
/// and a hook on the console.
#[derive(Default)]
pub struct Extras<'a> {
    pub qemu_args: Vec<String>,
    pub hook: Option<qemu::Hook<'a>>,
}

/// [`boot_first_kernel`] with [`Extras`].
#[allow(clippy::too_many_arguments)]
pub fn boot_first_kernel_with(
    kernel: &Path,
    el: EntryEl,
    boot: FirstBoot,
    initramfs: &[u8],
    vars: Option<&Path>,
    extras: Extras,
    timeout: Duration,
    echo: bool,
) -> Result<Transcript> {
    let dir = paths::out_dir().join("runs").join(format!("kexec-{}-{:?}-{}", std::process::id(), el, unique()));
    std::fs::create_dir_all(&dir)?;
    let initrd = dir.join("first.cpio");
    std::fs::write(&initrd, initramfs)?;
    let (machine, extra) = first_machine(el);
    let its = matches!(boot, FirstBoot::Edk2Gicv3Its | FirstBoot::Edk2Gicv3ItsDisk);
    let machine = if its { format!("{machine},gic-version=3,its=on") } else { machine.to_string() };
    let mut args: Vec<String> = [
        "-M",
        &machine,
        "-cpu",
        FIRST_CPU,
        "-m",
        match boot {
            FirstBoot::DirectCrashKernelHighLow => "4G",
            FirstBoot::DirectCrashKernelVirtioMem => "2G,maxmem=4G",
            _ => "2G",
        },
        "-smp",
        "2",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["-kernel".into(), kernel.display().to_string(), "-initrd".into(), initrd.display().to_string()])
    .chain(["-append".into(), format!("{FIRST_APPEND}{extra}{}", crash_append(boot))])
    .collect();
    if boot == FirstBoot::DirectTwoNodes {
        args.extend(
            ["-object", "memory-backend-ram,id=m0,size=1G", "-object", "memory-backend-ram,id=m1,size=1G", "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"].map(String::from),
        );
    }
    if boot == FirstBoot::DirectCrashKernelVirtioMem {
        args.extend(["-object", "memory-backend-ram,id=vmem0,size=1G", "-device", "virtio-mem-pci,memdev=vmem0,requested-size=512M"].map(String::from));
    }
    if boot == FirstBoot::Edk2Gicv3ItsDisk {
        let disk = dir.join("disk.img");
        let mut bytes = DISK_MARKER.as_bytes().to_vec();
        bytes.resize(1 << 20, 0);
        std::fs::write(&disk, bytes)?;
        args.extend(["-drive".into(), format!("if=none,id=disk0,format=raw,readonly=on,file={}", disk.display()), "-device".into(), "virtio-blk-pci,drive=disk0".into()]);
    }
    if boot == FirstBoot::Edk2Emag {
        args.extend(["-smbios".into(), "type=4,version=eMAG".into()]);
    }
    if matches!(boot, FirstBoot::Edk2 | FirstBoot::Edk2Emag | FirstBoot::Edk2Gicv3Its | FirstBoot::Edk2Gicv3ItsDisk | FirstBoot::Edk2CrashKernel) {
        let vars = match vars {
            Some(v) => v.to_path_buf(),
            None => {
                let fresh = dir.join("AAVMF_VARS.fd");
                std::fs::copy(AAVMF_VARS, &fresh).with_context(|| format!("copying {AAVMF_VARS} (install qemu-efi-aarch64: `cargo xtask setup`)"))?;
                fresh
            }
        };
        args.extend(edk2_flash(&vars));
    }
    args.extend(extras.qemu_args);
    let t = match extras.hook {
        Some(hook) => qemu::run_hooked(&args, timeout, echo, hook),
        None => qemu::run(&args, timeout, echo),
    };
    let _ = std::fs::remove_dir_all(&dir);
    t
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The value a stage reported for `key` (`efi-kexec-test: <stage>: <key>: value`).
pub fn stage_report(t: &Transcript, stage: &str, key: &str) -> Option<String> {
    let prefix = format!("{STAGE_PREFIX}{stage}: {key}");
    t.lines.iter().find_map(|(_, l)| l.strip_prefix(&prefix).map(|v| v.trim_start_matches(':').trim().to_string()))
}
