//! The EFI system partition the loader placed in memory, served as firmware serves a disk: a
//! handle with a `RamDisk` device path, BlockIo and DiskIo over the image, for a GPT or MBR
//! image a child handle for the ESP partition (`RamDisk/HD(..)`), and a read-only
//! SimpleFileSystem on the FAT volume (bare, or in that partition). Writes are
//! refused with EFI_WRITE_PROTECTED: the image is the loader's, and nothing would keep them.

use crate::efi::device_path;
use crate::efi::fat::{ChainCursor, DirPlace, Entry, Fat, Stamp};
use crate::services::*;
use core::ffi::c_void;
use efi::protocols::{block_io, disk_io, file, simple_file_system as sfs};

/// The one media the RAM disk ever has.
const MEDIA_ID: u32 = 1;
const BLOCK: u64 = 512;

/// The image, as the loader placed it (memory no one else writes while boot services run).
/// This protocol's part of the core.
#[derive(Default)]
pub struct EspState {
    /// The image (start, size) and the handle of its volume, when the loader passed one.
    pub image: Option<(u64, u64)>,
    pub handle: Option<usize>,
    /// The partition's child handle's region and protocol instances, for GPT/MBR images.
    pub partition: Option<EspPartition>,
    /// The EFI_FILE_PROTOCOL instances handed out and not closed.
    pub open_files: Vec<usize>,
}

fn image(c: &Core) -> Result<&'static [u8], EfiError> {
    let (start, size) = c.esp.image.ok_or(EfiError::NotFound)?;
    // SAFETY: `esp` is set only from a validated range of loader-placed RAM that the memory
    // map keeps out of every allocation, and nothing writes it.
    Ok(unsafe { core::slice::from_raw_parts(start as *const u8, size as usize) })
}

fn volume(c: &Core) -> Result<Fat<'static>, EfiError> {
    Fat::new(image(c)?).map_err(|e| {
        log::warn!("ESP: {e}");
        EfiError::VolumeCorrupted
    })
}

/// An open file or directory: the protocol first, as payloads hold a pointer to it.
#[repr(C)]
struct OpenFile {
    protocol: file::Protocol,
    /// Its path from the root, components separated by `\`.
    path: Vec<u16>,
    entry: Entry,
    /// Files: the byte offset.
    position: u64,
    /// Where the reads stand: a file's cluster, a directory's next record.
    cursor: ChainCursor,
    place: DirPlace,
}

/// The open file `this` is, if it is one the emulator handed out and has not closed.
fn open_file<'a>(c: &Core, this: *mut file::Protocol) -> Result<&'a mut OpenFile, EfiError> {
    if this.is_null() || !c.esp.open_files.contains(&(this as usize)) {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: a live OpenFile from `new_file` (registered, not yet closed); one CPU.
    Ok(unsafe { &mut *(this as *mut OpenFile) })
}

fn new_file(c: &mut Core, path: Vec<u16>, entry: Entry) -> *mut file::Protocol {
    let protocol = file::Protocol {
        revision: file::REVISION,
        open: open::entry,
        close: close::entry,
        delete: delete::entry,
        read: read_file::entry,
        write: write::entry,
        get_position: get_position::entry,
        set_position: set_position::entry,
        get_info: get_info::entry,
        set_info: set_info::entry,
        flush: flush::entry,
        open_ex: open_ex::entry,
        read_ex: io_ex::entry,
        write_ex: io_ex::entry,
        flush_ex: io_ex::entry,
    };
    let p = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(OpenFile { protocol, path, entry, position: 0, cursor: ChainCursor::default(), place: DirPlace::default() }))
        as *mut file::Protocol;
    c.esp.open_files.push(p as usize);
    p
}

fn close_file(c: &mut Core, this: *mut file::Protocol) -> Result<(), EfiError> {
    open_file(c, this)?;
    c.esp.open_files.retain(|&p| p != this as usize);
    // SAFETY: registered by `new_file` from Box::into_raw, and unregistered just now: freed once.
    drop(unsafe { alloc::boxed::Box::from_raw(this as *mut OpenFile) });
    Ok(())
}

