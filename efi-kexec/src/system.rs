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

/// Why `kexec_load` cannot be used here, when it cannot.
pub fn kexec_load_refusal() -> Option<String> {
    let machine = machine();
    if machine != "aarch64" {
        return Some(format!("this machine is {machine}: efi-kexec loads arm64 kernels and runs on arm64 Linux"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("kexec_load(2) needs root (CAP_SYS_BOOT): run efi-kexec as root".into());
    }
    if !Path::new("/sys/kernel/kexec_loaded").exists() {
        return Some("this kernel has no kexec support (no /sys/kernel/kexec_loaded: CONFIG_KEXEC is off)".into());
    }
    if read_trimmed("/proc/sys/kernel/kexec_load_disabled").as_deref() == Some("1") {
        return Some("kexec_load is disabled: /proc/sys/kernel/kexec_load_disabled is 1, and it stays so until the next reboot".into());
    }
    if read_trimmed("/proc/sys/kernel/kexec_load_limit_reboot").as_deref() == Some("0") {
        return Some("kexec_load is disabled: /proc/sys/kernel/kexec_load_limit_reboot is 0 (no more loads allowed until reboot)".into());
    }
    if let Some(mode) = lockdown() {
        return Some(format!(
            "the kernel is locked down ({mode}): lockdown forbids kexec_load(2), which efi-kexec needs to place the emulator and enter it; \
             kexec_file_load(2), which lockdown allows for signed images, takes only a raw Image on arm64 and skips the EFI stub \
             (boot without lockdown, e.g. with Secure Boot off, or use kexec-tools with the raw Image)"
        ));
    }
    None
}

/// The active lockdown mode, when it is not "none".
fn lockdown() -> Option<String> {
    let text = read_trimmed("/sys/kernel/security/lockdown")?;
    let active = text.split_whitespace().find(|w| w.starts_with('['))?.trim_matches(['[', ']']).to_string();
    (active != "none").then_some(active)
}

/// True when an image is loaded for `kexec -e`.
pub fn kexec_loaded() -> bool {
    read_trimmed("/sys/kernel/kexec_loaded").as_deref() == Some("1")
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

/// `kexec_load(entry, segments, KEXEC_ARCH_AARCH64)`; no segments unloads.
pub fn kexec_load(entry: u64, segments: &[KexecSegment]) -> Result<(), String> {
    // SAFETY: every segment's buf/bufsz describes a live buffer the caller keeps until this
    // returns (the kernel copies them during the call); an empty list passes NULL and 0.
    let r = unsafe {
        let ptr = if segments.is_empty() { std::ptr::null() } else { segments.as_ptr() };
        libc::syscall(libc::SYS_kexec_load, entry as libc::c_ulong, segments.len() as libc::c_ulong, ptr, KEXEC_ARCH_AARCH64)
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
