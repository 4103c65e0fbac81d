//! Device paths: reading them safely from payload memory, comparing node by node, building the
//! few we publish. Their text forms (DevicePathToText, DevicePathFromText) are in `text.rs`.

use alloc::vec::Vec;
use r_efi::efi::Guid;

mod text;
pub use text::{node_from_text, node_text, path_from_text, path_text};

pub const TYPE_HARDWARE: u8 = 0x01;
pub const TYPE_ACPI: u8 = 0x02;
pub const TYPE_MESSAGING: u8 = 0x03;
pub const TYPE_MEDIA: u8 = 0x04;
pub const TYPE_BBS: u8 = 0x05;
pub const TYPE_END: u8 = 0x7f;
pub const SUBTYPE_MEMORY_MAPPED: u8 = 0x03;
pub const SUBTYPE_VENDOR_MEDIA: u8 = 0x03;
pub const SUBTYPE_END_ENTIRE: u8 = 0xff;
pub const SUBTYPE_END_INSTANCE: u8 = 0x01;
/// Longest device path we read.
pub const MAX_LEN: usize = 64 * 1024;

/// The bytes of the device path at `ptr`, End node included.
///
/// # Safety
/// `ptr` must point to readable memory holding a device path (the length fields are checked,
/// so a damaged path yields `None`, but the memory itself must be readable).
pub unsafe fn read<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    let mut len = 0usize;
    loop {
        // SAFETY: the caller guarantees the nodes are readable; each header is 4 bytes.
        let header = unsafe { core::slice::from_raw_parts(ptr.add(len), 4) };
        let node_len = u16::from_le_bytes([header[2], header[3]]) as usize;
        if node_len < 4 || len + node_len > MAX_LEN {
            return None;
        }
        len += node_len;
        if header[0] == TYPE_END && header[1] == SUBTYPE_END_ENTIRE {
            // SAFETY: every node up to here was readable.
            return Some(unsafe { core::slice::from_raw_parts(ptr, len) });
        }
    }
}

/// The bytes of the one node at `ptr`: its header and the length the header gives (at least 4).
///
/// # Safety
/// `ptr` must be NULL or point to a readable node of the length its header gives.
pub unsafe fn read_node<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per the contract: the 4-byte header, then the length it gives.
    unsafe {
        let len = u16::from_le_bytes([*ptr.add(2), *ptr.add(3)]) as usize;
        Some(core::slice::from_raw_parts(ptr, len.max(4)))
    }
}

/// The nodes of a well-formed path, End excluded: (offset, node bytes).
pub fn nodes(path: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut off = 0;
    core::iter::from_fn(move || {
        let header = path.get(off..off + 4)?;
        if header[0] == TYPE_END && header[1] == SUBTYPE_END_ENTIRE {
            return None;
        }
        let len = (u16::from_le_bytes([header[2], header[3]]) as usize).max(4);
        let node = path.get(off..off + len)?;
        let at = off;
        off += len;
        Some((at, node))
    })
}

/// The path without its End node.
pub fn without_end(path: &[u8]) -> &[u8] {
    let end = nodes(path).last().map(|(off, n)| off + n.len()).unwrap_or(0);
    &path[..end]
}

/// When `prefix` (a whole path) matches the first nodes of `path` byte for byte, the offset in
/// `path` where the rest begins.
pub fn match_prefix(prefix: &[u8], path: &[u8]) -> Option<usize> {
    let p = without_end(prefix);
    if !path.starts_with(p) {
        return None;
    }
    // The match must end on a node boundary of `path`.
    (p.is_empty() || nodes(path).any(|(off, n)| off + n.len() == p.len())).then_some(p.len())
}

