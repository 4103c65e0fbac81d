//! Starting QEMU and reading its serial console: line by line with timestamps from the start,
//! until the guest powers off, a stop condition matches, or the timeout expires.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const QEMU: &str = "qemu-system-aarch64";

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// Console lines, each with the time since QEMU was started.
    pub lines: Vec<(Duration, String)>,
    pub exit: Option<ExitStatus>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// When the console's first byte arrived.
    pub first_byte: Option<Duration>,
    pub command: String,
}

impl Transcript {
    /// The first line containing `needle`, with its time.
    pub fn find(&self, needle: &str) -> Option<&(Duration, String)> {
        self.lines.iter().find(|(_, l)| l.contains(needle))
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.find(needle).is_some()
    }
    pub fn text(&self) -> String {
        self.lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }
    /// A clean end: QEMU exited by itself with status 0 (PSCI SYSTEM_OFF) before the timeout.
    pub fn powered_off(&self) -> bool {
        !self.timed_out && self.exit.is_some_and(|s| s.success())
    }
}

/// The QEMU version, e.g. (10, 0).
pub fn version() -> Result<(u32, u32)> {
    let out = crate::process::output_checked(Command::new(QEMU).arg("--version")).context("qemu-system-aarch64 is not installed: run `cargo xtask setup`")?;
    let v = out.split_whitespace().nth(3).context("unexpected qemu --version output")?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// Keys to type on the serial console: `bytes`, `delay` after the first console line that
/// contains `after`. QEMU takes them from its stdin as the UART has room for them.
#[derive(Clone, Debug)]
pub struct Input {
    pub after: String,
    pub delay: Duration,
    pub bytes: Vec<u8>,
}

/// Runs QEMU with `args`, streaming its console to stderr when `echo` is set.
pub fn run(args: &[String], timeout: Duration, echo: bool) -> Result<Transcript> {
    run_inner(args, timeout, echo, None, None, None)
}

/// [`run`], typing `input` on the console.
pub fn run_with_input(args: &[String], timeout: Duration, echo: bool, input: Option<&Input>) -> Result<Transcript> {
    run_inner(args, timeout, echo, input, None, None)
}

/// [`run`], stopping QEMU once a console line contains `stop` (the transcript then has no
/// exit status).
pub fn run_until(args: &[String], timeout: Duration, stop: &str) -> Result<Transcript> {
    run_inner(args, timeout, false, None, Some(stop), None)
}

/// Something a test does to the machine's surroundings when a console line first contains
/// `after` (stop a device's backend, say), while QEMU runs on.
pub struct Hook<'a> {
    pub after: &'a str,
    pub action: &'a mut dyn FnMut(),
}

/// [`run`] with a [`Hook`].
pub fn run_hooked(args: &[String], timeout: Duration, echo: bool, hook: Hook) -> Result<Transcript> {
    run_inner(args, timeout, echo, None, None, Some(hook))
}

fn run_inner(args: &[String], timeout: Duration, echo: bool, input: Option<&Input>, stop: Option<&str>, mut hook: Option<Hook>) -> Result<Transcript> {
    let command = format!("{QEMU} {}", args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {QEMU} (install it with `cargo xtask setup`)"))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx_err = tx.clone();
    let first_byte = std::sync::Arc::new(std::sync::OnceLock::new());
    let first = first_byte.clone();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            // The first byte's time as it arrives, not when its line ends.
            if first.get().is_none() && r.fill_buf().is_ok_and(|b| !b.is_empty()) {
                let _ = first.set(start.elapsed());
            }
            if r.read_until(b'\n', &mut buf).unwrap_or(0) == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string();
            let _ = tx.send((start.elapsed(), line));
            buf.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx_err.send((start.elapsed(), format!("qemu: {line}")));
        }
    });
    let mut lines = Vec::new();
    let mut timed_out = false;
    let mut stopped = false;
    let deadline = start + timeout;
    let mut stdin = child.stdin.take();
    // Written to, then kept open until QEMU ends: closing it would be EOF on the console.
    let mut typed = None;
    let mut type_at: Option<Instant> = None;
    loop {
        if let (Some(at), Some(i)) = (type_at, input) {
            if Instant::now() >= at {
                if let Some(mut s) = stdin.take() {
                    let _ = s.write_all(&i.bytes).and_then(|_| s.flush());
                    typed = Some(s);
                }
                type_at = None;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok((t, line)) => {
                if echo {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                if let Some(i) = input.filter(|i| stdin.is_some() && type_at.is_none() && line.contains(&i.after)) {
                    type_at = Some(Instant::now() + i.delay);
                }
                if hook.as_ref().is_some_and(|h| line.contains(h.after)) {
                    (hook.take().unwrap().action)();
                }
                let stop_here = stop.is_some_and(|s| line.contains(s));
                lines.push((t, line));
                if stop_here {
                    let _ = child.kill();
                    stopped = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    timed_out = true;
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let exit = child.wait().ok();
    drop(typed);
    let _ = reader.join();
    let _ = err_reader.join();
    // Lines that arrived between the kill and the end of the pipe.
    lines.extend(rx.try_iter());
    Ok(Transcript { lines, exit: if timed_out || stopped { None } else { exit }, timed_out, elapsed: start.elapsed(), first_byte: first_byte.get().copied(), command })
}