fn time(s: Stamp) -> efi::Time {
    let (year, month, day, hour, minute, second) = s.fields();
    efi::Time { year, month, day, hour, minute, second, pad1: 0, nanosecond: 0, timezone: crate::efi::time::UNSPECIFIED_TIMEZONE, daylight: 0, pad2: 0 }
}

/// EFI_FILE_INFO of an entry, as bytes.
fn file_info(e: &Entry, cluster_size: u64) -> Vec<u8> {
    let size = core::mem::size_of::<file::Info>() + (e.name.len() + 1) * 2;
    let info = file::Info {
        size: size as u64,
        file_size: e.size as u64,
        physical_size: (e.size as u64).next_multiple_of(cluster_size),
        create_time: time(e.created),
        last_access_time: time(Stamp { date: e.accessed.date, time: 0 }),
        modification_time: time(e.modified),
        attribute: e.attr as u64 & file::VALID_ATTR,
        file_name: [],
    };
    let mut v = alloc::vec![0u8; size];
    // SAFETY: `v` holds at least size_of::<Info>() bytes; written unaligned.
    unsafe { (v.as_mut_ptr() as *mut file::Info).write_unaligned(info) };
    let at = core::mem::size_of::<file::Info>();
    for (i, u) in e.name.iter().enumerate() {
        v[at + 2 * i..at + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    v
}

/// EFI_FILE_SYSTEM_INFO, as bytes.
fn system_info(fat: &Fat) -> Vec<u8> {
    const LABEL_AT: usize = 36;
    let label = fat.label();
    let mut v = alloc::vec![0u8; LABEL_AT + (label.len() + 1) * 2];
    let (total, free) = fat.space();
    let size = v.len() as u64;
    v[0..8].copy_from_slice(&size.to_le_bytes());
    v[8] = 1; // ReadOnly
    v[16..24].copy_from_slice(&total.to_le_bytes());
    v[24..32].copy_from_slice(&free.to_le_bytes());
    v[32..36].copy_from_slice(&(fat.cluster_size as u32).to_le_bytes());
    for (i, u) in label.iter().enumerate() {
        v[LABEL_AT + 2 * i..LABEL_AT + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    v
}

/// Copies `bytes` to the payload's sized buffer (the size probe convention).
///
/// # Safety
/// `size` and `buffer` are the payload's in/out size and its buffer of that many bytes.
unsafe fn give(size: *mut usize, buffer: *mut c_void, bytes: &[u8]) -> Result<(), EfiError> {
    // SAFETY: per the contract.
    unsafe {
        sized_buffer(size, bytes.len())?;
        if buffer.is_null() {
            return Err(EfiError::InvalidParameter);
        }
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, bytes.len());
    }
    Ok(())
}

efiapi! {
    fn open_volume(this: *mut sfs::Protocol, root: *mut *mut file::Protocol) -> Status {
        guarded(|| {
            if this.is_null() || root.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let f = with_core(|c| {
                let fat = volume(c)?;
                Ok::<_, EfiError>(new_file(c, Vec::new(), fat.root()))
            })?;
            // SAFETY: the payload's out-argument.
            unsafe { out(root, f) }
        })
    }

    fn open(this: *mut file::Protocol, new: *mut *mut file::Protocol, name: *mut u16, mode: u64, attributes: u64) -> Status {
        guarded_growing(|| {
            let _ = attributes;
            // SAFETY: the payload's file name.
            let name = unsafe { ucs2_arg(name)? };
            if new.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            match mode {
                file::MODE_READ => {}
                m if m == file::MODE_READ | file::MODE_WRITE || m == file::MODE_READ | file::MODE_WRITE | file::MODE_CREATE => return Err(EfiError::WriteProtected),
                _ => return Err(EfiError::InvalidParameter),
            }
            let f = with_core(|c| {
                let base = open_file(c, this)?;
                // `\` starts from the root; anything else from this directory.
                let sep = b'\\' as u16;
                let mut path = if name.first() == Some(&sep) { Vec::new() } else { base.path.clone() };
                if !path.is_empty() {
                    path.push(sep);
                }
                path.extend_from_slice(name);
                if !base.entry.is_dir() && name.first() != Some(&sep) {
                    return Err(EfiError::NotFound);
                }
                let entry = volume(c)?.open(&path).ok_or(EfiError::NotFound)?;
                Ok(new_file(c, path, entry))
            })?;
            // SAFETY: the payload's out-argument.
            unsafe { out(new, f) }
        })
    }

    fn close(this: *mut file::Protocol) -> Status {
        guarded(|| with_core(|c| close_file(c, this)))
    }

    fn delete(this: *mut file::Protocol) -> Status {
        // Delete closes the handle in any case; nothing is deleted from a read-only volume.
        match guarded(|| with_core(|c| close_file(c, this))) {
            Status::SUCCESS => Status::WARN_DELETE_FAILURE,
            s => s,
        }
    }

    fn read_file(this: *mut file::Protocol, size: *mut usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            with_core(|c| {
                let f = open_file(c, this)?;
                let fat = volume(c)?;
                if f.entry.is_dir() {
                    // The next entry's EFI_FILE_INFO, or nothing (size 0) at the end.
                    let Some((e, next)) = fat.read_dir_at(&f.entry, f.place) else {
                        // SAFETY: the payload's in/out size.
                        return unsafe { out(size, 0) };
                    };
                    // SAFETY: the payload's size and buffer.
                    unsafe { give(size, buffer, &file_info(&e, fat.cluster_size as u64))? };
                    f.place = next;
                    return Ok(());
                }
                // SAFETY: the payload's in/out size and its buffer of that many bytes.
                unsafe {
                    let want = read(size)?;
                    // A zero-length read touches no buffer (NULL is no slice, even of 0 bytes).
                    let n = match (want, buffer.is_null()) {
                        (0, _) => 0,
                        (_, true) => return Err(EfiError::InvalidParameter),
                        _ => fat.read_at(&f.entry, f.position, core::slice::from_raw_parts_mut(buffer as *mut u8, want), &mut f.cursor),
                    };
                    f.position += n as u64;
                    out(size, n)
                }
            })
        })
    }

    fn write(this: *mut file::Protocol, size: *mut usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            let _ = (size, buffer);
            let dir = with_core(|c| open_file(c, this).map(|f| f.entry.is_dir()))?;
            Err(if dir { EfiError::Unsupported } else { EfiError::WriteProtected })
        })
    }

    fn get_position(this: *mut file::Protocol, position: *mut u64) -> Status {
        guarded(|| {
            let (dir, at) = with_core(|c| open_file(c, this).map(|f| (f.entry.is_dir(), f.position)))?;
            if dir {
                return Err(EfiError::Unsupported);
            }
            // SAFETY: the payload's out-argument.
            unsafe { out(position, at) }
        })
    }

    fn set_position(this: *mut file::Protocol, position: u64) -> Status {
        guarded(|| {
            with_core(|c| {
                let f = open_file(c, this)?;
                match (f.entry.is_dir(), position) {
                    // Directories only rewind.
                    (true, 0) => f.place = DirPlace::default(),
                    (true, _) => return Err(EfiError::Unsupported),
                    (false, u64::MAX) => f.position = f.entry.size as u64,
                    (false, p) => f.position = p,
                }
                Ok(())
            })
        })
    }

    fn get_info(this: *mut file::Protocol, kind: *mut Guid, size: *mut usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            // SAFETY: the payload's GUID argument.
            let kind = unsafe { guid_arg(kind)? };
            let bytes = with_core(|c| {
                let f = open_file(c, this)?;
                let fat = volume(c)?;
                Ok::<_, EfiError>(match kind {
                    k if k == file::INFO_ID => file_info(&f.entry, fat.cluster_size as u64),
                    k if k == file::SYSTEM_INFO_ID => system_info(&fat),
                    k if k == file::SYSTEM_VOLUME_LABEL_ID => fat.label().iter().chain(core::iter::once(&0)).flat_map(|u| u.to_le_bytes()).collect(),
                    _ => return Err(EfiError::Unsupported),
                })
            })?;
            // SAFETY: the payload's size and buffer.
            unsafe { give(size, buffer, &bytes) }
        })
    }

    fn set_info(this: *mut file::Protocol, kind: *mut Guid, size: usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            let _ = (kind, size, buffer);
            with_core(|c| open_file(c, this).map(|_| ()))?;
            Err(EfiError::WriteProtected)
        })
    }

    fn flush(this: *mut file::Protocol) -> Status {
        // Nothing is ever written: nothing to flush.
        guarded(|| with_core(|c| open_file(c, this).map(|_| ())))
    }

    fn open_ex(this: *mut file::Protocol, new: *mut *mut file::Protocol, name: *mut u16, mode: u64, attributes: u64, token: *mut file::IoToken) -> Status {
        // Revision 1 files: the asynchronous calls are not there (callers check Revision).
        let _ = (this, new, name, mode, attributes, token);
        Status::UNSUPPORTED
    }

    fn io_ex(this: *mut file::Protocol, token: *mut file::IoToken) -> Status {
        let _ = (this, token);
        Status::UNSUPPORTED
    }

    fn reset(this: *mut block_io::Protocol, extended: efi::Boolean) -> Status {
        let _ = extended;
        if this.is_null() { Status::INVALID_PARAMETER } else { Status::SUCCESS }
    }

    fn read_blocks(this: *mut block_io::Protocol, media: u32, lba: efi::Lba, size: usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            if media != MEDIA_ID {
                return Err(EfiError::MediaChanged);
            }
            if !(size as u64).is_multiple_of(BLOCK) {
                return Err(EfiError::BadBufferSize);
            }
            let offset = lba.checked_mul(BLOCK).ok_or(EfiError::InvalidParameter)?;
            // SAFETY: the payload's buffer of `size` bytes.
            unsafe { read_image(this as usize, offset, size, buffer) }
        })
    }

    fn write_blocks(this: *mut block_io::Protocol, media: u32, lba: efi::Lba, size: usize, buffer: *mut c_void) -> Status {
        let _ = (this, media, lba, size, buffer);
        Status::WRITE_PROTECTED
    }

    fn flush_blocks(this: *mut block_io::Protocol) -> Status {
        if this.is_null() { Status::INVALID_PARAMETER } else { Status::SUCCESS }
    }

    fn read_disk(this: *mut disk_io::Protocol, media: u32, offset: u64, size: usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            if media != MEDIA_ID {
                return Err(EfiError::MediaChanged);
            }
            // SAFETY: the payload's buffer of `size` bytes.
            unsafe { read_image(this as usize, offset, size, buffer) }
        })
    }

    fn write_disk(this: *mut disk_io::Protocol, media: u32, offset: u64, size: usize, buffer: *mut c_void) -> Status {
        let _ = (this, media, offset, size, buffer);
        Status::WRITE_PROTECTED
    }
}

