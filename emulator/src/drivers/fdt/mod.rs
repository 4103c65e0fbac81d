//! A small flattened-device-tree reader: header checks, node lookup by path, properties.
//!
//! It reads only what the emulator needs (memory, PSCI conduit, `/chosen`, device registers) and
//! bounds-checks every offset, because the DTB comes from the loader and may be damaged.

pub const HEADER_SIZE: usize = 40;
/// The FDT header's first word (big endian).
pub const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Largest DTB we accept.
pub const MAX_SIZE: usize = 16 << 20;

/// What was wrong with a DTB: the value found and what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdtError {
    pub value: u64,
    pub expected: &'static str,
}

impl core::fmt::Display for FdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "bad device tree: found {:#x}, expected {}", self.value, self.expected)
    }
}

fn fail<T>(value: impl Into<u64>, expected: &'static str) -> Result<T, FdtError> {
    Err(FdtError { value: value.into(), expected })
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off.checked_add(4)?).map(|s| u32::from_be_bytes(s.try_into().unwrap()))
}

/// Checks the header fields that can be checked without the rest, and returns `totalsize`.
pub fn total_size(header: &[u8]) -> Result<usize, FdtError> {
    if header.len() < HEADER_SIZE {
        return fail(header.len() as u64, "a 40-byte FDT header");
    }
    let magic = be32(header, 0).unwrap();
    if magic != MAGIC {
        return fail(magic, "the FDT magic 0xd00dfeed");
    }
    let total = be32(header, 4).unwrap() as usize;
    if !(HEADER_SIZE..=MAX_SIZE).contains(&total) {
        return fail(total as u64, "an FDT totalsize between 40 bytes and 16 MiB");
    }
    let version = be32(header, 20).unwrap();
    let last_compatible = be32(header, 24).unwrap();
    if version < 16 || last_compatible > 17 {
        return fail(version, "FDT version >= 16, compatible with version 17");
    }
    Ok(total)
}

/// A validated device tree blob.
#[derive(Clone, Copy)]
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    mem_rsv: &'a [u8],
}

impl<'a> Fdt<'a> {
    pub fn new(blob: &'a [u8]) -> Result<Self, FdtError> {
        let total = total_size(blob)?;
        if blob.len() < total {
            return fail(blob.len() as u64, "at least totalsize bytes of DTB");
        }
        let blob = &blob[..total];
        let field = |o| be32(blob, o).unwrap() as usize;
        let (off_struct, off_strings, off_rsv) = (field(8), field(12), field(16));
        let size_strings = field(32);
        let size_struct = field(36);
        let region = |off: usize, size: usize, what| match off.checked_add(size) {
            Some(end) if off >= HEADER_SIZE && end <= total => Ok(&blob[off..end]),
            _ => fail(off as u64, what),
        };
        let structs = region(off_struct, size_struct, "off_dt_struct + size_dt_struct inside totalsize")?;
        let strings = region(off_strings, size_strings, "off_dt_strings + size_dt_strings inside totalsize")?;
        let mem_rsv = region(off_rsv, total - off_rsv.min(total), "off_mem_rsvmap inside totalsize")?;
        if off_rsv % 8 != 0 {
            return fail(off_rsv as u64, "an 8-byte-aligned off_mem_rsvmap");
        }
        let fdt = Fdt { structs, strings, mem_rsv };
        match fdt.token(0) {
            Some((BEGIN_NODE, _)) => {}
            _ => return fail(be32(structs, 0).unwrap_or(0), "a structure block that starts with FDT_BEGIN_NODE"),
        }
        // Walk the whole structure block once, so later lookups cannot run off its end.
        let mut depth = 0i32;
        let mut off = 0;
        loop {
            let Some((tok, next)) = fdt.token(off) else {
                return fail(off as u64, "a well-formed structure block (value: the offset of the bad token)");
            };
            match tok {
                BEGIN_NODE => depth += 1,
                END_NODE => {
                    depth -= 1;
                    if depth < 0 {
                        return fail(off as u64, "balanced FDT_BEGIN_NODE/FDT_END_NODE");
                    }
                }
                END => break,
                _ => {}
            }
            off = next;
        }
        if depth != 0 {
            return fail(depth as u64, "every node closed before FDT_END");
        }
        Ok(fdt)
    }

