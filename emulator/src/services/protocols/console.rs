//! ConOut/StdErr (SimpleTextOutput) and ConIn (SimpleTextInput and SimpleTextInputEx) on the
//! PL011 earlycon.

use crate::efi::platform::{Clock, ConsoleIo};
use crate::services::*;
use core::ffi::c_void;
use core::fmt::Write;
use efi::protocols::{simple_text_input as text_in, simple_text_input_ex as text_in_ex, simple_text_output as text_out};

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
            let mut chars = char::decode_utf16(s.iter().copied()).map(|c| c.unwrap_or('\u{fffd}')).peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => m.cursor_column = 0,
                    '\n' => m.cursor_row = (m.cursor_row + 1).min(ROWS as i32 - 1),
                    _ => m.cursor_column = (m.cursor_column + 1) % COLUMNS as i32,
                }
                // Terminals get "\r\n" from the console's '\n' handling; a lone '\r' (a
                // progress line redrawn in place) goes out as it is.
                if c == '\r' && chars.peek() == Some(&'\n') {
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
        status(mode(this).and_then(|m| {
            if attribute > 0x7f {
                return Err(EfiError::Unsupported);
            }
            m.attribute = attribute as i32;
            let _ = ConsoleOut.write_str(&sgr(attribute as u8));
            Ok(())
        }))
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
        reset_input(this.is_null())
    }

    fn read_key_stroke(this: *mut text_in::Protocol, key: *mut text_in::InputKey) -> Status {
        run(|| {
            if this.is_null() || key.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's out-argument.
            unsafe { out(key, read_key()?) }
        })
    }

    fn ex_reset(this: *mut text_in_ex::Protocol, extended: efi::Boolean) -> Status {
        let _ = extended;
        reset_input(this.is_null())
    }

    fn read_key_stroke_ex(this: *mut text_in_ex::Protocol, data: *mut text_in_ex::KeyData) -> Status {
        run(|| {
            if this.is_null() || data.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // A serial terminal reports no shift or toggle state: both left 0 ("not valid").
            let key = read_key()?;
            // SAFETY: the payload's out-argument.
            unsafe { out(data, text_in_ex::KeyData { key, key_state: text_in_ex::KeyState::default() }) }
        })
    }

    fn set_state(this: *mut text_in_ex::Protocol, toggle: *mut text_in_ex::KeyToggleState) -> Status {
        run(|| {
            // SAFETY: the payload's in-argument.
            let toggle = unsafe { read(toggle)? };
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // The terminal's lock keys are its own: nothing to set, but a valid request is fine.
            if toggle & text_in_ex::TOGGLE_STATE_VALID == 0 {
                return Err(EfiError::Unsupported);
            }
            Ok(())
        })
    }

    fn register_key_notify(this: *mut text_in_ex::Protocol, data: *mut text_in_ex::KeyData, function: text_in_ex::KeyNotifyFunction, handle: *mut *mut c_void) -> Status {
        guarded(|| {
            // SAFETY: the payload's in-argument.
            let key = unsafe { read(data)? }.key;
            if this.is_null() || handle.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let h = with_core(|c| {
                let h = KEY_NOTIFY_FIRST + c.console.serial;
                c.console.serial += 0x10;
                c.console.key_notifies.push(KeyNotify { handle: h, scan_code: key.scan_code, unicode_char: key.unicode_char, function });
                h
            });
            // SAFETY: the payload's out-argument.
            unsafe { out(handle, h as *mut c_void) }
        })
    }

    fn unregister_key_notify(this: *mut text_in_ex::Protocol, handle: *mut c_void) -> Status {
        guarded(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            with_core(|c| {
                let i = c.console.key_notifies.iter().position(|n| n.handle == handle as usize).ok_or(EfiError::InvalidParameter)?;
                c.console.key_notifies.remove(i);
                Ok(())
            })
        })
    }

    fn wait_for_key_notify(event: efi::Event, context: *mut c_void) {
        let _ = context;
        if Machine::console_has_input() {
            let _ = with_core(|c| c.events.signal(event as usize));
        }
    }
}