/// Copies `size` bytes at `offset` of what `instance` (a BlockIo or DiskIo of ours) reads, the
/// whole image or the ESP partition, to the payload's buffer.
///
/// # Safety
/// `buffer` is NULL or holds `size` writable bytes.
unsafe fn read_image(instance: usize, offset: u64, size: usize, buffer: *mut c_void) -> Result<(), EfiError> {
    if size == 0 {
        return Ok(());
    }
    if buffer.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    let (disk, (base, len)) = with_core(|c| image(c).map(|d| (d, region(c, instance))))?;
    let disk = &disk[base as usize..(base + len) as usize];
    let at = usize::try_from(offset).map_err(|_| EfiError::InvalidParameter)?;
    let bytes = disk.get(at..at.checked_add(size).ok_or(EfiError::InvalidParameter)?).ok_or(EfiError::InvalidParameter)?;
    // SAFETY: per the contract.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, size) };
    Ok(())
}

/// A handle with a device path, BlockIo and DiskIo over `size` bytes (the whole image, or a
/// partition of it). Returns (handle, BlockIo, DiskIo).
fn publish_disk(c: &mut Core, path: &[u8], size: u64, partition: bool) -> Result<(usize, usize, usize), EfiError> {
    let media = block_io::Media {
        media_id: MEDIA_ID,
        removable_media: false,
        media_present: true,
        logical_partition: partition,
        read_only: true,
        write_caching: false,
        block_size: BLOCK as u32,
        io_align: 0,
        last_block: size / BLOCK - 1,
        lowest_aligned_lba: 0,
        logical_blocks_per_physical_block: 1,
        optimal_transfer_length_granularity: 0,
    };
    let media = publish(c, efi::BOOT_SERVICES_DATA, media)?;
    let bio = publish(
        c,
        efi::BOOT_SERVICES_DATA,
        block_io::Protocol {
            revision: block_io::REVISION2,
            media,
            reset: reset::entry,
            read_blocks: read_blocks::entry,
            write_blocks: write_blocks::entry,
            flush_blocks: flush_blocks::entry,
        },
    )?;
    let dio = publish(c, efi::BOOT_SERVICES_DATA, disk_io::Protocol { revision: disk_io::REVISION, read_disk: read_disk::entry, write_disk: write_disk::entry })?;
    let path = crate::services::copy_to_pool(c, path)?;
    let h = c.handles.install(None, &efi::protocols::device_path::PROTOCOL_GUID, path as usize)?;
    c.handles.install(Some(h), &block_io::PROTOCOL_GUID, bio as usize)?;
    c.handles.install(Some(h), &disk_io::PROTOCOL_GUID, dio as usize)?;
    Ok((h, bio as usize, dio as usize))
}