    /// Decodes the token at `off`: its kind and the offset of the next token.
    fn token(&self, off: usize) -> Option<(u32, usize)> {
        let tok = be32(self.structs, off)?;
        let body = off + 4;
        let next = match tok {
            BEGIN_NODE => {
                let len = self.structs.get(body..)?.iter().position(|&b| b == 0)?;
                align4(body + len + 1)
            }
            PROP => {
                let len = be32(self.structs, body)? as usize;
                let end = body.checked_add(8)?.checked_add(len)?;
                if end > self.structs.len() {
                    return None;
                }
                align4(end)
            }
            END_NODE | NOP | END => body,
            _ => return None,
        };
        Some((tok, next))
    }

    /// The root node.
    pub fn root(&self) -> Node<'a> {
        Node { fdt: *self, name: "", body: self.node_body(0).unwrap_or(0) }
    }

    fn node_body(&self, begin: usize) -> Option<usize> {
        self.token(begin).map(|(_, next)| next)
    }

    fn name_at(&self, begin: usize) -> &'a str {
        let bytes = &self.structs[begin + 4..];
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(&bytes[..len]).unwrap_or("?")
    }

    /// Looks a node up by its absolute path; a component without `@` matches any unit address.
    pub fn find(&self, path: &str) -> Option<Node<'a>> {
        let mut node = self.root();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            node = node.children().find(|c| c.name == part || (!part.contains('@') && c.name.split('@').next() == Some(part)))?;
        }
        Some(node)
    }

    /// The memory reservation block's entries (address, size).
    pub fn reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.mem_rsv
            .chunks_exact(16)
            .map(|c| (u64::from_be_bytes(c[..8].try_into().unwrap()), u64::from_be_bytes(c[8..].try_into().unwrap())))
            .take_while(|&(a, s)| a != 0 || s != 0)
    }

    /// `/chosen/linux,initrd-start` and `-end`, when both are present.
    pub fn initrd(&self) -> Option<(u64, u64)> {
        let chosen = self.find("/chosen")?;
        let start = chosen.property("linux,initrd-start").and_then(be_uint)?;
        let end = chosen.property("linux,initrd-end").and_then(be_uint)?;
        (end > start).then_some((start, end))
    }

    /// `/chosen/efi-emulator,esp`: the ESP image the loader placed (start, size).
    pub fn esp(&self) -> Option<(u64, u64)> {
        let v = self.find("/chosen")?.property("efi-emulator,esp")?;
        let (start, size) = (be_uint(v.get(..8)?)?, be_uint(v.get(8..16)?)?);
        (size > 0).then_some((start, size))
    }

    /// `/chosen/efi-emulator,esp-path`: where in the ESP the kernel file is.
    pub fn esp_path(&self) -> Option<&'a str> {
        self.find("/chosen")?.property_str("efi-emulator,esp-path")
    }

    /// The PSCI conduit from `/psci`'s `method` property.
    pub fn psci_method(&self) -> Option<&'a str> {
        let psci = self.root().children().find(|n| n.name == "psci" || n.compatible_with("arm,psci"))?;
        psci.property_str("method")
    }

    /// The absolute path `/chosen/stdout-path` names, by path or alias (options after `:` cut).
    fn stdout_path(&self) -> Result<&'a str, ConsoleError<'a>> {
        let path = self.find("/chosen").and_then(|c| c.property_str("stdout-path")).ok_or(ConsoleError::NoStdoutPath)?;
        let path = path.split(':').next().unwrap_or(path);
        if path.starts_with('/') {
            Ok(path)
        } else {
            self.find("/aliases").and_then(|a| a.property_str(path)).ok_or(ConsoleError::NotFound)
        }
    }

    /// The console `/chosen/stdout-path` names, when it is a UART the emulator can drive (a PL011
    /// or an SBSA generic UART, whose transmit side is the PL011's), at its CPU address: `reg`
    /// read with its parent's cell sizes and translated through every bus's `ranges` up to the
    /// root. Any other device, or an address that does not translate, is refused by name: the
    /// emulator's writes must never reach the wrong device.
    pub fn stdout_uart(&self) -> Result<(u64, u64), ConsoleError<'a>> {
        let path = self.stdout_path()?;
        // The nodes from the root down to the UART.
        let mut lineage: [Option<Node<'a>>; MAX_DEPTH] = [None; MAX_DEPTH];
        let mut depth = 0;
        let mut node = self.root();
        lineage[0] = Some(node);
        for part in path.split('/').filter(|p| !p.is_empty()) {
            node = node.children().find(|c| c.name == part || (!part.contains('@') && c.name.split('@').next() == Some(part))).ok_or(ConsoleError::NotFound)?;
            depth += 1;
            *lineage.get_mut(depth).ok_or(ConsoleError::NotFound)? = Some(node);
        }
        let uart = node;
        if !(uart.compatible_with("arm,pl011") || uart.compatible_with("arm,sbsa-uart")) {
            return Err(ConsoleError::NotPl011 { compatible: uart.property_str("compatible").unwrap_or("no compatible") });
        }
        let parent = lineage[depth.checked_sub(1).ok_or(ConsoleError::NotFound)?].ok_or(ConsoleError::NotFound)?;
        let (mut addr, size) = uart.reg(parent.cells()).next().ok_or(ConsoleError::NoReg)?;
        // Up through each bus: the UART's parent first, the root's children last.
        for level in (1..depth).rev() {
            let (bus, above) = (lineage[level].ok_or(ConsoleError::NotFound)?, lineage[level - 1].ok_or(ConsoleError::NotFound)?);
            addr = translate(bus, above.cells(), addr, size).ok_or(ConsoleError::Untranslatable { bus: bus.name, addr })?;
        }
        Ok((addr, size))
    }

    /// The enabled PL031 real-time clock among the root's devices: its node and `reg`.
    pub fn pl031(&self) -> Option<(Node<'a>, u64, u64)> {
        let root = self.root();
        let rtc = root.children().find(|n| n.is_enabled() && n.compatible_with("arm,pl031"))?;
        let (base, size) = rtc.reg(root.cells()).next()?;
        Some((rtc, base, size))
    }

    /// The TPM behind a TIS over MMIO (`tcg,tpm-tis-mmio`): a device of the root, or of a bus
    /// on it whose `ranges` place it (QEMU puts its `tpm-tis-device` on the platform bus), or
    /// what a loader found in ACPI ([`TPM_TIS_CHOSEN`]). Its physical base and size.
    pub fn tpm_tis(&self) -> Option<(u64, u64)> {
        const COMPATIBLE: &str = "tcg,tpm-tis-mmio";
        if let Some(v) = self.find("/chosen").and_then(|c| c.property(TPM_TIS_CHOSEN)).filter(|v| v.len() == 16) {
            return Some((be_uint(&v[..8])?, be_uint(&v[8..])?));
        }
        let root = self.root();
        let cells = root.cells();
        for node in root.children().filter(|n| n.is_enabled()) {
            if node.compatible_with(COMPATIBLE) {
                return node.reg(cells).next();
            }
            if node.property("ranges").is_some() {
                if let Some(tpm) = node.children().find(|c| c.is_enabled() && c.compatible_with(COMPATIBLE)) {
                    let (offset, size) = tpm.reg(node.cells()).next()?;
                    return Some((translate(node, cells, offset, size)?, size));
                }
            }
        }
        None
    }

    /// Every `/memory` range.
    pub fn memory(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let root = self.root();
        let cells = root.cells();
        root.children().filter(|n| n.property_str("device_type") == Some("memory")).flat_map(move |n| n.reg(cells))
    }
}

