//! A read-only FAT12/16/32 reader over a disk image in memory: the EFI system partition the
//! loader hands over. Long names (VFAT) are read; names compare case-insensitively, as
//! firmware's FAT driver does. The image is hostile input: every field is checked before use,
//! cluster chains are bounded by the cluster count (no loops), and errors name the field.

use super::collation;
use crate::mem::{le_u16, le_u32};
use alloc::vec::Vec;
use core::fmt;

/// A refused image: the field, its value, and what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatError {
    pub field: &'static str,
    pub value: u64,
    pub expected: &'static str,
}

impl fmt::Display for FatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FAT image: {} = {:#x}, expected {}", self.field, self.value, self.expected)
    }
}

fn bad<T>(field: &'static str, value: impl Into<u64>, expected: &'static str) -> Result<T, FatError> {
    Err(FatError { field, value: value.into(), expected })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_HIDDEN: u8 = 0x02;
pub const ATTR_SYSTEM: u8 = 0x04;
pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LONG_NAME: u8 = 0x0f;

/// Date and time fields of a directory entry (FAT's packed format).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub date: u16,
    pub time: u16,
}

impl Stamp {
    /// (year, month, day, hour, minute, second).
    pub fn fields(self) -> (u16, u8, u8, u8, u8, u8) {
        (
            1980 + (self.date >> 9),
            ((self.date >> 5) & 0xf) as u8,
            (self.date & 0x1f) as u8,
            (self.time >> 11) as u8,
            ((self.time >> 5) & 0x3f) as u8,
            ((self.time & 0x1f) * 2) as u8,
        )
    }
}

/// A file or directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The long name when there is one, else the short name (NT lower-case flags applied).
    pub name: Vec<u16>,
    pub attr: u8,
    pub cluster: u32,
    pub size: u32,
    pub created: Stamp,
    pub modified: Stamp,
    pub accessed: Stamp,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIRECTORY != 0
    }
}

/// Where a directory's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// FAT12/16's fixed root directory: byte offset and entry count.
    FixedRoot(usize, usize),
    Chain(u32),
}

/// Where a reader stands in a cluster chain: the `index`-th cluster of the chain that starts
/// at `first` is `cluster`. A file or directory read continues from there instead of walking
/// the chain from its start each time (quadratic in its clusters). The default stands nowhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainCursor {
    first: u32,
    index: u64,
    cluster: u32,
}

/// One raw directory record: its index in the directory, where the chain stood, its 32 bytes.
type RawEntry<'a> = (u64, ChainCursor, &'a [u8]);

#[derive(Debug)]
pub struct Fat<'a> {
    disk: &'a [u8],
    pub kind: Kind,
    pub bytes_per_sector: usize,
    pub cluster_size: usize,
    fat_start: usize,
    data_start: usize,
    clusters: u32,
    root: Dir,
}

/// Where the next read of a directory starts: its raw record index, and where the chain stood.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirPlace {
    next: u64,
    cursor: ChainCursor,
}

/// Most directory entries one directory may have (2^16 × 32 bytes, FAT's own limit).
const MAX_DIR_ENTRIES: usize = 65_536;

impl<'a> Fat<'a> {
    /// The FAT volume in `disk`: a bare file system, or the first EFI system (or FAT) partition
    /// of a GPT or MBR disk.
    pub fn new(disk: &'a [u8]) -> Result<Self, FatError> {
        Self::volume(volume_bytes(disk)?)
    }

