//! Device paths: reading them safely from payload memory, comparing node by node, building the
//! few we publish.

use alloc::vec::Vec;
use r_efi::efi::Guid;

pub const TYPE_HARDWARE: u8 = 0x01;
pub const TYPE_MEDIA: u8 = 0x04;
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

fn guid_text(b: &[u8]) -> alloc::string::String {
    let g = |r: core::ops::Range<usize>| b[r].iter().map(|x| alloc::format!("{x:02X}")).collect::<alloc::string::String>();
    let le32 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let (le16a, le16b) = (u16::from_le_bytes([b[4], b[5]]), u16::from_le_bytes([b[6], b[7]]));
    alloc::format!("{le32:08X}-{le16a:04X}-{le16b:04X}-{}-{}", g(8..10), g(10..16))
}

/// One node in the text form of UEFI 2.10 section 10.6 (the nodes this firmware makes, and the
/// generic `Path(type,subtype,data)` form for the rest).
pub fn node_text(n: &[u8]) -> alloc::string::String {
    use alloc::format;
    let body = &n[4..];
    let u64_at = |o: usize| crate::mem::le_u64(body, o).unwrap_or(0);
    match (n[0], n[1]) {
        (TYPE_HARDWARE, SUBTYPE_MEMORY_MAPPED) if body.len() >= 20 => {
            format!("MemoryMapped(0x{:X},0x{:X},0x{:X})", crate::mem::le_u32(body, 0).unwrap_or(0), u64_at(4), u64_at(12))
        }
        (TYPE_MEDIA, SUBTYPE_VENDOR_MEDIA) if body.len() >= 16 => format!("VenMedia({})", guid_text(&body[..16])),
        (TYPE_MEDIA, SUBTYPE_HARD_DRIVE) if body.len() >= 38 && matches!(body[37], 1 | 2) => {
            let number = crate::mem::le_u32(body, 0).unwrap_or(0);
            let signature = if body[37] == 2 { guid_text(&body[20..36]) } else { format!("0x{:X}", crate::mem::le_u32(body, 20).unwrap_or(0)) };
            format!("HD({number},{},{signature},0x{:X},0x{:X})", if body[36] == 2 { "GPT" } else { "MBR" }, u64_at(4), u64_at(12))
        }
        (TYPE_MEDIA, SUBTYPE_FILE_PATH) => {
            let units: Vec<u16> = body.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
            alloc::string::String::from_utf16_lossy(&units)
        }
        (TYPE_MEDIA, SUBTYPE_RAM_DISK) if body.len() >= 34 && body[16..32] == *VIRTUAL_DISK.as_bytes() => {
            format!("VirtualDisk(0x{:X},0x{:X},{})", u64_at(0), u64_at(8), u16::from_le_bytes([body[32], body[33]]))
        }
        (TYPE_END, SUBTYPE_END_INSTANCE) => ",".into(),
        (TYPE_END, _) => alloc::string::String::new(),
        (ty, sub) => format!("Path({ty},{sub},{})", body.iter().map(|b| format!("{b:02X}")).collect::<alloc::string::String>()),
    }
}

/// A whole path in text form: nodes joined with `/`, instances with `,`.
pub fn path_text(path: &[u8]) -> alloc::string::String {
    let mut out = alloc::string::String::new();
    let mut off = 0;
    while let Some(header) = path.get(off..off + 4) {
        let len = node_len(header);
        let Some(n) = path.get(off..off + len) else { break };
        if n[0] == TYPE_END && n[1] == SUBTYPE_END_ENTIRE {
            break;
        }
        let text = node_text(n);
        if !out.is_empty() && !out.ends_with(',') && text != "," {
            out.push('/');
        }
        out.push_str(&text);
        off += len;
    }
    out
}

/// Splits `text` at `sep` outside parentheses.
fn split_top<'a>(text: &'a str, sep: &[char]) -> Vec<(char, &'a str)> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut before) = (0i32, 0, '/');
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 && sep.contains(&c) => {
                parts.push((before, &text[start..i]));
                (start, before) = (i + 1, c);
            }
            _ => {}
        }
    }
    parts.push((before, &text[start..]));
    parts
}

fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

