//! The foundation every layer shares: the page size, physical extents, little-endian field
//! readers, and the raw view of a UEFI memory map. Imports nothing from the crate.

use r_efi::efi;

/// The only translation granule the emulator uses, and UEFI's page.
pub const PAGE_SIZE: u64 = 4096;

/// Bytes of an `EFI_MEMORY_DESCRIPTOR` (the stride may be larger).
pub const DESCRIPTOR_SIZE: usize = 40;

/// A half-open physical range `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Extent {
    pub start: u64,
    pub size: u64,
}

impl Extent {
    pub const fn new(start: u64, size: u64) -> Self {
        Extent { start, size }
    }
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
    pub const fn overlaps(&self, other: &Extent) -> bool {
        self.size != 0 && other.size != 0 && self.start < other.end() && other.start < self.end()
    }
    pub const fn contains(&self, inner: &Extent) -> bool {
        inner.start >= self.start && inner.end() <= self.end()
    }
    /// Grown to whole pages: how memory someone holds is kept.
    pub const fn pages_around(&self) -> Extent {
        let start = self.start & !(PAGE_SIZE - 1);
        Extent::new(start, (self.end().saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)) - start)
    }
    /// Shrunk to whole pages: how free memory is used.
    pub const fn pages_within(&self) -> Extent {
        let start = self.start.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        Extent::new(start, (self.end() & !(PAGE_SIZE - 1)).saturating_sub(start))
    }
}

/// Little-endian fields at byte offsets; `None` past the end. The one reader of on-disk and
/// in-memory layouts (PE headers, the blob header, the parameter block, memory maps).
pub fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// A memory map as bytes: raw `EFI_MEMORY_DESCRIPTOR`s at a producer-chosen stride (the
/// parameter block's, the firmware's, or GetMemoryMap's).
#[derive(Clone, Copy)]
pub struct Descriptors<'a> {
    bytes: &'a [u8],
    desc_size: usize,
}

