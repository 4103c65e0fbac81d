//! A TPM 2.0 behind the TCG PC Client TIS interface over MMIO (TCG PC Client Platform TPM
//! Profile, FIFO interface): the device tree's `tcg,tpm-tis-mmio` node, QEMU's
//! `tpm-tis-device` on `virt`. One command at a time in locality 0, each step bounded by the
//! interface's timeouts, so a TPM that stops answering is reported and never waited on for ever.
//!
//! The register accesses go through [`Bus`], so the protocol is tested on the host against a
//! simulated TIS; [`Mmio`] is the one the blob uses.

/// Register offsets within a locality's 4 KiB page.
mod reg {
    pub const ACCESS: usize = 0x00;
    pub const STS: usize = 0x18;
    pub const DATA_FIFO: usize = 0x24;
    pub const INTERFACE_ID: usize = 0x30;
    pub const DID_VID: usize = 0xf00;
}

/// TPM_ACCESS bits.
mod access {
    pub const VALID: u8 = 0x80;
    pub const ACTIVE_LOCALITY: u8 = 0x20;
    pub const REQUEST_USE: u8 = 0x02;
}

/// TPM_STS bits (the low byte; the burst count is bytes 1 and 2).
mod sts {
    pub const VALID: u32 = 0x80;
    pub const COMMAND_READY: u32 = 0x40;
    pub const GO: u32 = 0x20;
    pub const DATA_AVAILABLE: u32 = 0x10;
    pub const EXPECT: u32 = 0x08;
    /// Byte 3, bit 0 of TPM 2.0's STS: the command is to be cancelled.
    pub const CANCEL: u32 = 1 << 24;
}

/// The interface's timeouts (TIS: TIMEOUT_A for locality and register changes, TIMEOUT_B for
/// commandReady, TIMEOUT_C for the FIFO), and how long a command may run: the spec's longest
/// command duration (TPM2_CreatePrimary with an RSA key) is 2 minutes, real TPMs take seconds.
pub mod timeout {
    pub const A_US: u64 = 750_000;
    pub const B_US: u64 = 2_000_000;
    pub const C_US: u64 = 200_000;
    pub const COMMAND_US: u64 = 120_000_000;
}

/// A TPM command or response header: tag, size, code (big-endian).
pub const HEADER: usize = 10;
/// Longest command or response handled (the PC Client profile's TPM2_MAX_COMMAND_SIZE).
pub const MAX_BUFFER: usize = 4096;

/// How the driver reaches the registers of locality 0.
pub trait Bus {
    fn read8(&self, offset: usize) -> u8;
    fn read32(&self, offset: usize) -> u32;
    fn write8(&self, offset: usize, value: u8);
    fn write32(&self, offset: usize, value: u32);
}

/// The registers of a TIS at a physical address, mapped as device memory.
pub struct Mmio(pub usize);

