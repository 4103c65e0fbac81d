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
    /// Loads still allowed (`-1`: no limit), for the reboot image and for the crash image.
    pub limit_reboot: Option<String>,
    pub limit_panic: Option<String>,
    /// `/sys/kernel/security/lockdown`, e.g. `[none] integrity confidentiality`.
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
            limit_panic: read_trimmed("/proc/sys/kernel/kexec_load_limit_panic"),
            lockdown: read_trimmed("/sys/kernel/security/lockdown"),
        }
    }
}

/// Why no kexec can run here at all. Executing a loaded image needs no more than this:
/// `reboot(LINUX_REBOOT_CMD_KEXEC)` is allowed after `kexec_load_disabled` and under lockdown
/// ("load, then disable" is the documented hardening).
pub fn exec_refusal(f: &Facts) -> Option<String> {
    if f.machine != "aarch64" {
        return Some(format!("this machine is {}: efi-kexec loads arm64 kernels and runs on arm64 Linux", f.machine));
    }
    if f.euid != 0 {
        return Some(format!("kexec needs root (CAP_SYS_BOOT), and this is uid {}: run efi-kexec as root", f.euid));
    }
    if !f.has_kexec {
        return Some("this kernel has no kexec support (no /sys/kernel/kexec_loaded: neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE)".into());
    }
    None
}

/// Why no image (the crash image when `panic`) can be loaded or unloaded here, by either system
/// call.
pub fn load_refusal(f: &Facts, panic: bool) -> Option<String> {
    if let Some(why) = exec_refusal(f) {
        return Some(why);
    }
    if f.load_disabled.as_deref() == Some("1") {
        return Some("kexec is disabled: /proc/sys/kernel/kexec_load_disabled is 1 (for both kexec_load and kexec_file_load), and it stays so until the next reboot".into());
    }
    let (limit, name) = if panic { (&f.limit_panic, "kexec_load_limit_panic") } else { (&f.limit_reboot, "kexec_load_limit_reboot") };
    if limit.as_deref() == Some("0") {
        return Some(format!("kexec is disabled: /proc/sys/kernel/{name} is 0 (no more loads of this kind allowed until reboot)"));
    }
    None
}

/// The lockdown mode, when the kernel is locked down ("integrity" or "confidentiality").
pub fn lockdown(f: &Facts) -> Option<String> {
    let mode = f.lockdown.as_deref().and_then(|t| t.split_whitespace().find(|w| w.starts_with('['))).map(|w| w.trim_matches(['[', ']']));
    mode.filter(|m| *m != "none").map(str::to_string)
}

/// Why `kexec_load` cannot be used here (for the crash image when `panic`), when it cannot.
pub fn refusal(f: &Facts, panic: bool) -> Option<String> {
    if let Some(why) = load_refusal(f, panic) {
        return Some(why);
    }
    lockdown(f).map(|mode| {
        format!(
            "the kernel is locked down ({mode}): lockdown forbids kexec_load(2); kexec_file_load(2) is allowed for a signed Image: \
             load with -s (efi-kexec passes the emulator as an arm64 Image, signed with --emulator FILE)"
        )
    })
}

