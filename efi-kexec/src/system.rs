//! The running system: what must hold before `kexec_load(2)` can work, and the system calls.
//!
//! Each refusal says what is missing and what to do about it; the checks run before anything
//! is loaded, so a refused load leaves the running kernel exactly as it was.

use std::path::Path;

/// `KEXEC_ARCH_AARCH64` (EM_AARCH64 << 16): the image is for arm64.
const KEXEC_ARCH_AARCH64: libc::c_ulong = 183 << 16;

/// `struct kexec_segment` of `<linux/kexec.h>`.
#[repr(C)]
pub struct KexecSegment {
    pub buf: *const u8,
    pub bufsz: usize,
    pub mem: u64,
    pub memsz: usize,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The machine `uname(2)` reports, e.g. "aarch64".
pub fn machine() -> String {
    // SAFETY: utsname is plain old data; uname fills it and NUL-terminates each field.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return std::env::consts::ARCH.to_string();
        }
        std::ffi::CStr::from_ptr(u.machine.as_ptr()).to_string_lossy().into_owned()
    }
}

/// What decides whether `kexec_load` can work here.
#[derive(Clone, Debug)]
pub struct Facts {
    pub machine: String,
    pub euid: u32,
    pub has_kexec: bool,
    pub load_disabled: Option<String>,
    pub limit_reboot: Option<String>,
    /// `/sys/kernel/security/lockdown`, e.g. "[none] integrity confidentiality".
    pub lockdown: Option<String>,
}

impl Facts {
    pub fn of_this_system() -> Self {
        Facts {
            machine: machine(),
            // SAFETY: geteuid has no preconditions.
            euid: unsafe { libc::geteuid() },
            has_kexec: Path::new("/sys/kernel/kexec_loaded").exists(),
            load_disabled: read_trimmed("/proc/sys/kernel/kexec_load_disabled"),
            limit_reboot: read_trimmed("/proc/sys/kernel/kexec_load_limit_reboot"),
            lockdown: read_trimmed("/sys/kernel/security/lockdown"),
        }
    }
}

/// Why `kexec_load` cannot be used here, when it cannot.
pub fn kexec_load_refusal() -> Option<String> {
    refusal(&Facts::of_this_system())
}

pub fn refusal(f: &Facts) -> Option<String> {
    if f.machine != "aarch64" {
        return Some(format!("this machine is {}: efi-kexec loads arm64 kernels and runs on arm64 Linux", f.machine));
    }
    if f.euid != 0 {
        return Some(format!("kexec_load(2) needs root (CAP_SYS_BOOT), and this is uid {}: run efi-kexec as root", f.euid));
    }
    if !f.has_kexec {
        return Some("this kernel has no kexec support (no /sys/kernel/kexec_loaded: CONFIG_KEXEC is off)".into());
    }
    if f.load_disabled.as_deref() == Some("1") {
        return Some("kexec_load is disabled: /proc/sys/kernel/kexec_load_disabled is 1, and it stays so until the next reboot".into());
    }
    if f.limit_reboot.as_deref() == Some("0") {
        return Some("kexec_load is disabled: /proc/sys/kernel/kexec_load_limit_reboot is 0 (no more loads allowed until reboot)".into());
    }
    let mode = f.lockdown.as_deref().and_then(|t| t.split_whitespace().find(|w| w.starts_with('['))).map(|w| w.trim_matches(['[', ']']));
    if let Some(mode) = mode.filter(|m| *m != "none") {
        return Some(format!(
            "the kernel is locked down ({mode}): lockdown forbids kexec_load(2), which efi-kexec needs to place the emulator and enter it; \
             kexec_file_load(2), which lockdown allows for signed images, takes only a raw Image on arm64 and skips the EFI stub \
             (boot without lockdown, e.g. with Secure Boot off, or use kexec-tools with the raw Image)"
        ));
    }
    None
}

/// True when an image is loaded for `kexec -e`.
pub fn kexec_loaded() -> bool {
    read_trimmed("/sys/kernel/kexec_loaded").as_deref() == Some("1")
}