fn guid_from_text(t: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = t.trim().split('-').collect();
    let [a, b, c, d, e] = parts[..] else { return None };
    if (a.len(), b.len(), c.len(), d.len(), e.len()) != (8, 4, 4, 4, 12) {
        return None;
    }
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&u32::from_str_radix(a, 16).ok()?.to_le_bytes());
    out[4..6].copy_from_slice(&u16::from_str_radix(b, 16).ok()?.to_le_bytes());
    out[6..8].copy_from_slice(&u16::from_str_radix(c, 16).ok()?.to_le_bytes());
    let tail = [d, e].concat();
    for (i, o) in out[8..].iter_mut().enumerate() {
        *o = u8::from_str_radix(tail.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One node from its text form (the inverse of [`node_text`]): `MemoryMapped(type,start,end)`,
/// `VenMedia(guid)`, `HD(number,GPT|MBR,signature,start,size)`, `VirtualDisk(start,end,instance)`, `Path(type,subtype,hex)`, and any text
/// that is not `Name(...)` as a file path. `None` for forms this firmware does not know.
pub fn node_from_text(text: &str) -> Option<Vec<u8>> {
    let Some((name, rest)) = text.split_once('(').filter(|(n, r)| r.ends_with(')') && n.chars().all(|c| c.is_ascii_alphanumeric())) else {
        let units: Vec<u16> = text.encode_utf16().collect();
        return Some(without_end(&file_path(&units)).to_vec());
    };
    let args: Vec<&str> = rest[..rest.len() - 1].split(',').map(str::trim).collect();
    let arg = |i: usize| args.get(i).copied().and_then(number);
    match (name, args.len()) {
        ("MemoryMapped", 3) => Some(without_end(&memory_mapped(u32::try_from(arg(0)?).ok()?, arg(1)?, arg(2)?)).to_vec()),
        ("VenMedia", 1) => Some(node(TYPE_MEDIA, SUBTYPE_VENDOR_MEDIA, &guid_from_text(args[0])?)),
        ("HD", 5) => {
            use crate::efi::fat::{Partition, Signature};
            let signature = match args[1] {
                "GPT" => Signature::Gpt(guid_from_text(args[2])?),
                "MBR" => Signature::Mbr(u32::try_from(arg(2)?).ok()?),
                _ => return None,
            };
            let blocks = |i| arg(i).and_then(|b| b.checked_mul(512));
            Some(hard_drive(&Partition { number: u32::try_from(arg(0)?).ok()?, start: blocks(3)?, size: blocks(4)?, signature }))
        }
        ("VirtualDisk", 3) => {
            let mut n = without_end(&ram_disk(arg(0)?, arg(1)?)).to_vec();
            let instance = u16::try_from(arg(2)?).ok()?;
            let len = n.len();
            n[len - 2..].copy_from_slice(&instance.to_le_bytes());
            Some(n)
        }
        ("Path", 3) => {
            let hex = args[2];
            if !hex.len().is_multiple_of(2) {
                return None;
            }
            let body = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?;
            Some(node(u8::try_from(arg(0)?).ok()?, u8::try_from(arg(1)?).ok()?, &body))
        }
        _ => None,
    }
}

/// A whole path from its text form: nodes separated by `/`, instances by `,` (outside
/// parentheses), ending with End.
pub fn path_from_text(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (sep, part) in split_top(text, &['/', ',']) {
        if sep == ',' {
            out.extend(node(TYPE_END, SUBTYPE_END_INSTANCE, &[]));
        }
        if !part.is_empty() {
            out.extend(node_from_text(part)?);
        }
    }
    out.extend(end());
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
    fn text_forms() {
        let mut p = ram_disk(0x4000_0000, 0x41ff_ffff);
        p.truncate(p.len() - 4);
        p.extend(file_path(&"\\EFI\\BOOT\\BOOTAA64.EFI".encode_utf16().collect::<Vec<_>>()));
        assert_eq!(path_text(&p), "VirtualDisk(0x40000000,0x41FFFFFF,0)/\\EFI\\BOOT\\BOOTAA64.EFI");
        assert_eq!(path_text(&vendor_media(&G)), "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68)");
        assert_eq!(path_text(&memory_mapped(2, 0x1000, 0x1fff)), "MemoryMapped(0x2,0x1000,0x1FFF)");
        let multi = append_instance(Some(&vendor_media(&G)), &memory_mapped(2, 0, 1));
        assert_eq!(path_text(&multi), "VenMedia(5568E427-68FC-4F3D-AC74-CA555231CC68),MemoryMapped(0x2,0x0,0x1)");
        assert_eq!(node_text(&[3, 11, 6, 0, 0xab, 0xcd]), "Path(3,11,ABCD)");
    }

    #[test]
    fn text_forms_parse_back() {
        let mut p = ram_disk(0x4000_0000, 0x41ff_ffff);
        p.truncate(p.len() - 4);
        p.extend(file_path(&"\\EFI\\BOOT\\BOOTAA64.EFI".encode_utf16().collect::<Vec<_>>()));
        let multi = append_instance(Some(&vendor_media(&G)), &memory_mapped(2, 0, 1));
        for path in [p, vendor_media(&G), memory_mapped(2, 0x1000, 0x1fff), multi] {
            assert_eq!(path_from_text(&path_text(&path)).as_deref(), Some(&path[..]), "{}", path_text(&path));
        }
        assert_eq!(node_from_text("Path(3,11,ABCD)"), Some(vec![3, 11, 6, 0, 0xab, 0xcd]));
        use crate::efi::fat::{Partition, Signature};
        let gpt = hard_drive(&Partition { number: 1, start: 0x800 * 512, size: 0x1_0000 * 512, signature: Signature::Gpt(*G.as_bytes()) });
        assert_eq!((gpt.len(), node_text(&gpt).as_str()), (42, "HD(1,GPT,5568E427-68FC-4F3D-AC74-CA555231CC68,0x800,0x10000)"));
        assert_eq!(node_from_text(&node_text(&gpt)), Some(gpt));
        let mbr = hard_drive(&Partition { number: 2, start: 2048 * 512, size: 4096 * 512, signature: Signature::Mbr(0xdead_beef) });
        assert_eq!(node_text(&mbr), "HD(2,MBR,0xDEADBEEF,0x800,0x1000)");
        assert_eq!(node_from_text(&node_text(&mbr)), Some(mbr));
        assert_eq!(node_from_text("MemoryMapped(2,4096,0x1FFF)"), node_from_text("MemoryMapped(0x2,0x1000,0x1FFF)"), "decimal or hex");
        assert_eq!(node_from_text("Pci(0x1,0x0)"), None, "a form this firmware does not know");
        assert_eq!(node_from_text("VenMedia(5568E427-68FC-4F3D-AC74)"), None, "a short GUID");
        assert_eq!(node_from_text("Path(3,11,ABC)"), None, "odd hex");
        assert_eq!(path_from_text(""), Some(end()));
    }

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
