//! The efi-kexec binary against what a root tool can be handed: files that are not files, and a
//! stdout whose reader went away.

use std::os::fd::FromRawFd;
use std::process::{Command, Stdio};

/// A success stays one when its messages cannot be written: a reader that went away
/// (`efi-kexec load … | head -1`) leaves stdout a pipe that fails with EPIPE.
#[test]
fn a_closed_pipe_on_stdout_is_not_a_failure() {
    let dir = std::env::temp_dir().join(format!("efi-kexec-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("app.efi");
    std::fs::write(&image, efi_emulator::efi::pe::test_image()).unwrap();
    let mut fds = [0; 2];
    // SAFETY: a two-element array for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the read end, ours alone; closed now, so every write to the pipe fails.
    unsafe { libc::close(fds[0]) };
    // SAFETY: the write end, ours alone, handed to the child as its stdout.
    let stdout = unsafe { Stdio::from_raw_fd(fds[1]) };
    let out = Command::new(env!("CARGO_BIN_EXE_efi-kexec")).arg("info").arg(&image).stdout(stdout).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `/dev/zero` would exhaust memory, a FIFO would hang the read: both are refused at once, named.
#[test]
fn an_image_that_is_not_a_regular_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("efi-kexec-special-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("image.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path of our own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (path, kind) in [(std::path::PathBuf::from("/dev/zero"), "a character device"), (fifo, "a FIFO")] {
        let out = Command::new(env!("CARGO_BIN_EXE_efi-kexec")).arg("info").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.trim(), format!("efi-kexec: refusing the image: {} is {kind}, not a regular file", path.display()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An ESP image the emulator could not read is refused at load, while the running system can
/// still say so, not found out by the emulator after the point of no return.
#[test]
fn an_esp_image_that_is_no_fat_volume_is_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("efi-kexec-esp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("app.efi");
    std::fs::write(&image, efi_emulator::efi::pe::test_image()).unwrap();
    let esp = dir.join("esp.img");
    std::fs::write(&esp, vec![0x5a; 64 * 1024]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_efi-kexec")).args(["load", "--dry-run", "--esp"]).arg(&esp).arg(&image).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.starts_with(&format!("efi-kexec: refusing the ESP image {}: ", esp.display())), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
