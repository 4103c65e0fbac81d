//! The earlycon console: a global PL011, a leveled logger, and the one fatal-error path.

use crate::arch::aarch64::{cpu, psci};
use crate::cell::BootCell;
use crate::drivers::pl011::Pl011;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static UART_BASE: AtomicUsize = AtomicUsize::new(0);
static PRINT_ENABLED: AtomicBool = AtomicBool::new(true);

/// Points the console at a PL011. `print_enabled` false silences everything but fatal errors.
pub fn init(uart_base: u64, print_enabled: bool) {
    UART_BASE.store(uart_base as usize, Ordering::Relaxed);
    PRINT_ENABLED.store(print_enabled, Ordering::Relaxed);
    log::set_max_level(if print_enabled { log::LevelFilter::Info } else { log::LevelFilter::Off });
    // SAFETY: single CPU, called before any other thread of execution could log.
    let _ = unsafe { log::set_logger_racy(&LOGGER) };
}

/// The console's UART, once there is one.
pub fn uart() -> Option<Pl011> {
    let base = UART_BASE.load(Ordering::Relaxed);
    // SAFETY: the base came from the validated parameter block (or the DT); it is
    // identity-mapped as device memory once the MMU is on, and we run on one CPU.
    (base != 0).then(|| unsafe { Pl011::new(base) })
}

/// Raw console output, ignoring `print_enabled`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(uart) = uart() {
            uart.write_str(s);
        }
        Ok(())
    }
}

/// Prints unless printing is disabled.
pub fn print(args: fmt::Arguments) {
    if PRINT_ENABLED.load(Ordering::Relaxed) {
        let _ = Console.write_fmt(args);
    }
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let us = cpu::micros_since_entry();
        let tag = match r.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        let _ = writeln!(Console, "[{:5}.{:06}] {tag}{}", us / 1_000_000, us % 1_000_000, r.args());
    }
    fn flush(&self) {}
}

static FATAL_HOOK: BootCell<fn()> = BootCell::empty();

/// Something to run before a fatal power-off (the integrity check).
pub fn set_fatal_hook(hook: fn()) {
    FATAL_HOOK.set(hook);
}

/// Prints even when printing is disabled.
pub fn print_always(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

/// The one way the emulator gives up: the reason on the console (even when printing is off),
/// then PSCI SYSTEM_OFF so that QEMU, or the machine, stops.
pub fn fatal(args: fmt::Arguments) -> ! {
    let _ = writeln!(Console, "efi-emulator: fatal: {args}");
    // Taken out first: a fatal error inside the hook does not run it again.
    if let Some(hook) = FATAL_HOOK.clear() {
        hook();
    }
    let _ = writeln!(Console, "efi-emulator: powering off");
    flush();
    psci::system_off()
}

pub fn flush() {
    if let Some(uart) = uart() {
        uart.flush();
    }
}

#[macro_export]
macro_rules! fatal {
    ($($arg:tt)*) => { $crate::console::fatal(format_args!($($arg)*)) };
}