fn node(ty: u8, sub: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + body.len());
    v.extend_from_slice(&[ty, sub]);
    v.extend_from_slice(&((4 + body.len()) as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

pub fn end() -> Vec<u8> {
    node(TYPE_END, SUBTYPE_END_ENTIRE, &[])
}

/// `VenMedia(guid)/End`.
pub fn vendor_media(guid: &Guid) -> Vec<u8> {
    let mut v = node(TYPE_MEDIA, SUBTYPE_VENDOR_MEDIA, guid.as_bytes());
    v.extend(end());
    v
}

/// `MemoryMapped(type, start, end)/End`, as firmware names an image loaded from memory.
pub fn memory_mapped(memory_type: u32, start: u64, end_inclusive: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&memory_type.to_le_bytes());
    body.extend_from_slice(&start.to_le_bytes());
    body.extend_from_slice(&end_inclusive.to_le_bytes());
    let mut v = node(TYPE_HARDWARE, SUBTYPE_MEMORY_MAPPED, &body);
    v.extend(end());
    v
}

/// The length a node's header gives (at least the header).
fn node_len(node: &[u8]) -> usize {
    (u16::from_le_bytes([node[2], node[3]]) as usize).max(4)
}

/// AppendDevicePath: `a` without its End, then `b`; a missing path counts as empty.
pub fn append_paths(a: Option<&[u8]>, b: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(a.map(without_end).unwrap_or_default());
    match b {
        Some(b) => v.extend_from_slice(b),
        None => v.extend(end()),
    }
    v
}

/// AppendDeviceNode: `path` without its End, the node (as long as its header says), End.
pub fn append_node(path: Option<&[u8]>, node: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(path.map(without_end).unwrap_or_default());
    if let Some(n) = node.filter(|n| n.len() >= 4) {
        v.extend_from_slice(&n[..node_len(n).min(n.len())]);
    }
    v.extend(end());
    v
}

/// AppendDevicePathInstance: `path`, its End made an instance separator, then `instance`.
pub fn append_instance(path: Option<&[u8]>, instance: &[u8]) -> Vec<u8> {
    let Some(path) = path else { return instance.to_vec() };
    let mut v = path.to_vec();
    let last = v.len() - 4;
    v[last + 1] = SUBTYPE_END_INSTANCE;
    v.extend_from_slice(instance);
    v
}

/// GetNextDevicePathInstance: the first instance of a (multi-instance) path, ended with End,
/// and where the next one begins (`None` after the last).
pub fn next_instance(path: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut off = 0;
    while let Some(header) = path.get(off..off + 4) {
        if header[0] == TYPE_END {
            let mut instance = path[..off].to_vec();
            instance.extend(end());
            let next = (header[1] == SUBTYPE_END_INSTANCE).then_some(off + 4);
            return (instance, next);
        }
        off += node_len(header);
    }
    (end(), None)
}

/// Whether the path has more than one instance.
pub fn is_multi_instance(path: &[u8]) -> bool {
    next_instance(path).1.is_some()
}

/// EFI_VIRTUAL_DISK_GUID: a RAM disk holding a disk image.
pub const VIRTUAL_DISK: Guid = Guid::from_fields(0x77ab535a, 0x45fc, 0x624b, 0x55, 0x60, &[0xf7, 0xb2, 0x81, 0xd1, 0xf9, 0x6e]);
pub const SUBTYPE_HARD_DRIVE: u8 = 0x01;
pub const SUBTYPE_FILE_PATH: u8 = 0x04;
pub const SUBTYPE_RAM_DISK: u8 = 0x09;

/// `RamDisk(start, end, VirtualDisk, 0)/End`: the ESP the loader placed in memory.
pub fn ram_disk(start: u64, end_inclusive: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(34);
    body.extend_from_slice(&start.to_le_bytes());
    body.extend_from_slice(&end_inclusive.to_le_bytes());
    body.extend_from_slice(VIRTUAL_DISK.as_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    let mut v = node(TYPE_MEDIA, SUBTYPE_RAM_DISK, &body);
    v.extend(end());
    v
}

/// The `HD(number,GPT|MBR,signature,start,size)` node of a partition (no End): start and size
/// in 512-byte blocks.
pub fn hard_drive(p: &crate::efi::fat::Partition) -> Vec<u8> {
    use crate::efi::fat::Signature;
    let mut body = Vec::with_capacity(38);
    body.extend_from_slice(&p.number.to_le_bytes());
    body.extend_from_slice(&(p.start / 512).to_le_bytes());
    body.extend_from_slice(&(p.size / 512).to_le_bytes());
    let (signature, mbr_type, signature_type) = match p.signature {
        Signature::Gpt(guid) => (guid, 2u8, 2u8),
        Signature::Mbr(id) => {
            let mut s = [0u8; 16];
            s[..4].copy_from_slice(&id.to_le_bytes());
            (s, 1, 1)
        }
    };
    body.extend_from_slice(&signature);
    body.extend_from_slice(&[mbr_type, signature_type]);
    node(TYPE_MEDIA, SUBTYPE_HARD_DRIVE, &body)
}

/// `File(path)/End` (path in UTF-16, NUL added).
pub fn file_path(path: &[u16]) -> Vec<u8> {
    let body: Vec<u8> = path.iter().chain(core::iter::once(&0)).flat_map(|u| u.to_le_bytes()).collect();
    let mut v = node(TYPE_MEDIA, SUBTYPE_FILE_PATH, &body);
    v.extend(end());
    v
}

/// The path the File nodes of `path` name, joined with `\` (`None` when a node is not a File
/// node).
pub fn file_path_of(path: &[u8]) -> Option<Vec<u16>> {
    let mut out: Vec<u16> = Vec::new();
    for (_, n) in nodes(path) {
        if n[0] != TYPE_MEDIA || n[1] != SUBTYPE_FILE_PATH {
            return None;
        }
        let units = n[4..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0);
        if !out.is_empty() && out.last() != Some(&(b'\\' as u16)) {
            out.push(b'\\' as u16);
        }
        out.extend(units);
    }
    Some(out)
}

/// CreateDeviceNode: a zeroed node of `length` bytes (`None` below the 4-byte header).
pub fn create_node(ty: u8, sub: u8, length: u16) -> Option<Vec<u8>> {
    (length >= 4).then(|| node(ty, sub, &alloc::vec![0; length as usize - 4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Guid = Guid::from_fields(0x5568e427, 0x68fc, 0x4f3d, 0xac, 0x74, &[0xca, 0x55, 0x52, 0x31, 0xcc, 0x68]);

    #[test]
    fn utilities_append_and_split_instances() {
        let a = vendor_media(&G);
        let b = memory_mapped(2, 0x1000, 0x1fff);
        let ab = append_paths(Some(&a), Some(&b));
        assert_eq!(ab.len(), a.len() + b.len() - 4);
        assert_eq!(nodes(&ab).count(), 2);
        assert_eq!(append_paths(None, None), end());
        assert_eq!(append_paths(None, Some(&b)), b);
        let node = &b[..b.len() - 4];
        assert_eq!(append_node(Some(&a), Some(node)), ab);
        assert_eq!(append_node(None, None), end());
        assert_eq!(append_node(Some(&a), None), a);
        let multi = append_instance(Some(&a), &b);
        assert!(is_multi_instance(&multi) && !is_multi_instance(&a));
        let (first, next) = next_instance(&multi);
        assert_eq!(first, a);
        let (second, last) = next_instance(&multi[next.unwrap()..]);
        assert_eq!((second, last), (b.clone(), None));
        assert_eq!(append_instance(None, &b), b);
        assert_eq!(create_node(TYPE_MEDIA, 4, 8).unwrap(), [TYPE_MEDIA, 4, 8, 0, 0, 0, 0, 0]);
        assert_eq!(create_node(TYPE_MEDIA, 4, 3), None);
    }

    #[test]
    fn vendor_media_is_byte_exact() {
        let p = vendor_media(&G);
        assert_eq!(p.len(), 20 + 4);
        assert_eq!(&p[..4], &[4, 3, 20, 0]);
        assert_eq!(&p[4..8], &0x5568e427u32.to_le_bytes());
        assert_eq!(&p[20..], &[0x7f, 0xff, 4, 0]);
        // SAFETY: a device path in a local buffer.
        assert_eq!(unsafe { read(p.as_ptr()) }, Some(&p[..]));
    }

    #[test]
    fn prefix_matching_is_node_exact() {
        let dev = memory_mapped(2, 0x4000_0000, 0x4000_ffff);
        let mut full = without_end(&dev).to_vec();
        full.extend(vendor_media(&G));
        assert_eq!(match_prefix(&dev, &full), Some(24));
        assert_eq!(match_prefix(&full, &full), Some(full.len() - 4));
        assert_eq!(match_prefix(&vendor_media(&G), &full), None);
        // An End-only path matches everything at offset 0: callers must not publish one.
        assert_eq!(match_prefix(&end(), &full), Some(0));
        // A byte prefix that stops inside a node does not match.
        let mut short = dev[..10].to_vec();
        short[2] = 10;
        short.extend(end());
        assert_eq!(match_prefix(&short, &full), None);
    }

    #[test]
    fn damaged_paths_are_refused() {
        let mut p = vendor_media(&G);
        p[2] = 2; // node shorter than its header
                  // SAFETY: a (malformed) device path in a local buffer.
        assert_eq!(unsafe { read(p.as_ptr()) }, None);
        // SAFETY: NULL is refused before any access.
        assert_eq!(unsafe { read(core::ptr::null()) }, None);
    }
}