    fn volume(disk: &'a [u8]) -> Result<Self, FatError> {
        let field = |at: usize, name| le_u16(disk, at).ok_or(FatError { field: name, value: disk.len() as u64, expected: "a boot sector of 512 bytes" });
        if disk.get(510..512) != Some(&[0x55, 0xaa]) {
            return bad("boot sector signature", field(510, "boot sector signature")?, "0xaa55");
        }
        let bps = field(11, "BytesPerSector")? as usize;
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return bad("BytesPerSector", bps as u64, "512, 1024, 2048 or 4096");
        }
        let spc = disk[13] as usize;
        if spc == 0 || !spc.is_power_of_two() {
            return bad("SectorsPerCluster", spc as u64, "a power of two");
        }
        let reserved = field(14, "ReservedSectors")? as usize;
        let fats = disk[16] as usize;
        if reserved == 0 || fats == 0 {
            return bad("ReservedSectors/NumFATs", (reserved * 256 + fats) as u64, "both non-zero");
        }
        let root_entries = field(17, "RootEntryCount")? as usize;
        let total = match field(19, "TotalSectors16")? {
            0 => le_u32(disk, 32).unwrap_or(0) as usize,
            n => n as usize,
        };
        let fat_size = match field(22, "FATSize16")? {
            0 => le_u32(disk, 36).unwrap_or(0) as usize,
            n => n as usize,
        };
        if fat_size == 0 {
            return bad("FATSize", 0u64, "non-zero");
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let first_data = reserved + fats * fat_size + root_sectors;
        if total <= first_data || total.saturating_mul(bps) > disk.len() {
            return bad("TotalSectors", total as u64, "past the FATs and root directory, inside the image");
        }
        let clusters = ((total - first_data) / spc) as u32;
        let kind = match clusters {
            0..4085 => Kind::Fat12,
            4085..65525 => Kind::Fat16,
            _ => Kind::Fat32,
        };
        // The FAT must hold an entry for every cluster.
        let fat_bits = match kind {
            Kind::Fat12 => 12,
            Kind::Fat16 => 16,
            Kind::Fat32 => 32,
        };
        if (clusters as usize + 2) * fat_bits > fat_size * bps * 8 {
            return bad("FATSize", fat_size as u64, "room for an entry for every cluster");
        }
        let root = match kind {
            Kind::Fat32 => Dir::Chain(le_u32(disk, 44).unwrap_or(0)),
            _ => Dir::FixedRoot((reserved + fats * fat_size) * bps, root_entries),
        };
        let fat = Fat { disk, kind, bytes_per_sector: bps, cluster_size: spc * bps, fat_start: reserved * bps, data_start: first_data * bps, clusters, root };
        if let Dir::Chain(c) = root {
            if !fat.is_data_cluster(c) {
                return bad("RootCluster", c, "a data cluster");
            }
        }
        Ok(fat)
    }

    fn is_data_cluster(&self, c: u32) -> bool {
        c >= 2 && c < self.clusters + 2
    }

    /// The cluster after `c` in its chain (`None` at the end, or for a bad or free entry).
    fn next(&self, c: u32) -> Option<u32> {
        self.fat_entry(c).filter(|&v| self.is_data_cluster(v))
    }

