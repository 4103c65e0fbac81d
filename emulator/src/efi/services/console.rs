//! ConOut/StdErr (SimpleTextOutput) and ConIn (SimpleTextInput) on the PL011 earlycon.

use super::*;
use crate::efi::platform::Platform;
use core::ffi::c_void;
use core::fmt::Write;
use efi::protocols::{simple_text_input as text_in, simple_text_output as text_out};

/// The one text mode: 80x25, as a serial terminal is usually assumed to be.
const COLUMNS: usize = 80;
const ROWS: usize = 25;

fn mode(this: *mut text_out::Protocol) -> Result<&'static mut text_out::Mode, EfiError> {
    if this.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: `this` is one of our protocol instances (payloads call through its table), and
    // its Mode lives as long as boot services.
    unsafe { (*this).mode.as_mut() }.ok_or(EfiError::InvalidParameter)
}

efiapi! {
    fn out_reset(this: *mut text_out::Protocol, extended: efi::Boolean) -> Status {
        let _ = extended;
        status(mode(this).map(|m| {
            m.cursor_column = 0;
            m.cursor_row = 0;
            m.attribute = 0x07;
        }))
    }

    fn output_string(this: *mut text_out::Protocol, string: *mut u16) -> Status {
        run(|| {
            let m = mode(this)?;
            // SAFETY: the payload's string argument.
            let s = unsafe { ucs2_arg(string)? };
            let mut buf = [0u8; 256];
            let mut n = 0;
            for c in char::decode_utf16(s.iter().copied()).map(|c| c.unwrap_or('\u{fffd}')) {
                match c {
                    // Terminals get "\r\n" from the console's '\n' handling.
                    '\r' => m.cursor_column = 0,
                    '\n' => m.cursor_row = (m.cursor_row + 1).min(ROWS as i32 - 1),
                    _ => m.cursor_column = (m.cursor_column + 1) % COLUMNS as i32,
                }
                if c == '\r' {
                    continue;
                }
                if n + 4 > buf.len() {
                    let _ = ConsoleOut.write_str(core::str::from_utf8(&buf[..n]).unwrap_or(""));
                    n = 0;
                }
                n += c.encode_utf8(&mut buf[n..]).len();
            }
            let _ = ConsoleOut.write_str(core::str::from_utf8(&buf[..n]).unwrap_or(""));
            Ok(())
        })
    }

    fn test_string(this: *mut text_out::Protocol, string: *mut u16) -> Status {
        // Anything printable goes to a UTF-8 terminal.
        // SAFETY: the payload's string argument.
        status(mode(this).and_then(|_| unsafe { ucs2_arg(string) }).map(|_| ()))
    }

    fn query_mode(this: *mut text_out::Protocol, number: usize, columns: *mut usize, rows: *mut usize) -> Status {
        run(|| {
            mode(this)?;
            if number != 0 {
                return Err(EfiError::Unsupported);
            }
            // SAFETY: the payload's out-arguments.
            unsafe {
                out(columns, COLUMNS)?;
                out(rows, ROWS)
            }
        })
    }

    fn set_mode(this: *mut text_out::Protocol, number: usize) -> Status {
        status(mode(this).and_then(|m| if number == 0 { m.cursor_column = 0; m.cursor_row = 0; Ok(()) } else { Err(EfiError::Unsupported) }))
    }

    fn set_attribute(this: *mut text_out::Protocol, attribute: usize) -> Status {
        // Accepted and remembered; a serial console shows no colours.
        status(mode(this).and_then(|m| if attribute > 0x7f { Err(EfiError::Unsupported) } else { m.attribute = attribute as i32; Ok(()) }))
    }

    fn clear_screen(this: *mut text_out::Protocol) -> Status {
        status(mode(this).map(|m| {
            let _ = ConsoleOut.write_str("\x1b[2J\x1b[H");
            m.cursor_column = 0;
            m.cursor_row = 0;
        }))
    }

    fn set_cursor_position(this: *mut text_out::Protocol, column: usize, row: usize) -> Status {
        status(mode(this).and_then(|m| {
            if column >= COLUMNS || row >= ROWS {
                return Err(EfiError::Unsupported);
            }
            let _ = write!(ConsoleOut, "\x1b[{};{}H", row + 1, column + 1);
            m.cursor_column = column as i32;
            m.cursor_row = row as i32;
            Ok(())
        }))
    }

    fn enable_cursor(this: *mut text_out::Protocol, visible: efi::Boolean) -> Status {
        status(mode(this).map(|m| m.cursor_visible = visible))
    }

    fn in_reset(this: *mut text_in::Protocol, extended: efi::Boolean) -> Status {
        let _ = extended;
        if this.is_null() {
            return Status::INVALID_PARAMETER;
        }
        while Machine::console_read().is_some() {}
        Status::SUCCESS
    }

    fn read_key_stroke(this: *mut text_in::Protocol, key: *mut text_in::InputKey) -> Status {
        run(|| {
            if this.is_null() || key.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let b = Machine::console_read().ok_or(EfiError::NotReady)?;
            // Escape sequences for the arrow keys are not decoded: keys arrive as characters.
            let (scan_code, unicode_char) = match b {
                0x1b => (0x17, 0), // SCAN_ESC
                0x7f => (0, 0x08), // DEL as backspace
                b'\n' => (0, b'\r' as u16),
                _ => (0, b as u16),
            };
            // SAFETY: the payload's out-argument.
            unsafe { out(key, text_in::InputKey { scan_code, unicode_char }) }
        })
    }

    fn wait_for_key_notify(event: efi::Event, context: *mut c_void) {
        let _ = context;
        if Machine::console_has_input() {
            let _ = with_core(|c| c.events.signal(event as usize));
        }
    }
}

/// Creates ConOut (also StdErr) and ConIn on one console handle; returns (handle, out, in).
pub fn install(c: &mut Core) -> Result<(usize, *mut text_out::Protocol, *mut text_in::Protocol), EfiError> {
    let mode = text_out::Mode { max_mode: 1, mode: 0, attribute: 0x07, cursor_column: 0, cursor_row: 0, cursor_visible: efi::Boolean::FALSE };
    let m = publish(c, efi::BOOT_SERVICES_DATA, mode)?;
    let text_out = text_out::Protocol {
        reset: out_reset::entry,
        output_string: output_string::entry,
        test_string: test_string::entry,
        query_mode: query_mode::entry,
        set_mode: set_mode::entry,
        set_attribute: set_attribute::entry,
        clear_screen: clear_screen::entry,
        set_cursor_position: set_cursor_position::entry,
        enable_cursor: enable_cursor::entry,
        mode: m,
    };
    let o = publish(c, efi::BOOT_SERVICES_DATA, text_out)?;
    let key_event = c.events.create(efi::EVT_NOTIFY_WAIT, efi::TPL_NOTIFY, Some((wait_for_key_notify::entry, 0)), None)?;
    let i = publish(c, efi::BOOT_SERVICES_DATA, text_in::Protocol { reset: in_reset::entry, read_key_stroke: read_key_stroke::entry, wait_for_key: key_event as efi::Event })?;
    let h = c.handles.install(None, &text_out::PROTOCOL_GUID, o as usize)?;
    c.handles.install(Some(h), &text_in::PROTOCOL_GUID, i as usize)?;
    Ok((h, o, i))
}
