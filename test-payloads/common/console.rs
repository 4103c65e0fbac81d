//! ConOut for the UEFI test payloads, without an allocator: `print` a line, `say!` a formatted
//! one. Included by each payload (`#[path]`), which sets `CON_OUT` from its system table first.

use core::ptr::null_mut;
use r_efi::efi;

pub static mut CON_OUT: *mut efi::protocols::simple_text_output::Protocol = null_mut();

pub fn print(s: &str) {
    let mut buf = [0u16; 200];
    for (n, c) in s.encode_utf16().chain("\r\n".encode_utf16()).take(buf.len() - 1).enumerate() {
        buf[n] = c;
    }
    // SAFETY: ConOut from the system table (set before the first line); the buffer is
    // NUL-terminated.
    unsafe {
        let out = CON_OUT;
        ((*out).output_string)(out, buf.as_mut_ptr());
    }
}

/// Formats into a stack buffer.
pub struct Line {
    pub buf: [u8; 200],
    pub len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut l = $crate::console::Line { buf: [0; 200], len: 0 };
        let _ = core::fmt::write(&mut l, format_args!($($arg)*));
        $crate::console::print(core::str::from_utf8(&l.buf[..l.len]).unwrap_or("?"));
    }};
}