/// `/chosen` property of a TIS TPM that ACPI describes (base and size, 64-bit big-endian each),
/// for the emulator: `efi-kexec` sets it on ACPI machines, whose device tree names no devices.
pub const TPM_TIS_CHOSEN: &str = "efi-emulator,tpm-tis";

/// How deep a console's node may lie.
const MAX_DEPTH: usize = 16;

/// Why `/chosen/stdout-path` names no console the emulator drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleError<'a> {
    NoStdoutPath,
    NotFound,
    NotPl011 { compatible: &'a str },
    NoReg,
    Untranslatable { bus: &'a str, addr: u64 },
}

impl core::fmt::Display for ConsoleError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoStdoutPath => write!(f, "/chosen has no stdout-path"),
            Self::NotFound => write!(f, "/chosen/stdout-path names no node of the tree"),
            Self::NotPl011 { compatible } => write!(f, "/chosen/stdout-path names a {compatible} UART, not a PL011 or SBSA UART"),
            Self::NoReg => write!(f, "the stdout-path UART has no reg"),
            Self::Untranslatable { bus, addr } => write!(f, "the stdout-path UART's address {addr:#x} does not translate through {bus}'s ranges"),
        }
    }
}

/// `addr` (with `size` bytes) in `bus`'s child address space, in its parent's (`above` the
/// parent's cell sizes): through `ranges` (empty: the same space; absent: none).
fn translate(bus: Node, above: Cells, addr: u64, size: u64) -> Option<u64> {
    let ranges = bus.property("ranges")?;
    if ranges.is_empty() {
        return Some(addr);
    }
    let own = bus.cells();
    if own.address > 2 || own.size > 2 || above.address > 2 {
        return None;
    }
    let entry = (own.address + above.address + own.size) * 4;
    let num = |b: &[u8]| b.chunks_exact(4).fold(0u64, |acc, w| (acc << 32) | u32::from_be_bytes(w.try_into().unwrap()) as u64);
    ranges.chunks_exact(entry).find_map(|r| {
        let (child, r) = r.split_at(own.address * 4);
        let (parent, len) = r.split_at(above.address * 4);
        let (child, parent, len) = (num(child), num(parent), num(len));
        let off = addr.checked_sub(child)?;
        (off.checked_add(size)? <= len).then(|| parent + off)
    })
}