/// The running kernel's page size: kexec_load wants every segment aligned to it.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// A kernel CPU list (`0-3,5,8-9`), in order.
fn cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
        if last < first || last - first > 65_536 {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Whether an image is loaded for `kexec -e` (the crash image when `panic`); `None` when the
/// kernel does not say.
pub fn loaded(panic: bool) -> Option<bool> {
    let flag = read_trimmed(if panic { "/sys/kernel/kexec_crash_loaded" } else { "/sys/kernel/kexec_loaded" })?;
    Some(flag == "1")
}

/// Each possible CPU's `crash_notes` (physical address and size), in CPU order.
pub fn crash_notes() -> Result<Vec<efi_emulator::mem::Extent>, String> {
    let size = read_trimmed("/sys/devices/system/cpu/cpu0/crash_notes_size").and_then(|s| s.parse().ok()).unwrap_or(0x1000u64);
    let possible = read_trimmed("/sys/devices/system/cpu/possible").ok_or("cannot read /sys/devices/system/cpu/possible")?;
    let mut notes = Vec::new();
    // Every possible CPU that is present has notes; one absent (not plugged, `maxcpus=`)
    // leaves a gap, not the end of the list.
    for cpu in cpu_list(&possible).ok_or_else(|| format!("/sys/devices/system/cpu/possible: {possible:?}"))? {
        let Some(addr) = read_trimmed(&format!("/sys/devices/system/cpu/cpu{cpu}/crash_notes")) else { continue };
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
        // sanity_check_segment_list: a segment not on the running kernel's pages, past the
        // destination limit, or (for -p) outside the crash region.
        Some(libc::EADDRNOTAVAIL) => " (a segment's destination is not on this kernel's page size, or lies outside RAM or the crash region)",
        Some(libc::ENOSYS) => " (this kernel was built without CONFIG_KEXEC)",
        _ => "",
    };
    format!("{call} failed: {e}{hint}")
}

/// `__NR_kexec_file_load`: the libc crate names it for glibc targets but not for musl's arm64.
#[cfg(target_arch = "aarch64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 294;
#[cfg(target_arch = "x86_64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 320;

/// `kexec_file_load(2)` flags.
const KEXEC_FILE_UNLOAD: libc::c_ulong = 1;
const KEXEC_FILE_ON_CRASH: libc::c_ulong = 2;
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 4;

/// Why `kexec_file_load` failed, with what the kernel checks under lockdown.
fn file_errno_message(call: &str) -> String {
    let e = std::io::Error::last_os_error();
    let signature = "the kernel checks the Image's PE/Authenticode signature against the .builtin_trusted_keys and \
        .secondary_trusted_keys keyrings, then .platform (the firmware's db, and shim's MOKs through .machine): \
        sign efi-emulator.efi with a key those hold (`sbsign --key KEY --cert CERT efi-emulator.efi`, a db key or \
        an enrolled MOK; remove an older signature first with `sbattach --remove`, the kernel checks only the first) \
        and pass it with --emulator FILE";
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => format!(" (the kernel refuses unsigned or unverifiable images here: lockdown or KEXEC_SIG_FORCE; {signature})"),
        Some(libc::EKEYREJECTED) | Some(libc::ENOKEY) | Some(libc::EBADMSG) | Some(libc::ENODATA) | Some(libc::ENOPKG) => {
            format!(" (the signature was refused: {signature})")
        }
        Some(libc::ENOEXEC) => " (the kernel's arm64 Image loader did not take the file: not an arm64 Image)".into(),
        Some(libc::ENOSYS) => " (this kernel was built without CONFIG_KEXEC_FILE)".into(),
        Some(libc::EBUSY) => " (another kexec load or exec is in progress)".into(),
        Some(libc::ENOMEM) | Some(libc::EADDRNOTAVAIL) => " (no room for the segments: the payload is too large for this machine's RAM or crash region)".into(),
        _ => String::new(),
    };
    format!("{call} failed: {e}{hint}")
}

/// An anonymous file holding `bytes`, for `kexec_file_load`'s file descriptors.
pub fn memfd(name: &str, bytes: &[u8]) -> Result<std::fs::File, String> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated name and flags; the returned descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create failed: {} (kexec_file_load needs files: CONFIG_MEMFD_CREATE)", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(bytes).map_err(|e| format!("writing {name} to a memfd: {e}"))?;
    Ok(f)
}

/// `kexec_file_load(kernel, initrd, cmdline, flags)`: the kernel reads, checks (under lockdown:
/// the signature) and places the files itself.
pub fn kexec_file_load(kernel: &std::fs::File, initrd: Option<&std::fs::File>, cmdline: &str, on_crash: bool) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let c = std::ffi::CString::new(cmdline).map_err(|_| "the command line holds a NUL byte".to_string())?;
    let flags = if on_crash { KEXEC_FILE_ON_CRASH } else { 0 } | if initrd.is_none() { KEXEC_FILE_NO_INITRAMFS } else { 0 };
    // SAFETY: the descriptors are open files; the command line is NUL-terminated and its length
    // counts the NUL, as the kernel expects.
    let r =
        unsafe { libc::syscall(SYS_KEXEC_FILE_LOAD, kernel.as_raw_fd(), initrd.map_or(-1, |f| f.as_raw_fd()), c.as_bytes_with_nul().len() as libc::c_ulong, c.as_ptr(), flags) };
    if r != 0 {
        return Err(file_errno_message("kexec_file_load"));
    }
    Ok(())
}