/// Publishes the ESP image at `[start, start + size)` as firmware publishes a disk: a handle
/// with its `RamDisk` device path, BlockIo and DiskIo; for a GPT or MBR image, a child handle
/// for the ESP partition (`RamDisk/HD(..)`, its own BlockIo and DiskIo); and SimpleFileSystem on
/// the handle that holds the FAT volume. Returns that handle.
pub fn install(c: &mut Core, start: u64, size: u64) -> Result<usize, EfiError> {
    c.esp.image = Some((start, size));
    let fat_ok = match volume(c) {
        Ok(fat) => {
            log::info!("ESP {start:#x}+{size:#x}: {:?} volume \"{}\"", fat.kind, alloc::string::String::from_utf16_lossy(&fat.label()));
            true
        }
        Err(_) => false,
    };
    let path = device_path::ram_disk(start, start + size - 1);
    let (disk, _, _) = publish_disk(c, &path, size, false)?;
    let partition = if fat_ok { crate::efi::fat::partition(image(c)?).ok().flatten() } else { None };
    let volume_handle = match partition {
        Some(p) => {
            let path = device_path::append_node(Some(&path), Some(&device_path::hard_drive(&p)));
            let (h, block_io, disk_io) = publish_disk(c, &path, p.size, true)?;
            c.esp.partition = Some(EspPartition { offset: p.start, size: p.size, block_io, disk_io });
            log::info!("ESP partition: {}", device_path::path_text(&path));
            h
        }
        None => disk,
    };
    if fat_ok {
        let fs = publish(c, efi::BOOT_SERVICES_DATA, sfs::Protocol { revision: sfs::REVISION, open_volume: open_volume::entry })?;
        c.handles.install(Some(volume_handle), &sfs::PROTOCOL_GUID, fs as usize)?;
    }
    c.esp.handle = Some(volume_handle);
    Ok(volume_handle)
}