    /// The clusters of a chain, at most as many as the volume has (a loop ends there).
    fn chain(&self, first: u32) -> impl Iterator<Item = u32> + '_ {
        let mut c = self.is_data_cluster(first).then_some(first);
        let mut left = self.clusters;
        core::iter::from_fn(move || {
            let here = c?;
            left = left.checked_sub(1)?;
            c = self.next(here);
            Some(here)
        })
    }

    /// The clusters of the chain starting at `first`, numbered, from the `index`-th on: walked
    /// from `cursor` when it stands in that chain at or before `index`, else from the start.
    fn chain_from(&self, first: u32, index: u64, cursor: ChainCursor) -> impl Iterator<Item = (u64, u32)> + '_ {
        let (from, start) = if cursor.first == first && cursor.cluster != 0 && cursor.index <= index { (cursor.index, cursor.cluster) } else { (0, first) };
        // No chain is longer than the volume: a looping one ends at the same index from any start.
        let longest = u64::from(self.clusters);
        self.chain(start).zip(from..).map(|(c, i)| (i, c)).take_while(move |&(i, _)| i < longest).skip_while(move |&(i, _)| i < index)
    }

    fn cluster_bytes(&self, c: u32) -> Option<&'a [u8]> {
        let at = self.data_start + (c as usize - 2) * self.cluster_size;
        self.disk.get(at..at + self.cluster_size)
    }

    /// The raw 32-byte records of a directory from the `start`-th on (`cursor`: where an earlier
    /// read of it stood), at most [`MAX_DIR_ENTRIES`].
    fn raw_entries(&self, dir: Dir, start: u64, cursor: ChainCursor) -> impl Iterator<Item = RawEntry<'a>> + '_ {
        let fixed = match dir {
            Dir::FixedRoot(at, n) => self.disk.get(at..at + n * 32),
            Dir::Chain(_) => None,
        };
        let fixed = fixed.into_iter().flat_map(|b| b.chunks_exact(32)).zip(0u64..).map(|(e, i)| (i, ChainCursor::default(), e)).skip(start as usize);
        let per_cluster = (self.cluster_size / 32) as u64;
        let chained = match dir {
            Dir::Chain(first) => Some(
                self.chain_from(first, start / per_cluster, cursor)
                    .flat_map(move |(index, cluster)| {
                        let here = ChainCursor { first, index, cluster };
                        self.cluster_bytes(cluster).into_iter().flat_map(|b| b.chunks_exact(32)).zip(index * per_cluster..).map(move |(e, i)| (i, here, e))
                    })
                    .skip_while(move |&(i, ..)| i < start),
            ),
            Dir::FixedRoot(..) => None,
        };
        fixed.chain(chained.into_iter().flatten()).take_while(|&(i, ..)| i < MAX_DIR_ENTRIES as u64)
    }

    /// The entries of a directory (not `.` and `..`, not the volume label), in order.
    fn entries(&self, dir: Dir) -> impl Iterator<Item = Entry> + '_ {
        self.entries_from(dir, 0, ChainCursor::default()).map(|(e, _)| e)
    }

    /// The entries of a directory from its `start`-th raw record (`cursor`: where an earlier
    /// read stood), each with where the next read starts: [`DirPlace`].
    fn entries_from(&self, dir: Dir, start: u64, cursor: ChainCursor) -> impl Iterator<Item = (Entry, DirPlace)> + '_ {
        let mut raw = self.raw_entries(dir, start, cursor);
        let mut long: Vec<u16> = Vec::new();
        let mut long_sum = None;
        core::iter::from_fn(move || loop {
            let (index, cursor, e) = raw.next()?;
            match e[0] {
                0 => return None,
                0xe5 => {
                    long.clear();
                    continue;
                }
                _ => {}
            }
            let attr = e[11];
            if attr & 0x3f == ATTR_LONG_NAME {
                // Long-name pieces come last first; each carries 13 units.
                if e[0] & 0x40 != 0 {
                    long.clear();
                    long_sum = None;
                }
                // A name has at most 20 pieces (255 units): a longer run is no name, and its
                // pieces are not gathered (each would copy all the others: quadratic).
                if long.len() > MAX_LONG_NAME || (e[0] & 0x40 == 0 && long_sum.is_none()) {
                    long.clear();
                    long_sum = None;
                    continue;
                }
                let mut piece: Vec<u16> = Vec::with_capacity(13);
                for at in (1..11).step_by(2).chain((14..26).step_by(2)).chain((28..32).step_by(2)) {
                    piece.push(u16::from_le_bytes([e[at], e[at + 1]]));
                }
                let end = piece.iter().position(|&u| u == 0 || u == 0xffff).unwrap_or(13);
                piece.truncate(end);
                piece.extend_from_slice(&long);
                long = piece;
                long_sum = Some(e[13]);
                continue;
            }
            let short = &e[..11];
            let name = match long_sum {
                Some(sum) if sum == short_checksum(short) && !long.is_empty() => core::mem::take(&mut long),
                _ => short_name(short, e[12]),
            };
            long.clear();
            long_sum = None;
            if attr & ATTR_VOLUME_ID != 0 || short == b".          " || short == b"..         " {
                continue;
            }
            let cluster = ((le_u16(e, 20).unwrap_or(0) as u32) << 16) | le_u16(e, 26).unwrap_or(0) as u32;
            let stamp = |d: usize, t: Option<usize>| Stamp { date: le_u16(e, d).unwrap_or(0), time: t.map_or(0, |t| le_u16(e, t).unwrap_or(0)) };
            let entry = Entry { name, attr, cluster, size: le_u32(e, 28).unwrap_or(0), created: stamp(16, Some(14)), modified: stamp(24, Some(22)), accessed: stamp(18, None) };
            return Some((entry, DirPlace { next: index + 1, cursor }));
        })
    }

    /// The root directory, as an entry.
    pub fn root(&self) -> Entry {
        let cluster = match self.root {
            Dir::Chain(c) => c,
            Dir::FixedRoot(..) => 0,
        };
        Entry { name: Vec::new(), attr: ATTR_DIRECTORY, cluster, size: 0, created: Stamp::default(), modified: Stamp::default(), accessed: Stamp::default() }
    }

    fn dir_of(&self, e: &Entry) -> Dir {
        // A directory entry with cluster 0 is the root (`..` of a top-level directory).
        if e.cluster == 0 {
            self.root
        } else {
            Dir::Chain(e.cluster)
        }
    }

    /// The next entry of directory `dir` from `place` (where the previous one left off), and the
    /// place after it; `None` at the end (or for a file).
    pub fn read_dir_at(&self, dir: &Entry, place: DirPlace) -> Option<(Entry, DirPlace)> {
        let d = dir.is_dir().then(|| self.dir_of(dir))?;
        self.entries_from(d, place.next, place.cursor).next()
    }

    /// A directory's entries (empty for a file).
    pub fn read_dir(&self, dir: &Entry) -> impl Iterator<Item = Entry> + '_ {
        let d = dir.is_dir().then(|| self.dir_of(dir));
        d.into_iter().flat_map(|d| self.entries(d))
    }

    /// The entry `name` in `dir` (case-insensitive); `.` is the directory itself.
    pub fn lookup(&self, dir: &Entry, name: &[u16]) -> Option<Entry> {
        if name == [b'.' as u16] {
            return Some(dir.clone());
        }
        self.read_dir(dir).find(|e| collation::stri_coll(&e.name, name).is_eq())
    }

    /// The entry at `path` (components separated by `\` or `/`, from the root; `..` steps up).
    pub fn open(&self, path: &[u16]) -> Option<Entry> {
        let mut stack = alloc::vec![self.root()];
        for part in path.split(|&u| u == b'\\' as u16 || u == b'/' as u16).filter(|p| !p.is_empty()) {
            if part == [b'.' as u16, b'.' as u16] {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let next = self.lookup(stack.last()?, part)?;
            stack.push(next);
        }
        stack.pop()
    }

    /// Reads a file's bytes from `offset` into `buf`; the count read (0 at the end).
    pub fn read(&self, file: &Entry, offset: u64, buf: &mut [u8]) -> usize {
        self.read_at(file, offset, buf, &mut ChainCursor::default())
    }

    /// [`Fat::read`] for a reader that keeps its place: starts from `cursor` when it can, and
    /// leaves it at the last cluster read.
    pub fn read_at(&self, file: &Entry, offset: u64, buf: &mut [u8], cursor: &mut ChainCursor) -> usize {
        let size = file.size as u64;
        if file.is_dir() || offset >= size {
            return 0;
        }
        let want = buf.len().min((size - offset) as usize);
        let cs = self.cluster_size as u64;
        let mut done = 0;
        for (i, c) in self.chain_from(file.cluster, offset / cs, *cursor) {
            let Some(bytes) = self.cluster_bytes(c) else { break };
            *cursor = ChainCursor { first: file.cluster, index: i, cluster: c };
            let from = if i == offset / cs { (offset % cs) as usize } else { 0 };
            let n = (bytes.len() - from).min(want - done);
            buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
            done += n;
            if done == want {
                break;
            }
        }
        done
    }

    /// The volume label from the root directory, if there is one.
    pub fn label(&self) -> Vec<u16> {
        self.raw_entries(self.root, 0, ChainCursor::default())
            .map(|(.., e)| e)
            .take_while(|e| e[0] != 0)
            .find(|e| e[0] != 0xe5 && e[11] & 0x3f == ATTR_VOLUME_ID)
            .map(|e| short_name(&e[..11], 0))
            .unwrap_or_default()
    }

    /// Bytes of the volume, and of its free clusters.
    pub fn space(&self) -> (u64, u64) {
        let free = (2..self.clusters + 2).filter(|&c| self.fat_entry(c) == Some(0)).count() as u64;
        (self.clusters as u64 * self.cluster_size as u64, free * self.cluster_size as u64)
    }

    /// The FAT's entry for cluster `c`.
    fn fat_entry(&self, c: u32) -> Option<u32> {
        let n = c as usize;
        Some(match self.kind {
            Kind::Fat12 => {
                let raw = le_u16(self.disk, self.fat_start + n + n / 2)? as u32;
                if n % 2 == 1 {
                    raw >> 4
                } else {
                    raw & 0xfff
                }
            }
            Kind::Fat16 => le_u16(self.disk, self.fat_start + 2 * n)? as u32,
            Kind::Fat32 => le_u32(self.disk, self.fat_start + 4 * n)? & 0x0fff_ffff,
        })
    }
}