impl Bus for Mmio {
    fn read8(&self, offset: usize) -> u8 {
        // SAFETY: `Mmio` is made for a TIS's MMIO page (the device tree names it), which the
        // memory plan maps as device memory; one access, as the interface asks for.
        unsafe { core::ptr::read_volatile((self.0 + offset) as *const u8) }
    }
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read8`; the registers read this way are 4-byte aligned.
        unsafe { core::ptr::read_volatile((self.0 + offset) as *const u32) }
    }
    fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as in `read8`.
        unsafe { core::ptr::write_volatile((self.0 + offset) as *mut u8, value) }
    }
    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile((self.0 + offset) as *mut u32, value) }
    }
}

/// Why a command did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TisError {
    /// Nothing answers at the address (reads all ones), or the TPM is not a TPM 2.0.
    NoTpm { did_vid: u32, interface: u32 },
    /// A step did not finish in time: which, and how long it was given.
    Timeout { waiting_for: &'static str, microseconds: u64 },
    /// The command or the response is longer than the buffer, or shorter than a header.
    BadLength { what: &'static str, length: usize },
    /// The TPM asked for more bytes than the command has, or for none before the last.
    Protocol { what: &'static str },
}

impl core::fmt::Display for TisError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TisError::NoTpm { did_vid, interface } => write!(f, "no TPM 2.0 at the address (DID_VID {did_vid:#010x}, interface type {interface:#x})"),
            TisError::Timeout { waiting_for, microseconds } => write!(f, "the TPM did not signal {waiting_for} within {} ms", microseconds / 1000),
            TisError::BadLength { what, length } => write!(f, "{what} of {length} bytes (a header is {HEADER}, the most {MAX_BUFFER})"),
            TisError::Protocol { what } => write!(f, "the TPM broke the FIFO protocol: {what}"),
        }
    }
}

/// A TPM 2.0 behind a TIS: `bus` reaches the registers, `now_us` is a monotonic clock in
/// microseconds for the timeouts.
pub struct Tis<B: Bus, C: Fn() -> u64> {
    bus: B,
    now_us: C,
}

impl<B: Bus, C: Fn() -> u64> Tis<B, C> {
    /// Checks that a TPM 2.0 answers: DID_VID not all ones, and TPM_INTERFACE_ID's type the PTP's
    /// FIFO interface of a TPM 2.0 (0; a TPM 1.2's TIS has no such register and reads 0xF). STS,
    /// which also names the family, reads all ones until a locality is taken.
    pub fn probe(bus: B, now_us: C) -> Result<Self, TisError> {
        let did_vid = bus.read32(reg::DID_VID);
        let interface = bus.read32(reg::INTERFACE_ID) & 0xf;
        if did_vid == u32::MAX || did_vid == 0 || interface != 0 {
            return Err(TisError::NoTpm { did_vid, interface });
        }
        Ok(Tis { bus, now_us })
    }

    /// The TPM's vendor and device IDs.
    pub fn did_vid(&self) -> u32 {
        self.bus.read32(reg::DID_VID)
    }

    /// Waits until `done()`, at most `limit` microseconds.
    fn wait(&self, waiting_for: &'static str, limit: u64, mut done: impl FnMut(&B) -> bool) -> Result<(), TisError> {
        let start = (self.now_us)();
        loop {
            if done(&self.bus) {
                return Ok(());
            }
            if (self.now_us)().saturating_sub(start) >= limit {
                return Err(TisError::Timeout { waiting_for, microseconds: limit });
            }
            core::hint::spin_loop();
        }
    }

    fn sts(&self) -> u32 {
        self.bus.read32(reg::STS)
    }

    fn burst_count(&self) -> usize {
        ((self.sts() >> 8) & 0xffff) as usize
    }

    /// Waits for a non-zero burst count: how many bytes the FIFO takes or gives now.
    fn burst(&self) -> Result<usize, TisError> {
        let mut count = 0;
        self.wait("a burst count", timeout::C_US, |_| {
            count = self.burst_count();
            count > 0
        })?;
        Ok(count)
    }

    /// Sends `command` and reads the response into `response`: its length. Locality 0 is taken
    /// for the command and given back after it, whatever the outcome; a command that runs too
    /// long is cancelled.
    pub fn submit(&mut self, command: &[u8], response: &mut [u8]) -> Result<usize, TisError> {
        if command.len() < HEADER || command.len() > MAX_BUFFER {
            return Err(TisError::BadLength { what: "a command", length: command.len() });
        }
        self.bus.write8(reg::ACCESS, access::REQUEST_USE);
        self.wait("locality 0", timeout::A_US, |b| b.read8(reg::ACCESS) & (access::VALID | access::ACTIVE_LOCALITY) == access::VALID | access::ACTIVE_LOCALITY)?;
        let result = self.exchange(command, response);
        // Ready for the next command, and the locality given back.
        self.bus.write32(reg::STS, sts::COMMAND_READY);
        self.bus.write8(reg::ACCESS, access::ACTIVE_LOCALITY);
        result
    }

    fn exchange(&mut self, command: &[u8], response: &mut [u8]) -> Result<usize, TisError> {
        self.bus.write32(reg::STS, sts::COMMAND_READY);
        self.wait("commandReady", timeout::B_US, |b| b.read32(reg::STS) & sts::COMMAND_READY != 0)?;
        // All but the last byte, as bursts allow; the TPM expects more until then.
        let (body, last) = command.split_at(command.len() - 1);
        let mut sent = 0;
        while sent < body.len() {
            let n = self.burst()?.min(body.len() - sent);
            for &byte in &body[sent..sent + n] {
                self.bus.write8(reg::DATA_FIFO, byte);
            }
            sent += n;
            self.wait("stsValid", timeout::C_US, |b| b.read32(reg::STS) & sts::VALID != 0)?;
            if self.sts() & sts::EXPECT == 0 {
                return Err(TisError::Protocol { what: "it expected no more bytes before the command's last" });
            }
        }
        self.burst()?;
        self.bus.write8(reg::DATA_FIFO, last[0]);
        self.wait("stsValid", timeout::C_US, |b| b.read32(reg::STS) & sts::VALID != 0)?;
        if self.sts() & sts::EXPECT != 0 {
            return Err(TisError::Protocol { what: "it expected more bytes than the command's size" });
        }
        self.bus.write32(reg::STS, sts::GO);
        let ready = sts::VALID | sts::DATA_AVAILABLE;
        if let Err(e) = self.wait("a response", timeout::COMMAND_US, |b| b.read32(reg::STS) & ready == ready) {
            self.bus.write32(reg::STS, sts::CANCEL);
            return Err(e);
        }
        // The header first, for the response's size; then the rest.
        let mut got = 0;
        let mut size = HEADER;
        while got < size {
            let n = self.burst()?.min(size - got);
            let Some(into) = response.get_mut(got..got + n) else { return Err(TisError::BadLength { what: "a response", length: size }) };
            for byte in into {
                *byte = self.bus.read8(reg::DATA_FIFO);
            }
            got += n;
            if got == HEADER && size == HEADER {
                size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]) as usize;
                if !(HEADER..=MAX_BUFFER).contains(&size) || size > response.len() {
                    return Err(TisError::BadLength { what: "a response", length: size });
                }
            }
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests;