/// `kexec_file_load(KEXEC_FILE_UNLOAD)`: allowed under lockdown.
pub fn kexec_file_unload(on_crash: bool) -> Result<(), String> {
    let flags = KEXEC_FILE_UNLOAD | if on_crash { KEXEC_FILE_ON_CRASH } else { 0 };
    // SAFETY: no pointers: the descriptors are ignored with KEXEC_FILE_UNLOAD.
    let r = unsafe { libc::syscall(SYS_KEXEC_FILE_LOAD, -1 as libc::c_int, -1 as libc::c_int, 0 as libc::c_ulong, std::ptr::null::<libc::c_char>(), flags) };
    if r != 0 {
        return Err(file_errno_message("kexec_file_load (unload)"));
    }
    Ok(())
}

/// A failed `kexec_load`: its message, and the errno that decides whether another door is
/// worth trying.
#[derive(Debug)]
pub struct LoadError {
    pub errno: Option<i32>,
    pub message: String,
}

impl LoadError {
    /// The kernel has no `kexec_load` (ENOSYS).
    pub fn absent(&self) -> bool {
        self.errno == Some(libc::ENOSYS)
    }
    /// Refused for root (EPERM): lockdown, when securityfs was not there to say so beforehand.
    pub fn refused(&self) -> bool {
        self.errno == Some(libc::EPERM)
    }
}

impl From<LoadError> for String {
    fn from(e: LoadError) -> String {
        e.message
    }
}

/// `KEXEC_ON_CRASH`: the image is the crash kernel, started by a panic.
const KEXEC_ON_CRASH: libc::c_ulong = 1;

/// `kexec_load(entry, segments, KEXEC_ARCH_AARCH64 [| KEXEC_ON_CRASH])`; no segments unloads.
pub fn kexec_load(entry: u64, segments: &[KexecSegment], on_crash: bool) -> Result<(), LoadError> {
    let flags = KEXEC_ARCH_AARCH64 | if on_crash { KEXEC_ON_CRASH } else { 0 };
    // SAFETY: every segment's buf/bufsz describes a live buffer the caller keeps until this
    // returns (the kernel copies them during the call); an empty list passes NULL and 0.
    let r = unsafe {
        let ptr = if segments.is_empty() { std::ptr::null() } else { segments.as_ptr() };
        libc::syscall(libc::SYS_kexec_load, entry as libc::c_ulong, segments.len() as libc::c_ulong, ptr, flags)
    };
    if r != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        return Err(LoadError { errno, message: errno_message(if segments.is_empty() { "kexec_load (unload)" } else { "kexec_load" }) });
    }
    Ok(())
}

/// `reboot(LINUX_REBOOT_CMD_KEXEC)`: starts the loaded image; returns only on failure.
pub fn kexec_exec(sync: bool) -> String {
    // SAFETY: sync and reboot take no pointers; reboot returns only when it fails.
    unsafe {
        if sync {
            libc::sync();
        }
        libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC);
    }
    errno_message("reboot(LINUX_REBOOT_CMD_KEXEC)")
}

/// `n` random bytes from getrandom(2).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    fill_random(n, &mut |buf: &mut [u8], flags| {
        // SAFETY: the pointer and length describe `buf`.
        let r = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    })
}