fn align4(v: usize) -> usize {
    (v + 3) & !3
}

/// Reads a big-endian 32- or 64-bit property value.
/// Deletes property `name` of node `path` in place, as libfdt's `fdt_nop_property` does: its
/// token, header and value become FDT_NOP words, so the blob keeps its size and every other
/// offset. False when the tree or the property is not there.
pub fn nop_property(blob: &mut [u8], path: &str, name: &str) -> bool {
    let Some((start, end)) = Fdt::new(blob).ok().and_then(|f| f.find(path)).and_then(|n| n.property_span(name)) else {
        return false;
    };
    let base = be32(blob, 8).unwrap_or(0) as usize;
    for word in blob[base + start..base + end].chunks_exact_mut(4) {
        word.copy_from_slice(&NOP.to_be_bytes());
    }
    true
}

/// Overwrites the value of property `name` of node `path` in place with `value` as a
/// big-endian number of the property's own length (4 or 8 bytes). False when the tree or the
/// property is not there, or the value does not fit.
pub fn set_uint_in_place(blob: &mut [u8], path: &str, name: &str, value: u64) -> bool {
    let Some((start, _)) = Fdt::new(blob).ok().and_then(|f| f.find(path)).and_then(|n| n.property_span(name)) else {
        return false;
    };
    let base = be32(blob, 8).unwrap_or(0) as usize;
    // The property: its token, its length, its name's offset, then the value.
    let value_at = base + start + 12;
    match be32(blob, base + start + 4).unwrap_or(0) {
        8 => blob[value_at..value_at + 8].copy_from_slice(&value.to_be_bytes()),
        4 if value <= u32::MAX as u64 => blob[value_at..value_at + 4].copy_from_slice(&(value as u32).to_be_bytes()),
        _ => return false,
    }
    true
}

pub fn be_uint(v: &[u8]) -> Option<u64> {
    match v.len() {
        4 => Some(u32::from_be_bytes(v.try_into().unwrap()) as u64),
        8 => Some(u64::from_be_bytes(v.try_into().unwrap())),
        _ => None,
    }
}

/// `#address-cells` and `#size-cells` that apply to a node's children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    pub address: usize,
    pub size: usize,
}

