//! `EFI_SIGNATURE_LIST` contents for `db`, `dbx`, `MokList*` (tests and tools; the emulator's
//! `efi::secure_boot::signature_list` reads them).

use r_efi::efi::Guid;

/// One list of `entries` of type `ty`, all of the first one's size, owned by a zero GUID
/// (tests and tools that make `db`/`dbx` contents).
pub fn list(ty: &Guid, entries: &[&[u8]]) -> Vec<u8> {
    let size = 16 + entries.first().map_or(0, |e| e.len());
    let mut l = Vec::new();
    l.extend_from_slice(ty.as_bytes());
    l.extend_from_slice(&((28 + size * entries.len()) as u32).to_le_bytes());
    l.extend_from_slice(&0u32.to_le_bytes());
    l.extend_from_slice(&(size as u32).to_le_bytes());
    for e in entries {
        l.extend_from_slice(&[0; 16]);
        l.extend_from_slice(e);
    }
    l
}