/// `n` random bytes through `getrandom` (the system call, or a stand-in in tests): without
/// blocking, since early in boot (a kexec from an initramfs) the pool may not be ready for
/// long; then, said so, from the pool as it is (GRND_INSECURE): the seeds only vary the next
/// kernel's KASLR and seed its pool, which mixes in its own entropy too.
fn fill_random(n: usize, getrandom: &mut dyn FnMut(&mut [u8], libc::c_uint) -> std::io::Result<usize>) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut flags = libc::GRND_NONBLOCK;
    let mut filled = 0;
    while filled < n {
        match getrandom(&mut buf[filled..], flags) {
            Ok(got) => filled += got,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && flags == libc::GRND_NONBLOCK => {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    b"efi-kexec: note: the kernel's random pool is not ready yet: the next kernel's seeds come from it as it is\n",
                );
                flags = libc::GRND_INSECURE;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(format!("getrandom failed: {e}")),
        }
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
            limit_panic: Some("-1".into()),
            lockdown: Some("[none] integrity confidentiality".into()),
        }
    }

    #[test]
    fn each_missing_requirement_is_named() {
        assert_eq!(refusal(&ok(), false), None);
        type Break = fn(&mut Facts);
        let cases: [(Break, &str); 6] = [
            (|f| f.machine = "x86_64".into(), "this machine is x86_64"),
            (|f| f.euid = 1000, "needs root (CAP_SYS_BOOT), and this is uid 1000"),
            (|f| f.has_kexec = false, "neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE"),
            (|f| f.load_disabled = Some("1".into()), "kexec_load_disabled is 1"),
            (|f| f.limit_reboot = Some("0".into()), "kexec_load_limit_reboot is 0"),
            (
                |f| f.lockdown = Some("none [integrity] confidentiality".into()),
                "locked down (integrity): lockdown forbids kexec_load(2); kexec_file_load(2) is allowed for a signed Image: load with -s",
            ),
        ];
        for (break_it, expected) in cases {
            let mut f = ok();
            break_it(&mut f);
            let why = refusal(&f, false).unwrap();
            assert!(why.contains(expected), "{why}");
        }
        let mut no_securityfs = ok();
        no_securityfs.lockdown = None;
        assert_eq!(refusal(&no_securityfs, false), None);
        // Lockdown closes only kexec_load: the common checks pass, and the mode is named.
        let mut locked = ok();
        locked.lockdown = Some("none integrity [confidentiality]".into());
        assert_eq!(load_refusal(&locked, false), None);
        assert_eq!(lockdown(&locked).as_deref(), Some("confidentiality"));
    }

    /// Early in boot the pool is not ready: getrandom would block, so the seeds come without
    /// blocking, from the pool as it is.
    #[test]
    fn random_bytes_never_wait_for_the_pool() {
        let mut calls = Vec::new();
        let bytes = fill_random(8, &mut |buf: &mut [u8], flags| {
            calls.push(flags);
            if flags == libc::GRND_NONBLOCK {
                return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
            }
            buf.fill(7);
            Ok(buf.len())
        })
        .unwrap();
        assert_eq!(bytes, [7; 8]);
        assert_eq!(calls, [libc::GRND_NONBLOCK, libc::GRND_INSECURE], "never flags 0, which blocks");
    }

    #[test]
    fn cpu_lists_as_the_kernel_prints_them() {
        assert_eq!(cpu_list("0-3,5,8-9\n"), Some(vec![0, 1, 2, 3, 5, 8, 9]));
        assert_eq!(cpu_list("0"), Some(vec![0]));
        assert_eq!(cpu_list("3-1"), None);
        assert_eq!(cpu_list("a"), None);
    }

    /// "Load, then disable": executing what was loaded stays allowed after
    /// `kexec_load_disabled` and under lockdown, as reboot(LINUX_REBOOT_CMD_KEXEC) is.
    #[test]
    fn exec_needs_only_root_and_kexec() {
        let mut hardened = ok();
        hardened.load_disabled = Some("1".into());
        hardened.limit_reboot = Some("0".into());
        hardened.lockdown = Some("none integrity [confidentiality]".into());
        assert_eq!(exec_refusal(&hardened), None);
        assert!(load_refusal(&hardened, false).unwrap().contains("kexec_load_disabled is 1"));
        let mut user = hardened;
        user.euid = 1000;
        assert!(exec_refusal(&user).unwrap().contains("needs root"));
    }

    /// A crash-image load is limited by kexec_load_limit_panic, a reboot-image load by
    /// kexec_load_limit_reboot, each independently.
    #[test]
    fn each_kind_of_load_has_its_own_limit() {
        let mut f = ok();
        f.limit_reboot = Some("0".into());
        assert!(refusal(&f, false).unwrap().contains("kexec_load_limit_reboot is 0"));
        assert_eq!(refusal(&f, true), None);
        let mut f = ok();
        f.limit_panic = Some("0".into());
        assert!(refusal(&f, true).unwrap().contains("kexec_load_limit_panic is 0"));
        assert_eq!(refusal(&f, false), None);
    }
}
