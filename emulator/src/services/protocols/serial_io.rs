//! EFI_SERIAL_IO_PROTOCOL on the PL011 earlycon, on the console handle, for payloads that drive
//! a serial terminal themselves (GRUB's `serial` terminal). The line settings stay as the
//! loader programmed them (the kernel's earlycon and console share the port): SetAttributes
//! records what it is given in the Mode, as payloads read it back, and changes no wire setting.

use super::*;
use crate::efi::platform::ConsoleIo;
use crate::services::*;
use core::ffi::c_void;

/// `EFI_SERIAL_IO_PROTOCOL_GUID`.
pub const PROTOCOL_GUID: Guid = Guid::from_fields(0xbb25cf6f, 0xf1d4, 0x11d2, 0x9a, 0x0c, &[0x00, 0x90, 0x27, 0x3f, 0xc1, 0xfd]);
const REVISION: u32 = 0x0001_0000;

/// Control bits (UEFI 2.10 section 12.8).
pub const DATA_TERMINAL_READY: u32 = 0x0001;
pub const REQUEST_TO_SEND: u32 = 0x0002;
pub const CLEAR_TO_SEND: u32 = 0x0010;
pub const DATA_SET_READY: u32 = 0x0020;
pub const CARRIER_DETECT: u32 = 0x0080;
pub const INPUT_BUFFER_EMPTY: u32 = 0x0100;
pub const OUTPUT_BUFFER_EMPTY: u32 = 0x0200;

/// The defaults a zero argument of SetAttributes stands for: 115200 8N1.
const DEFAULT_BAUD: u64 = 115_200;
const DEFAULT_DATA_BITS: u8 = 8;
const PARITY_NONE: u32 = 1;
const ONE_STOP_BIT: u32 = 1;

#[repr(C)]
pub struct Mode {
    pub control_mask: u32,
    pub timeout: u32,
    pub baud_rate: u64,
    pub receive_fifo_depth: u32,
    pub data_bits: u32,
    pub parity: u32,
    pub stop_bits: u32,
}

#[repr(C)]
pub struct Protocol {
    pub revision: u32,
    pub reset: unsafe extern "efiapi" fn(*mut Protocol) -> Status,
    pub set_attributes: unsafe extern "efiapi" fn(*mut Protocol, u64, u32, u32, u32, u8, u32) -> Status,
    pub set_control: unsafe extern "efiapi" fn(*mut Protocol, u32) -> Status,
    pub get_control: unsafe extern "efiapi" fn(*mut Protocol, *mut u32) -> Status,
    pub write: unsafe extern "efiapi" fn(*mut Protocol, *mut usize, *mut c_void) -> Status,
    pub read: unsafe extern "efiapi" fn(*mut Protocol, *mut usize, *mut c_void) -> Status,
    pub mode: *mut Mode,
}

fn mode<'a>(this: *mut Protocol) -> Result<&'a mut Mode, EfiError> {
    if this.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: `this` is our instance (payloads call through it); its Mode lives as long as boot
    // services.
    unsafe { (*this).mode.as_mut() }.ok_or(EfiError::InvalidParameter)
}