/// The longest long name, in UTF-16 units (20 directory entries of 13).
const MAX_LONG_NAME: usize = 255;

/// The checksum a long name's pieces carry of their short name.
fn short_checksum(short: &[u8]) -> u8 {
    short.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// `NAME.EXT` from the 11-byte short name, lower-cased where the NT flags say (0x08 base,
/// 0x10 extension).
fn short_name(short: &[u8], nt_flags: u8) -> Vec<u16> {
    let part = |bytes: &[u8], lower: bool| -> Vec<u16> {
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        bytes[..end].iter().enumerate().map(|(i, &b)| if i == 0 && b == 0x05 { 0xe5 } else { b }).map(|b| if lower { b.to_ascii_lowercase() } else { b } as u16).collect()
    };
    let mut name = part(&short[..8], nt_flags & 0x08 != 0);
    let ext = part(&short[8..11], nt_flags & 0x10 != 0);
    if !ext.is_empty() {
        name.push(b'.' as u16);
        name.extend(ext);
    }
    name
}

/// Where the FAT volume starts: 0 for a bare file system, else the first EFI system partition
/// (GPT) or FAT/ESP partition (MBR).
/// The partition a FAT volume was found in: what a `HD()` device path node says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based: the GPT entry's index + 1, or the MBR slot's.
    pub number: u32,
    /// Byte offset and size in the disk image.
    pub start: u64,
    pub size: u64,
    pub signature: Signature,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// The GPT entry's unique partition GUID (bytes as on disk).
    Gpt([u8; 16]),
    /// The MBR's disk signature.
    Mbr(u32),
}

