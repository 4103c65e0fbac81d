//! ARM PL031 real-time clock: a 32-bit count of seconds (QEMU's `virt` starts it at the host's
//! UTC time). GetTime and SetTime run on it when no firmware is behind the emulator.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_structs! {
    pub Registers {
        /// Data: the current count.
        (0x00 => dr: ReadOnly<u32>),
        (0x04 => _match),
        /// Load: the count to start from.
        (0x08 => lr: ReadWrite<u32>),
        /// Control: bit 0 starts the counter.
        (0x0c => cr: ReadWrite<u32>),
        (0x10 => @END),
    }
}

pub struct Pl031 {
    regs: *const Registers,
}

impl Pl031 {
    /// # Safety
    /// `base` must be the MMIO base of a PL031, mapped as device memory, and nothing else may
    /// drive it concurrently.
    pub const unsafe fn new(base: usize) -> Self {
        Pl031 { regs: base as *const Registers }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: guaranteed by the contract of `new`.
        unsafe { &*self.regs }
    }

    /// Seconds since the epoch the count was loaded with (UTC, on QEMU and Linux).
    pub fn seconds(&self) -> u32 {
        self.regs().dr.get()
    }

    /// Loads the count, and makes sure the counter runs.
    pub fn set_seconds(&self, seconds: u32) {
        self.regs().lr.set(seconds);
        self.regs().cr.set(1);
    }
}