/// Reset of ConIn (either protocol): drops what the terminal sent so far.
fn reset_input(this_is_null: bool) -> Status {
    if this_is_null {
        return Status::INVALID_PARAMETER;
    }
    drain_input();
    Status::SUCCESS
}

/// Drops what the terminal sent so far (ConIn and SerialIo resets).
pub fn drain_input() {
    while Machine::console_read().is_some() {}
}

/// Where RegisterKeyNotify handles start (opaque, never NULL).
const KEY_NOTIFY_FIRST: usize = 0xe3e0_0010;

/// A RegisterKeyNotify registration: called for every key stroke read that matches.
/// This protocol's part of the core: SimpleTextInputEx.RegisterKeyNotify registrations, and a
/// counter for their handles.
#[derive(Default)]
pub struct ConsoleState {
    pub key_notifies: Vec<KeyNotify>,
    pub serial: usize,
}

pub struct KeyNotify {
    handle: usize,
    scan_code: u16,
    unicode_char: u16,
    function: text_in_ex::KeyNotifyFunction,
}

/// The next key from the terminal (`NotReady` when none), after the key notifications that
/// match it have run.
fn read_key() -> Result<text_in::InputKey, EfiError> {
    let b = Machine::console_read().ok_or(EfiError::NotReady)?;
    let (scan_code, unicode_char) = decode_key(b, next_key_byte);
    let key = text_in::InputKey { scan_code, unicode_char };
    if !exited() {
        let matching: Vec<_> = with_core(|c| c.console.key_notifies.iter().filter(|n| n.scan_code == scan_code && n.unicode_char == unicode_char).map(|n| n.function).collect());
        for f in matching {
            let mut data = text_in_ex::KeyData { key, key_state: text_in_ex::KeyState::default() };
            // SAFETY: a KeyNotifyFunction the payload registered, called with the key's data.
            unsafe { f(&mut data) };
        }
    }
    Ok(key)
}

/// The next byte of an escape sequence: terminals send a sequence at once, so a short wait
/// (10 ms) tells a sequence from a lone ESC key.
fn next_key_byte() -> Option<u8> {
    let end = Machine::ticks() + Machine::ticks_per_second() / 100;
    loop {
        if let Some(b) = Machine::console_read() {
            return Some(b);
        }
        if Machine::ticks() >= end {
            return None;
        }
        core::hint::spin_loop();
    }
}

/// SCAN_* codes of UEFI 2.10 table 12.2.
const SCAN_UP: u16 = 0x01;
const SCAN_DOWN: u16 = 0x02;
const SCAN_RIGHT: u16 = 0x03;
const SCAN_LEFT: u16 = 0x04;
const SCAN_HOME: u16 = 0x05;
const SCAN_END: u16 = 0x06;
const SCAN_INSERT: u16 = 0x07;
const SCAN_DELETE: u16 = 0x08;
const SCAN_PAGE_UP: u16 = 0x09;
const SCAN_PAGE_DOWN: u16 = 0x0a;
const SCAN_F1: u16 = 0x0b;
const SCAN_ESC: u16 = 0x17;