efiapi! {
    fn serial_reset(this: *mut Protocol) -> Status {
        run(|| {
            mode(this)?;
            super::console::drain_input();
            Ok(())
        })
    }

    fn set_attributes(this: *mut Protocol, baud: u64, fifo: u32, timeout: u32, parity: u32, data_bits: u8, stop_bits: u32) -> Status {
        run(|| {
            let m = mode(this)?;
            // Parity 0..=5 (default, none, even, odd, mark, space), stop bits 0..=3, 5..8 data bits.
            if parity > 5 || stop_bits > 3 || !(data_bits == 0 || (5..=8).contains(&data_bits)) {
                return Err(EfiError::InvalidParameter);
            }
            m.baud_rate = if baud == 0 { DEFAULT_BAUD } else { baud };
            m.receive_fifo_depth = fifo.max(1);
            m.timeout = if timeout == 0 { 1_000_000 } else { timeout };
            m.parity = if parity == 0 { PARITY_NONE } else { parity };
            m.data_bits = if data_bits == 0 { DEFAULT_DATA_BITS } else { data_bits } as u32;
            m.stop_bits = if stop_bits == 0 { ONE_STOP_BIT } else { stop_bits };
            Ok(())
        })
    }

    fn set_control(this: *mut Protocol, control: u32) -> Status {
        run(|| {
            mode(this)?;
            // Only the modem outputs are writable, and they change nothing on a 3-wire port.
            if control & !(DATA_TERMINAL_READY | REQUEST_TO_SEND) != 0 {
                return Err(EfiError::Unsupported);
            }
            Ok(())
        })
    }

    fn get_control(this: *mut Protocol, control: *mut u32) -> Status {
        run(|| {
            mode(this)?;
            let input = if Machine::console_has_input() { 0 } else { INPUT_BUFFER_EMPTY };
            // SAFETY: the payload's out-argument.
            unsafe { out(control, CLEAR_TO_SEND | DATA_SET_READY | CARRIER_DETECT | OUTPUT_BUFFER_EMPTY | input) }
        })
    }

    fn write(this: *mut Protocol, size: *mut usize, buffer: *mut c_void) -> Status {
        run(|| {
            mode(this)?;
            // SAFETY: the payload's in/out size and its buffer of that many bytes.
            let bytes = unsafe { bytes_arg(buffer as *const u8, read(size)?)? };
            // The console takes text: invalid UTF-8 goes out as U+FFFD.
            for chunk in bytes.utf8_chunks() {
                Machine::console_write(chunk.valid());
                for _ in chunk.invalid() {
                    Machine::console_write("\u{fffd}");
                }
            }
            Ok(())
        })
    }

    fn serial_read(this: *mut Protocol, size: *mut usize, buffer: *mut c_void) -> Status {
        run(|| {
            mode(this)?;
            // SAFETY: the payload's in/out size.
            let want = unsafe { read(size)? };
            if want > 0 && buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // Mode.Timeout is a per-character wait in microseconds (UEFI 2.10 section 12.8, 1 s by
            // default): each byte gets that long to arrive, so a payload that writes a request
            // and reads the answer does not race the other end.
            let timeout = mode(this)?.timeout as usize;
            let mut n = 0;
            while n < want {
                let deadline = crate::services::events::stall_deadline(Machine::ticks(), timeout, Machine::ticks_per_second());
                if !crate::services::events::wait_until(deadline, Machine::console_has_input) {
                    break;
                }
                let Some(b) = Machine::console_read() else { break };
                // SAFETY: the payload's buffer holds `want` bytes.
                unsafe { (buffer as *mut u8).add(n).write(b) };
                n += 1;
            }
            // SAFETY: as above.
            unsafe { out(size, n)? };
            // Fewer bytes than asked for within the timeout: EFI_TIMEOUT, with the count.
            if n < want { Err(EfiError::Timeout) } else { Ok(()) }
        })
    }
}

/// Installs SerialIo on the console handle.
pub fn install(c: &mut Core, console: usize) -> Result<(), EfiError> {
    let mode = Mode {
        control_mask: CLEAR_TO_SEND | DATA_SET_READY | CARRIER_DETECT | INPUT_BUFFER_EMPTY | OUTPUT_BUFFER_EMPTY | DATA_TERMINAL_READY | REQUEST_TO_SEND,
        timeout: 1_000_000,
        baud_rate: DEFAULT_BAUD,
        receive_fifo_depth: 1,
        data_bits: DEFAULT_DATA_BITS as u32,
        parity: PARITY_NONE,
        stop_bits: ONE_STOP_BIT,
    };
    let mode = publish(c, efi::BOOT_SERVICES_DATA, mode)?;
    let protocol = Protocol {
        revision: REVISION,
        reset: serial_reset::entry,
        set_attributes: set_attributes::entry,
        set_control: set_control::entry,
        get_control: get_control::entry,
        write: write::entry,
        read: serial_read::entry,
        mode,
    };
    let p = publish(c, efi::BOOT_SERVICES_DATA, protocol)?;
    c.handles.install(Some(console), &PROTOCOL_GUID, p as usize)?;
    Ok(())
}