/// The ESP partition's child handle: where it lies in the image, and its own protocol
/// instances (which is how a call on them is told from one on the whole disk).
#[derive(Clone, Copy, Debug)]
pub struct EspPartition {
    pub offset: u64,
    pub size: u64,
    pub block_io: usize,
    pub disk_io: usize,
}

/// The (offset, size) of the image that a BlockIo or DiskIo instance reads.
fn region(c: &Core, instance: usize) -> (u64, u64) {
    match c.esp.partition {
        Some(p) if p.block_io == instance || p.disk_io == instance => (p.offset, p.size),
        _ => (0, c.esp.image.map_or(0, |(_, size)| size)),
    }
}

/// Reads a file of the ESP into fresh BootServicesData pages: (address, pages, size). The
/// caller frees them.
pub fn read_file(c: &mut Core, path: &[u16]) -> Result<(u64, u64, usize), EfiError> {
    let fat = volume(c)?;
    let e = fat.open(path).filter(|e| !e.is_dir()).ok_or(EfiError::NotFound)?;
    let pages = (e.size as u64).div_ceil(PAGE_SIZE).max(1);
    let at = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, pages, PAGE_SIZE)?;
    // SAFETY: pages just allocated for this, identity-mapped, ours until the caller frees them.
    let buf = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, e.size as usize) };
    if fat.read(&e, 0, buf) != buf.len() {
        c.memory.free(at, pages)?;
        return Err(EfiError::VolumeCorrupted);
    }
    Ok((at, pages, e.size as usize))
}