/// Each possible CPU's `crash_notes` (physical address and size), in CPU order.
pub fn crash_notes() -> Result<Vec<efi_emulator::mem::Extent>, String> {
    let size = read_trimmed("/sys/devices/system/cpu/cpu0/crash_notes_size").and_then(|s| s.parse().ok()).unwrap_or(0x1000u64);
    let mut notes = Vec::new();
    for cpu in 0.. {
        let Some(addr) = read_trimmed(&format!("/sys/devices/system/cpu/cpu{cpu}/crash_notes")) else { break };
        let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).map_err(|e| format!("cpu{cpu}/crash_notes {addr:?}: {e}"))?;
        notes.push(efi_emulator::mem::Extent::new(addr, size));
    }
    if notes.is_empty() {
        return Err("no /sys/devices/system/cpu/cpu*/crash_notes: this kernel has no crash dump support (CONFIG_CRASH_DUMP)".into());
    }
    Ok(notes)
}

fn errno_message(call: &str) -> String {
    let e = std::io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => " (not root, kexec_load disabled, or the kernel is locked down)",
        Some(libc::EBUSY) => " (another kexec load or exec is in progress)",
        Some(libc::EINVAL) => " (the kernel refused the segments: overlapping, unaligned, or more than half of RAM)",
        Some(libc::ENOMEM) => " (the kernel could not get memory to stage the segments)",
        Some(libc::EADDRNOTAVAIL) => " (a segment's destination is not usable RAM)",
        Some(libc::ENOSYS) => " (this kernel was built without CONFIG_KEXEC)",
        _ => "",
    };
    format!("{call} failed: {e}{hint}")
}

/// `KEXEC_ON_CRASH`: the image is the crash kernel, started by a panic.
const KEXEC_ON_CRASH: libc::c_ulong = 1;

/// `kexec_load(entry, segments, KEXEC_ARCH_AARCH64 [| KEXEC_ON_CRASH])`; no segments unloads.
pub fn kexec_load(entry: u64, segments: &[KexecSegment], on_crash: bool) -> Result<(), String> {
    let flags = KEXEC_ARCH_AARCH64 | if on_crash { KEXEC_ON_CRASH } else { 0 };
    // SAFETY: every segment's buf/bufsz describes a live buffer the caller keeps until this
    // returns (the kernel copies them during the call); an empty list passes NULL and 0.
    let r = unsafe {
        let ptr = if segments.is_empty() { std::ptr::null() } else { segments.as_ptr() };
        libc::syscall(libc::SYS_kexec_load, entry as libc::c_ulong, segments.len() as libc::c_ulong, ptr, flags)
    };
    if r != 0 {
        return Err(errno_message(if segments.is_empty() { "kexec_load (unload)" } else { "kexec_load" }));
    }
    Ok(())
}

/// `reboot(LINUX_REBOOT_CMD_KEXEC)`: starts the loaded image; returns only on failure.
pub fn kexec_exec() -> String {
    // SAFETY: sync and reboot take no pointers; reboot returns only when it fails.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC);
    }
    errno_message("reboot(LINUX_REBOOT_CMD_KEXEC)")
}

/// `n` random bytes from getrandom(2).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r < 0 {
            return Err(errno_message("getrandom"));
        }
        filled += r as usize;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Facts {
        Facts {
            machine: "aarch64".into(),
            euid: 0,
            has_kexec: true,
            load_disabled: Some("0".into()),
            limit_reboot: Some("-1".into()),
            lockdown: Some("[none] integrity confidentiality".into()),
        }
    }

    #[test]
    fn each_missing_requirement_is_named() {
        assert_eq!(refusal(&ok()), None);
        type Break = fn(&mut Facts);
        let cases: [(Break, &str); 6] = [
            (|f| f.machine = "x86_64".into(), "this machine is x86_64"),
            (|f| f.euid = 1000, "needs root (CAP_SYS_BOOT), and this is uid 1000"),
            (|f| f.has_kexec = false, "CONFIG_KEXEC is off"),
            (|f| f.load_disabled = Some("1".into()), "kexec_load_disabled is 1"),
            (|f| f.limit_reboot = Some("0".into()), "kexec_load_limit_reboot is 0"),
            (|f| f.lockdown = Some("none [integrity] confidentiality".into()), "locked down (integrity): lockdown forbids kexec_load(2)"),
        ];
        for (break_it, expected) in cases {
            let mut f = ok();
            break_it(&mut f);
            let why = refusal(&f).unwrap();
            assert!(why.contains(expected), "{why}");
        }
        let mut no_securityfs = ok();
        no_securityfs.lockdown = None;
        assert_eq!(refusal(&no_securityfs), None);
    }
}