/// A key from the bytes a VT100/xterm terminal sends: (ScanCode, UnicodeChar). `first` was
/// read; `next` gives the rest of an escape sequence. Unknown sequences read as ESC.
pub fn decode_key(first: u8, mut next: impl FnMut() -> Option<u8>) -> (u16, u16) {
    match first {
        0x1b => {}
        0x7f => return (0, 0x08), // DEL as backspace
        b'\n' => return (0, b'\r' as u16),
        b => return (0, b as u16),
    }
    let scan = match (next(), next()) {
        (Some(b'['), Some(b'A')) => SCAN_UP,
        (Some(b'['), Some(b'B')) => SCAN_DOWN,
        (Some(b'['), Some(b'C')) => SCAN_RIGHT,
        (Some(b'['), Some(b'D')) => SCAN_LEFT,
        (Some(b'['), Some(b'H')) => SCAN_HOME,
        (Some(b'['), Some(b'F')) => SCAN_END,
        (Some(b'O'), Some(f @ b'P'..=b'S')) => SCAN_F1 + (f - b'P') as u16,
        (Some(b'['), Some(d @ b'1'..=b'6')) => match (d, next()) {
            (b'1', Some(b'~')) => SCAN_HOME,
            (b'2', Some(b'~')) => SCAN_INSERT,
            (b'3', Some(b'~')) => SCAN_DELETE,
            (b'4', Some(b'~')) => SCAN_END,
            (b'5', Some(b'~')) => SCAN_PAGE_UP,
            (b'6', Some(b'~')) => SCAN_PAGE_DOWN,
            _ => SCAN_ESC,
        },
        _ => SCAN_ESC,
    };
    (scan, 0)
}

/// The ANSI SGR sequence for an EFI text attribute: foreground in bits 0..3 (bit 3 bright),
/// background in bits 4..6.
pub fn sgr(attribute: u8) -> alloc::string::String {
    // EFI's colour order (black, blue, green, cyan, red, magenta, brown, light gray) in ANSI's.
    const ANSI: [u8; 8] = [0, 4, 2, 6, 1, 5, 3, 7];
    let fg = ANSI[(attribute & 7) as usize] + if attribute & 8 != 0 { 90 } else { 30 };
    let bg = ANSI[((attribute >> 4) & 7) as usize] + 40;
    alloc::format!("\x1b[0;{fg};{bg}m")
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
    let key_event_ex = c.events.create(efi::EVT_NOTIFY_WAIT, efi::TPL_NOTIFY, Some((wait_for_key_notify::entry, 0)), None)?;
    let text_in_ex = text_in_ex::Protocol {
        reset: ex_reset::entry,
        read_key_stroke_ex: read_key_stroke_ex::entry,
        wait_for_key_ex: key_event_ex as efi::Event,
        set_state: set_state::entry,
        register_key_notify: register_key_notify::entry,
        unregister_key_notify: unregister_key_notify::entry,
    };
    let ix = publish(c, efi::BOOT_SERVICES_DATA, text_in_ex)?;
    let h = c.handles.install(None, &text_out::PROTOCOL_GUID, o as usize)?;
    c.handles.install(Some(h), &text_in::PROTOCOL_GUID, i as usize)?;
    c.handles.install(Some(h), &text_in_ex::PROTOCOL_GUID, ix as usize)?;
    Ok((h, o, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> (u16, u16) {
        let mut rest = bytes[1..].iter().copied();
        decode_key(bytes[0], || rest.next())
    }

    #[test]
    fn terminal_keys_decode_to_scan_codes() {
        assert_eq!(key(b"a"), (0, 'a' as u16));
        assert_eq!(key(b"\n"), (0, '\r' as u16));
        assert_eq!(key(b"\x7f"), (0, 8));
        for (seq, scan) in
            [(&b"\x1b[A"[..], SCAN_UP), (b"\x1b[D", SCAN_LEFT), (b"\x1b[H", SCAN_HOME), (b"\x1b[6~", SCAN_PAGE_DOWN), (b"\x1b[3~", SCAN_DELETE), (b"\x1bOQ", SCAN_F1 + 1)]
        {
            assert_eq!(key(seq), (scan, 0), "{seq:?}");
        }
        assert_eq!(key(b"\x1b"), (SCAN_ESC, 0));
        assert_eq!(key(b"\x1b[Z"), (SCAN_ESC, 0), "unknown");
    }

    #[test]
    fn attributes_become_ansi_colours() {
        assert_eq!(sgr(0x07), "\x1b[0;37;40m", "light gray on black");
        assert_eq!(sgr(0x70), "\x1b[0;30;47m", "black on light gray: a highlighted menu entry");
        assert_eq!(sgr(0x0f), "\x1b[0;97;40m", "white");
    }
}