/// The bytes of the volume: the ESP partition's own (never the disk past its end), or the
/// whole image for a bare file system.
fn volume_bytes(disk: &[u8]) -> Result<&[u8], FatError> {
    Ok(match partition(disk)? {
        Some(p) => &disk[p.start as usize..(p.start + p.size) as usize],
        None => disk,
    })
}

/// The partition holding the ESP: the first EFI system partition of a GPT disk, the first FAT
/// (or ESP) partition of an MBR disk; `None` for a bare file system.
pub fn partition(disk: &[u8]) -> Result<Option<Partition>, FatError> {
    const ESP: [u8; 16] = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    // Where a partition lies in the image, cut to it; one without a block is refused (BlockIo's
    // LastBlock would be 2^64 - 1).
    let inside = |first: u64, blocks: u64, what: &'static str| -> Result<(u64, u64), FatError> {
        let start = first.checked_mul(512).filter(|&at| at < disk.len() as u64);
        let Some(start) = start else { return bad(what, first, "inside the image") };
        if blocks == 0 {
            return bad(what, first, "a partition of at least one block");
        }
        Ok((start, blocks.saturating_mul(512).min(disk.len() as u64 - start)))
    };
    // GPT: the header at LBA 1 (512-byte sectors).
    if disk.get(512..520) == Some(b"EFI PART") {
        let entries = le_u32(disk, 512 + 72).unwrap_or(0) as usize * 512;
        let count = le_u32(disk, 512 + 80).unwrap_or(0).min(256) as usize;
        let size = le_u32(disk, 512 + 84).unwrap_or(0) as usize;
        if size < 128 {
            return bad("GPT SizeOfPartitionEntry", size as u64, "at least 128");
        }
        for i in 0..count {
            let e = disk.get(entries + i * size..entries + i * size + 128).unwrap_or(&[]);
            if e.len() == 128 && e[..16] == ESP {
                let first = crate::mem::le_u64(e, 32).unwrap_or(0);
                let last = crate::mem::le_u64(e, 40).unwrap_or(0);
                // An EndingLBA below the start is no partition; u64::MAX is cut to the image.
                let blocks = if last < first { 0 } else { (last - first).saturating_add(1) };
                let (start, size) = inside(first, blocks, "GPT ESP StartingLBA")?;
                let mut guid = [0u8; 16];
                guid.copy_from_slice(&e[16..32]);
                return Ok(Some(Partition { number: i as u32 + 1, start, size, signature: Signature::Gpt(guid) }));
            }
        }
        return bad("GPT partition entries", count as u64, "an EFI system partition");
    }
    // A boot sector with a BPB is a bare file system; otherwise look for MBR partitions.
    let bare = matches!(disk.first(), Some(0xeb | 0xe9)) && le_u16(disk, 11).is_some_and(|b| matches!(b, 512 | 1024 | 2048 | 4096));
    if bare || disk.get(510..512) != Some(&[0x55, 0xaa]) {
        return Ok(None);
    }
    for i in 0..4 {
        let e = &disk[446 + i * 16..462 + i * 16];
        if matches!(e[4], 0xef | 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e) {
            let first = le_u32(e, 8).unwrap_or(0) as u64;
            let (start, size) = inside(first, le_u32(e, 12).unwrap_or(0) as u64, "MBR partition start")?;
            return Ok(Some(Partition { number: i as u32 + 1, start, size, signature: Signature::Mbr(le_u32(disk, 440).unwrap_or(0)) }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
