//! The string rules of EFI_UNICODE_COLLATION2_PROTOCOL: case-insensitive comparison and pattern
//! matching over UCS-2, case mapping, and FAT 8.3 names to and from UCS-2 (FAT's OEM code page
//! taken as Latin-1, as EDK2's English collation does).

use core::cmp::Ordering;

/// The upper case of a UCS-2 unit in Latin-1 (ASCII and U+00C0..U+00FE, as EDK2's English
/// collation maps them); other units are their own case. Full Unicode case tables would double
/// the blob's read-only data for names FAT volumes do not use.
pub fn upper(u: u16) -> u16 {
    match u {
        0x61..=0x7a | 0xe0..=0xfe if u != 0xf7 => u - 0x20,
        0xff => 0x178,
        _ => u,
    }
}

pub fn lower(u: u16) -> u16 {
    match u {
        0x41..=0x5a | 0xc0..=0xde if u != 0xd7 => u + 0x20,
        0x178 => 0xff,
        _ => u,
    }
}

/// StriColl.
pub fn stri_coll(a: &[u16], b: &[u16]) -> Ordering {
    a.iter().map(|&u| upper(u)).cmp(b.iter().map(|&u| upper(u)))
}

/// MetaiMatch: `*` any run, `?` any one unit, `[abc]` and `[a-z]` sets; case-insensitive.
pub fn metai_match(s: &[u16], p: &[u16]) -> bool {
    let (star, question, open, close, dash) = (b'*' as u16, b'?' as u16, b'[' as u16, b']' as u16, b'-' as u16);
    match p.split_first() {
        None => s.is_empty(),
        Some((&c, rest)) if c == star => (0..=s.len()).any(|i| metai_match(&s[i..], rest)),
        Some((&c, rest)) if c == question => !s.is_empty() && metai_match(&s[1..], rest),
        Some((&c, rest)) if c == open => {
            let Some(end) = rest.iter().position(|&u| u == close) else { return false };
            let (set, after) = (&rest[..end], &rest[end + 1..]);
            let Some(&first) = s.first() else { return false };
            let u = upper(first);
            let mut i = 0;
            let mut hit = false;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == dash {
                    hit |= (upper(set[i])..=upper(set[i + 2])).contains(&u);
                    i += 3;
                } else {
                    hit |= upper(set[i]) == u;
                    i += 1;
                }
            }
            hit && metai_match(&s[1..], after)
        }
        Some((&c, rest)) => s.first().is_some_and(|&f| upper(f) == upper(c)) && metai_match(&s[1..], rest),
    }
}

/// Whether a FAT short name may hold the byte (upper case, Latin-1 code page).
fn fat_allowed(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_uppercase() || b.is_ascii_digit() || b" !#$%&'()-@^_`{}~".contains(&b)
}

/// StrToFat: `s` upper-cased into at most `fat.len()` bytes, without periods and spaces; units
/// a short name cannot hold become `_`. True when any unit was replaced.
pub fn str_to_fat(s: &[u16], fat: &mut [u8]) -> bool {
    let mut replaced = false;
    let units = s.iter().filter(|&&u| u != b'.' as u16 && u != b' ' as u16);
    for (slot, &u) in fat.iter_mut().zip(units) {
        *slot = match u8::try_from(upper(u)) {
            Ok(b) if fat_allowed(b) => b,
            _ => {
                replaced = true;
                b'_'
            }
        };
    }
    replaced
}

/// FatToStr: the bytes up to the first NUL, as UCS-2 (Latin-1).
pub fn fat_to_str(fat: &[u8]) -> impl Iterator<Item = u16> + '_ {
    fat.iter().take_while(|&&b| b != 0).map(|&b| b as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn comparison_and_case() {
        assert_eq!(stri_coll(&w("BootAA64.efi"), &w("BOOTaa64.EFI")), Ordering::Equal);
        assert_eq!(stri_coll(&w("a"), &w("B")), Ordering::Less);
        assert_eq!(stri_coll(&w("ab"), &w("a")), Ordering::Greater);
        assert_eq!(upper('é' as u16), 'É' as u16);
        assert_eq!(upper('ß' as u16), 'ß' as u16, "no one-unit upper case: kept");
        assert_eq!((upper('÷' as u16), lower('×' as u16)), ('÷' as u16, '×' as u16), "signs, not letters");
        assert_eq!(upper('ÿ' as u16), 'Ÿ' as u16);
        assert_eq!(lower('Z' as u16), 'z' as u16);
    }

    #[test]
    fn patterns() {
        for (s, p, want) in [
            ("bootaa64.efi", "*.EFI", true),
            ("bootaa64.efi", "BOOT????.EFI", true),
            ("bootaa64.efi", "BOOT???.EFI", false),
            ("grubaa64.efi", "[a-h]RUB*", true),
            ("xrub", "[a-h]rub", false),
            ("shim", "[rst]him", true),
            ("", "*", true),
            ("a", "", false),
            ("a[", "a[", false),
        ] {
            assert_eq!(metai_match(&w(s), &w(p)), want, "{s} ~ {p}");
        }
    }

    #[test]
    fn fat_names() {
        let mut fat = [0u8; 11];
        assert!(!str_to_fat(&w("boot aa64.efi"), &mut fat));
        assert_eq!(&fat, b"BOOTAA64EFI");
        let mut fat = [0u8; 8];
        assert!(str_to_fat(&w("a+b*c"), &mut fat), "+ and * are not short-name characters");
        assert_eq!(&fat[..5], b"A_B_C");
        assert_eq!(fat_to_str(b"EFI\0junk").collect::<Vec<_>>(), w("EFI"));
    }
}
