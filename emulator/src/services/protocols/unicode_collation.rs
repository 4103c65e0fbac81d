//! EFI_UNICODE_COLLATION2_PROTOCOL (language "en"), on the rules of `efi::collation`: what FAT
//! drivers and shells use to compare and match file names.

use crate::efi::collation;
use crate::services::*;

/// `EFI_UNICODE_COLLATION_PROTOCOL2_GUID`.
pub const PROTOCOL_GUID: Guid = Guid::from_fields(0xa4c751fc, 0x23ae, 0x4c3e, 0x92, 0xe9, &[0x49, 0x64, 0xcf, 0x63, 0xf3, 0x49]);

#[repr(C)]
pub struct Protocol {
    pub stri_coll: unsafe extern "efiapi" fn(*mut Protocol, *mut u16, *mut u16) -> isize,
    pub metai_match: unsafe extern "efiapi" fn(*mut Protocol, *mut u16, *mut u16) -> efi::Boolean,
    pub str_lwr: unsafe extern "efiapi" fn(*mut Protocol, *mut u16),
    pub str_upr: unsafe extern "efiapi" fn(*mut Protocol, *mut u16),
    pub fat_to_str: unsafe extern "efiapi" fn(*mut Protocol, usize, *mut u8, *mut u16),
    pub str_to_fat: unsafe extern "efiapi" fn(*mut Protocol, *mut u16, usize, *mut u8) -> efi::Boolean,
    pub supported_languages: *const u8,
}

/// RFC 4646 language codes, NUL-terminated.
static LANGUAGES: &[u8] = b"en\0";

fn boolean(b: bool) -> efi::Boolean {
    if b {
        efi::Boolean::TRUE
    } else {
        efi::Boolean::FALSE
    }
}

/// A mutable NUL-terminated string argument (empty for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated UCS-2 string the caller lets us change.
unsafe fn string_mut<'a>(p: *mut u16) -> &'a mut [u16] {
    // SAFETY: per the contract; the length is the string's.
    unsafe { ucs2_arg(p).map_or(&mut [][..], |s| core::slice::from_raw_parts_mut(p, s.len())) }
}

efiapi! {
    fn stri_coll(this: *mut Protocol, a: *mut u16, b: *mut u16) -> isize {
        let _ = this;
        // SAFETY: the payload's string arguments (NULL reads as empty).
        let (a, b) = unsafe { (ucs2_arg(a).unwrap_or_default(), ucs2_arg(b).unwrap_or_default()) };
        collation::stri_coll(a, b) as isize
    }

    fn metai_match(this: *mut Protocol, s: *mut u16, pattern: *mut u16) -> efi::Boolean {
        let _ = this;
        // SAFETY: as above.
        let (s, p) = unsafe { (ucs2_arg(s).unwrap_or_default(), ucs2_arg(pattern).unwrap_or_default()) };
        boolean(collation::metai_match(s, p))
    }

    fn str_lwr(this: *mut Protocol, s: *mut u16) {
        let _ = this;
        // SAFETY: the payload's string, changed in place.
        for u in unsafe { string_mut(s) } {
            *u = collation::lower(*u);
        }
    }

    fn str_upr(this: *mut Protocol, s: *mut u16) {
        let _ = this;
        // SAFETY: as above.
        for u in unsafe { string_mut(s) } {
            *u = collation::upper(*u);
        }
    }

    fn fat_to_str(this: *mut Protocol, size: usize, fat: *mut u8, out: *mut u16) {
        let _ = this;
        if out.is_null() {
            return;
        }
        // SAFETY: the payload's `size` FAT bytes, and a string buffer of at least size + 1 units.
        unsafe {
            let fat = bytes_arg(fat, size).unwrap_or_default();
            let mut n = 0;
            for u in collation::fat_to_str(fat) {
                out.add(n).write_unaligned(u);
                n += 1;
            }
            out.add(n).write_unaligned(0);
        }
    }

    fn str_to_fat(this: *mut Protocol, s: *mut u16, size: usize, fat: *mut u8) -> efi::Boolean {
        let _ = this;
        if fat.is_null() {
            return efi::Boolean::FALSE;
        }
        // SAFETY: the payload's string and its `size`-byte FAT buffer.
        unsafe {
            let s = ucs2_arg(s).unwrap_or_default();
            boolean(collation::str_to_fat(s, core::slice::from_raw_parts_mut(fat, size)))
        }
    }
}

pub fn install(c: &mut Core) -> Result<(), EfiError> {
    let protocol = Protocol {
        stri_coll: stri_coll::entry,
        metai_match: metai_match::entry,
        str_lwr: str_lwr::entry,
        str_upr: str_upr::entry,
        fat_to_str: fat_to_str::entry,
        str_to_fat: str_to_fat::entry,
        supported_languages: LANGUAGES.as_ptr(),
    };
    install_protocol(c, &PROTOCOL_GUID, protocol)?;
    Ok(())
}