/// One node of the tree.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    fdt: Fdt<'a>,
    pub name: &'a str,
    /// Offset of the first token after this node's FDT_BEGIN_NODE.
    body: usize,
}

impl<'a> Node<'a> {
    /// This node's properties, in order.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let fdt = self.fdt;
        let mut off = self.body;
        core::iter::from_fn(move || loop {
            let (tok, next) = fdt.token(off)?;
            match tok {
                NOP => off = next,
                PROP => {
                    let len = be32(fdt.structs, off + 4)? as usize;
                    let nameoff = be32(fdt.structs, off + 8)? as usize;
                    let value = &fdt.structs[off + 12..off + 12 + len];
                    let name_bytes = fdt.strings.get(nameoff..)?;
                    let name_len = name_bytes.iter().position(|&b| b == 0)?;
                    let name = core::str::from_utf8(&name_bytes[..name_len]).ok()?;
                    off = next;
                    return Some((name, value));
                }
                _ => return None,
            }
        })
    }

    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Where property `name` lies in the structure block: its FDT_PROP token to the next token.
    fn property_span(&self, name: &str) -> Option<(usize, usize)> {
        let fdt = self.fdt;
        let mut off = self.body;
        loop {
            let (tok, next) = fdt.token(off)?;
            match tok {
                NOP => {}
                PROP => {
                    let nameoff = be32(fdt.structs, off + 8)? as usize;
                    let rest = fdt.strings.get(nameoff..)?;
                    if rest.starts_with(name.as_bytes()) && rest.get(name.len()) == Some(&0) {
                        return Some((off, next));
                    }
                }
                _ => return None,
            }
            off = next;
        }
    }

    /// A string property, without its NUL.
    pub fn property_str(&self, name: &str) -> Option<&'a str> {
        let v = self.property(name)?;
        let v = v.split(|&b| b == 0).next()?;
        core::str::from_utf8(v).ok()
    }

    pub fn compatible_with(&self, prefix: &str) -> bool {
        self.property("compatible").is_some_and(|v| v.split(|&b| b == 0).any(|s| core::str::from_utf8(s).is_ok_and(|s| s.starts_with(prefix))))
    }

    /// The direct children of this node.
    pub fn children(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let fdt = self.fdt;
        let mut off = self.body;
        let mut depth = 0usize;
        core::iter::from_fn(move || loop {
            let (tok, next) = fdt.token(off)?;
            let here = off;
            off = next;
            match tok {
                BEGIN_NODE => {
                    depth += 1;
                    if depth == 1 {
                        return Some(Node { fdt, name: fdt.name_at(here), body: next });
                    }
                }
                END_NODE => {
                    if depth == 0 {
                        return None;
                    }
                    depth -= 1;
                }
                END => return None,
                _ => {}
            }
        })
    }

    /// The cell sizes this node gives its children (defaults 2 and 1, per the spec).
    pub fn cells(&self) -> Cells {
        let get = |n, default| self.property(n).and_then(be_uint).map(|v| v as usize).unwrap_or(default);
        Cells { address: get("#address-cells", 2), size: get("#size-cells", 1) }
    }

    /// The `reg` entries of this node, decoded with its parent's cell sizes.
    pub fn reg(&self, parent: Cells) -> impl Iterator<Item = (u64, u64)> + 'a {
        let entry = (parent.address + parent.size) * 4;
        let valid = parent.address <= 2 && parent.size <= 2 && entry > 0;
        let data = if valid { self.property("reg").unwrap_or(&[]) } else { &[] };
        data.chunks_exact(entry.max(1)).map(move |c| {
            let num = |b: &[u8]| b.chunks_exact(4).fold(0u64, |acc, w| (acc << 32) | u32::from_be_bytes(w.try_into().unwrap()) as u64);
            (num(&c[..parent.address * 4]), num(&c[parent.address * 4..]))
        })
    }

    /// False when `status` says the device is not there.
    pub fn is_enabled(&self) -> bool {
        matches!(self.property_str("status"), None | Some("okay") | Some("ok"))
    }
}

#[cfg(test)]
mod tests;
