//! The seam between the UEFI services and the machine.
//!
//! Services reach the hardware only through these narrow traits, [`Platform`] being all of
//! them: [`Clock`] (counter, RTC, tick), [`Entropy`], [`Protection`] (page permissions, caches),
//! [`ConsoleIo`], [`Images`] (the switch into an image and back), [`Power`], [`BulkCopy`],
//! [`HeapRoom`].
//! `arch::aarch64::Aarch64` implements them for the blob; the host tests of `services` implement
//! them with a simulated machine, so every shim builds and runs there. All methods are
//! associated functions: the machine is one, and the blob pays nothing for the indirection.

use core::fmt;
use r_efi::efi;

/// What a page allows, as the memory attribute protocol and W^X see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub writable: bool,
    pub executable: bool,
}

impl Access {
    pub const RAM: Self = Access { writable: true, executable: true };
    pub const CODE: Self = Access { writable: false, executable: true };
    pub const RODATA: Self = Access { writable: false, executable: false };
    pub const DATA: Self = Access { writable: true, executable: false };

    /// The UEFI attribute bits (EFI_MEMORY_RO, EFI_MEMORY_XP) this access lacks.
    pub fn efi_bits(self) -> u64 {
        (if self.writable { 0 } else { efi::MEMORY_RO }) | (if self.executable { 0 } else { efi::MEMORY_XP })
    }
}

/// How ResetSystem ends the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    Off,
    Reset,
}

/// The page tables could not take a change (out of table frames, or an unmapped address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectError;

/// The counter, the real-time clock and the boot-services tick.
pub trait Clock {
    /// The free-running counter, and its frequency.
    fn ticks() -> u64;
    fn ticks_per_second() -> u64;
    /// Microseconds since the emulator was entered (for the milestone lines).
    fn micros_since_entry() -> u64;

    /// The real-time clock: seconds since 1970, when the machine has one the emulator drives.
    fn rtc_seconds() -> Option<u64>;
    /// Sets the real-time clock (`Err` without one, or for a value it cannot hold).
    fn set_rtc_seconds(seconds: u64) -> Result<(), ProtectError>;

    /// Lets the boot-services tick interrupt the code that runs next (a payload below
    /// TPL_HIGH_LEVEL), or keeps it out. Nothing happens without a tick.
    fn set_interrupts(enabled: bool);
    /// Puts the IRQ mask back as `saved` (the caller's PSTATE.DAIF at a service entry) had it.
    fn restore_interrupt_mask(saved: u64);
    /// Stops the tick and masks interrupts for good (ExitBootServices).
    fn mask_interrupts();
}

/// The hardware random number generator.
pub trait Entropy {
    /// One 64-bit random number: reseeded for each number (`reseed`), or from the DRBG.
    /// `None` when the hardware has none to give after retrying.
    fn random(reseed: bool) -> Option<u64>;
    /// Whether the hardware has a random number generator at all.
    fn has_random() -> bool;
}

/// Page permissions and the caches, as W^X and the memory attribute protocol need them.
pub trait Protection {
    /// What the page holding `addr` allows; `None` when it is not mapped.
    fn access_of(addr: u64) -> Option<Access>;
    /// Changes what `[base, base + size)` allows, keeping its memory type.
    fn set_access(base: u64, size: u64, access: Access) -> Result<(), ProtectError>;
    /// Makes code just written to `[start, start + size)` visible to instruction fetch
    /// (`size` 0: only what the loader cleaned already needs the instruction side dropped).
    fn code_written(start: u64, size: u64);
}

/// The console: ConOut, ConIn, the serial port.
pub trait ConsoleIo {
    /// Raw console output, whatever the log level.
    fn console_write(s: &str);
    /// One byte of console input, if one has arrived.
    fn console_read() -> Option<u8>;
    /// Whether console input is waiting, without taking it.
    fn console_has_input() -> bool;
}

/// Running images: the switch into one and back, and the fault reporter's list of them.
pub trait Images {
    /// What StartImage saves so that Exit can come back to it.
    type ExitContext: Default;

    /// Calls an image's entry point on `stack_top` with the UEFI arguments, saving in `ctx` what
    /// [`Images::exit_image`] needs to come back here; returns the image's status.
    ///
    /// # Safety
    /// `entry` must be the entry point of a loaded image, `stack_top` the 16-byte aligned end of
    /// a stack that stays allocated until the call returns, and `ctx` must stay valid as long.
    unsafe fn start_image(entry: u64, handle: usize, systab: *mut efi::SystemTable, stack_top: u64, ctx: *mut Self::ExitContext) -> usize;

    /// Returns `status` from the [`Images::start_image`] call that saved `ctx`.
    ///
    /// # Safety
    /// `ctx` must be the context of a `start_image` call that is still running.
    unsafe fn exit_image(ctx: *mut Self::ExitContext, status: usize) -> !;

    /// Tells the fault reporter where an image lies, so faults name offsets into it.
    fn image_loaded(base: u64, size: u64, handle: usize);
}

/// The end of the machine.
pub trait Power {
    /// Ends the machine (ResetSystem).
    fn power(action: PowerAction) -> !;
    /// The emulator's own bug (a re-entrant core access): report and stop.
    fn fatal(args: fmt::Arguments) -> !;
}

/// CopyMem and SetMem over the payload's memory.
pub trait BulkCopy {
    /// Copies `len` bytes from `src` to `dst`, which may overlap.
    ///
    /// # Safety
    /// Both ranges must be valid for `len` bytes.
    unsafe fn copy(dst: *mut u8, src: *const u8, len: usize);
    /// Sets `len` bytes from `dst` to `value`.
    ///
    /// # Safety
    /// The range must be valid for writes of `len` bytes.
    unsafe fn fill(dst: *mut u8, value: u8, len: usize);
}

/// The emulator's own heap, which boot services grow from the memory map before it runs out.
pub trait HeapRoom {
    /// Bytes free in it now.
    fn heap_free() -> u64;
    /// Gives it `[start, start + size)`; false when it can take no more regions.
    ///
    /// # Safety
    /// The range must be writable RAM nothing else uses while boot services run.
    unsafe fn heap_grow(start: u64, size: u64) -> bool;
}

/// The whole machine the services run on; each service names the narrow traits it uses.
pub trait Platform: Clock + Entropy + Protection + ConsoleIo + Images + Power + BulkCopy + HeapRoom {}

impl<T: Clock + Entropy + Protection + ConsoleIo + Images + Power + BulkCopy + HeapRoom> Platform for T {}
