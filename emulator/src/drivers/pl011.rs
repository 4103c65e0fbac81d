//! ARM PL011 UART, polled, transmit and receive only: the loader's earlycon keeps its baud rate.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
];

register_structs! {
    pub Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => @END),
    }
}

/// Polls before giving up on a UART that never drains: a bogus base must not hang us forever.
const SPIN_LIMIT: u32 = 1_000_000;

pub struct Pl011 {
    regs: *const Registers,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the MMIO base of a PL011, mapped as device memory (or the MMU off), and
    /// nothing else may drive it concurrently.
    pub const unsafe fn new(base: usize) -> Self {
        Pl011 { regs: base as *const Registers }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: guaranteed by the contract of `new`.
        unsafe { &*self.regs }
    }

    pub fn write_byte(&self, b: u8) {
        let mut spins = 0;
        while self.regs().fr.is_set(FR::TXFF) && spins < SPIN_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
        self.regs().dr.set(b as u32);
    }

    /// Writes text, turning `\n` into `\r\n` for terminals.
    pub fn write_str(&self, s: &str) {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }

    /// Waits until the last byte has left the shift register.
    pub fn flush(&self) {
        let mut spins = 0;
        while self.regs().fr.is_set(FR::BUSY) && spins < SPIN_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
    }

    /// True when a received byte is waiting.
    pub fn has_input(&self) -> bool {
        !self.regs().fr.is_set(FR::RXFE)
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.get() as u8)
        }
    }
}