impl<'a> Descriptors<'a> {
    pub fn new(bytes: &'a [u8], desc_size: usize) -> Self {
        Descriptors { bytes, desc_size }
    }
    pub fn len(&self) -> usize {
        self.bytes.len() / self.desc_size
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn desc_size(&self) -> usize {
        self.desc_size
    }
    pub fn get(&self, i: usize) -> efi::MemoryDescriptor {
        let d = &self.bytes[i * self.desc_size..][..DESCRIPTOR_SIZE];
        let at = |o| le_u64(d, o).unwrap_or_default();
        efi::MemoryDescriptor { r#type: le_u32(d, 0).unwrap_or_default(), physical_start: at(8), virtual_start: at(16), number_of_pages: at(24), attribute: at(32) }
    }
    pub fn iter(&self) -> impl Iterator<Item = efi::MemoryDescriptor> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
    /// True when `range` is covered, without a gap, by descriptors whose type passes `pred`.
    pub fn covers(&self, range: Extent, pred: impl Fn(u32) -> bool) -> bool {
        let mut cursor = range.start;
        while cursor < range.end() {
            let next = self.iter().filter(|d| pred(d.r#type)).map(|d| desc_extent(&d)).find(|e| e.start <= cursor && cursor < e.end());
            match next {
                Some(e) => cursor = e.end(),
                None => return false,
            }
        }
        true
    }
}

/// Writes `d` as the 40 bytes of an `EFI_MEMORY_DESCRIPTOR` (the reverse of [`Descriptors::get`]).
pub fn write_desc(out: &mut [u8], d: &efi::MemoryDescriptor) {
    out[0..4].copy_from_slice(&d.r#type.to_le_bytes());
    out[4..8].fill(0);
    out[8..16].copy_from_slice(&d.physical_start.to_le_bytes());
    out[16..24].copy_from_slice(&d.virtual_start.to_le_bytes());
    out[24..32].copy_from_slice(&d.number_of_pages.to_le_bytes());
    out[32..40].copy_from_slice(&d.attribute.to_le_bytes());
}

/// `whole` without the holes (in any order, overlapping or not): the pieces left, in order.
/// Allocates nothing, so the emulator can use it before it has a heap.
pub fn split<'h, H: Iterator<Item = Extent> + 'h>(whole: Extent, holes: impl Fn() -> H + 'h) -> impl Iterator<Item = Extent> + 'h {
    let mut cursor = whole.start;
    core::iter::from_fn(move || {
        while cursor < whole.end() {
            // The lowest hole that covers or follows the cursor inside `whole`.
            match holes().filter(|h| h.end() > cursor && h.start < whole.end()).min_by_key(|h| h.start) {
                Some(h) if h.start <= cursor => cursor = h.end(),
                Some(h) => {
                    let piece = Extent::new(cursor, h.start - cursor);
                    cursor = h.end();
                    return Some(piece);
                }
                None => {
                    let piece = Extent::new(cursor, whole.end() - cursor);
                    cursor = whole.end();
                    return Some(piece);
                }
            }
        }
        None
    })
}

/// Pairs of hex digits, either case, as bytes (none for empty text; `None` for an odd count or
/// a non-digit): device-path text, PCR values as sysfs shows them.
pub fn hex_bytes(text: &str) -> Option<alloc::vec::Vec<u8>> {
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// The physical range a descriptor covers.
pub fn desc_extent(d: &efi::MemoryDescriptor) -> Extent {
    Extent::new(d.physical_start, d.number_of_pages.saturating_mul(PAGE_SIZE))
}

/// Sorts `items` by `key`, unstable, in place: a heapsort whose one copy in the blob serves every
/// element type (the standard sort puts a pattern-defeating quicksort per type in it, about
/// 7 KB), O(n log n) for the memory maps of hundreds of descriptors.
pub fn sort_by_key<T, K: Fn(&T) -> u64>(items: &mut [T], key: K) {
    heapsort(&mut ByKey { items, key });
}

/// What the heapsort needs of a sequence, so it is compiled once.
trait Sortable {
    fn len(&self) -> usize;
    fn less(&self, i: usize, j: usize) -> bool;
    fn swap(&mut self, i: usize, j: usize);
}

struct ByKey<'a, T, K> {
    items: &'a mut [T],
    key: K,
}

impl<T, K: Fn(&T) -> u64> Sortable for ByKey<'_, T, K> {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn less(&self, i: usize, j: usize) -> bool {
        (self.key)(&self.items[i]) < (self.key)(&self.items[j])
    }
    fn swap(&mut self, i: usize, j: usize) {
        self.items.swap(i, j)
    }
}

fn heapsort(s: &mut dyn Sortable) {
    // Moves the element at `root` down until it is no smaller than its children (heap of `len`).
    fn sift_down(s: &mut dyn Sortable, mut root: usize, len: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= len {
                return;
            }
            if child + 1 < len && s.less(child, child + 1) {
                child += 1;
            }
            if !s.less(root, child) {
                return;
            }
            s.swap(root, child);
            root = child;
        }
    }
    let n = s.len();
    for root in (0..n / 2).rev() {
        sift_down(s, root, n);
    }
    for end in (1..n).rev() {
        s.swap(0, end);
        sift_down(s, 0, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_round_to_whole_pages() {
        let e = Extent::new(0x1800, 0x2000);
        assert_eq!(e.pages_around(), Extent::new(0x1000, 0x3000));
        assert_eq!(e.pages_within(), Extent::new(0x2000, 0x1000));
        assert_eq!(Extent::new(0x1800, 0x100).pages_within().size, 0, "less than a page holds no whole page");
        assert_eq!(Extent::new(0x4000, 0x1000).pages_around(), Extent::new(0x4000, 0x1000));
    }

    #[test]
    fn sort_by_key_orders_every_shape() {
        // Every length up to 40 (heaps of every depth), with duplicates, sorted and reversed input.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in 0..40usize {
            for shape in 0..4 {
                let mut v: std::vec::Vec<(u64, usize)> = (0..n)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let k = match shape {
                            0 => seed % 8,
                            1 => i as u64,
                            2 => (n - i) as u64,
                            _ => seed,
                        };
                        (k, i)
                    })
                    .collect();
                let mut expected = v.clone();
                expected.sort_by_key(|e| e.0);
                sort_by_key(&mut v, |e| e.0);
                assert_eq!(v.iter().map(|e| e.0).collect::<std::vec::Vec<_>>(), expected.iter().map(|e| e.0).collect::<std::vec::Vec<_>>(), "n {n} shape {shape}");
                let mut ids: std::vec::Vec<_> = v.iter().map(|e| e.1).collect();
                ids.sort();
                assert!(ids.iter().copied().eq(0..n), "n {n}: an element was lost or doubled");
            }
        }
    }
}
