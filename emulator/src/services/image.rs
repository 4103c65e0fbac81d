//! PE images: loading (from the parameter block or a buffer), starting on a fresh stack,
//! Exit unwinding to the StartImage that started the image, unloading.

use super::handles::find_device;
use super::*;
use crate::efi::device_path;
use crate::efi::pe::PeImage;
use crate::efi::platform::{Access, Clock, Images, Protection};
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};
use efi::protocols::{load_file2, loaded_image, loaded_image_device_path};

/// Stack each started image gets (the spec's minimum is 128 KiB).
pub const IMAGE_STACK: u64 = 256 * 1024;

/// One image the core loaded.
pub struct Image {
    pub handle: usize,
    pub loaded_image: *mut efi::protocols::loaded_image::Protocol,
    pub base: u64,
    pub pages: u64,
    pub entry: u64,
    /// An EFI application (unloaded when it returns), not a driver.
    pub application: bool,
    pub started: bool,
    /// While the image runs: where `Exit` unwinds to.
    pub exit_context: Option<*mut <Machine as Images>::ExitContext>,
    pub exit_data: Option<(usize, *mut u16)>,
    /// Pool allocations owned by the image record (device path copies, load options).
    pub owned: Vec<*mut u8>,
    /// EFI_SECURITY_VIOLATION when Secure Boot refused it: loaded, but StartImage refuses it.
    pub refused: bool,
    /// A UKI with its own `.initrd`: when it starts, the loader's initrd steps aside.
    pub own_initrd: bool,
}

static PAYLOAD_START: AtomicU64 = AtomicU64::new(0);

/// Where an image is placed.
pub enum Placement {
    /// Copied into fresh LoaderCode pages.
    Copy,
    /// Run where its file lies: its layout is the memory layout and the pages are free.
    InPlace(u64),
}

fn load_error(e: crate::efi::pe::PeError) -> EfiError {
    log::warn!("{e}");
    match e.field {
        "Machine" | "Subsystem" | "OptionalHeader.Magic" => EfiError::Unsupported,
        _ => EfiError::LoadError,
    }
}

/// Loads a PE image and gives it a handle with LoadedImage and LoadedImageDevicePath.
/// `file_path` becomes LoadedImage.FilePath (the path after the device), `full_path` the
/// LoadedImageDevicePath; without one, LoadedImageDevicePath is installed with a NULL
/// interface, as EDK2 does for an image loaded from a buffer with no path.
pub fn load(c: &mut Core, file: &[u8], placement: Placement, parent: usize, device: usize, file_path: Option<&[u8]>, full_path: Option<&[u8]>) -> Result<usize, EfiError> {
    let pe = PeImage::parse(file).map_err(load_error)?;
    // Measured as the file is: loading in place changes it.
    let digests = super::protocols::tcg2::image_digests(c, file);
    // Each subsystem's memory types: applications are the loader's, drivers stay in boot
    // services (or runtime) memory.
    let (code_type, data_type) = match pe.subsystem {
        crate::efi::pe::SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER => (efi::BOOT_SERVICES_CODE, efi::BOOT_SERVICES_DATA),
        crate::efi::pe::SUBSYSTEM_EFI_RUNTIME_DRIVER => (efi::RUNTIME_SERVICES_CODE, efi::RUNTIME_SERVICES_DATA),
        _ => (efi::LOADER_CODE, efi::LOADER_DATA),
    };
    let size = pe.size_of_image as u64;
    let pages = size.div_ceil(PAGE_SIZE);
    let base = match placement {
        Placement::InPlace(at) => {
            c.memory.retype(at, pages, code_type, true)?;
            // SAFETY: the caller established that the file's pages, up to SizeOfImage, are
            // ours to use and identity-mapped.
            let image = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, size as usize) };
            pe.prepare_in_place(image).map_err(load_error)?;
            pe.relocate(image, at).map_err(load_error)?;
            at
        }
        Placement::Copy => {
            // Linux kernels at 2 MiB, so the stub need not move itself; others at their
            // section alignment.
            let align = if pe.linux_image_size.is_some() { 2 << 20 } else { (pe.section_alignment as u64).max(PAGE_SIZE) };
            let at = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, code_type, pages, align).inspect_err(|_| {
                log::error!("no room for the image: {} KiB at {} KiB alignment needed, {} KiB of conventional memory free", pages * 4, align / 1024, c.memory.free_pages() * 4)
            })?;
            // SAFETY: freshly allocated pages, identity-mapped.
            let dest = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, size as usize) };
            if let Err(e) = pe.load(dest, at) {
                c.memory.free(at, pages)?;
                return Err(load_error(e));
            }
            at
        }
    };
    map_sections(&pe, base, size);
    match placement {
        // The loader cleaned the file to PoC; we only wrote BSS (data) and, if any,
        // relocations.
        Placement::InPlace(_) if pe.directory(5).is_none() => Machine::code_written(base, 0),
        _ => {
            for s in pe.sections().filter(|s| s.characteristics & crate::efi::pe::SCN_MEM_EXECUTE != 0) {
                Machine::code_written(base + s.virtual_address as u64, s.virtual_size.max(s.raw_size) as u64);
            }
        }
    }

    let path_copy = match file_path {
        Some(p) => copy_to_pool(c, p)?,
        None => core::ptr::null_mut(),
    };
    let device_path = full_path;
    let full_path = match full_path {
        Some(p) => copy_to_pool(c, p)?,
        None => core::ptr::null_mut(),
    };
    let li = publish(
        c,
        efi::BOOT_SERVICES_DATA,
        loaded_image::Protocol {
            revision: loaded_image::REVISION,
            parent_handle: parent as efi::Handle,
            system_table: c.tables.systab,
            device_handle: device as efi::Handle,
            file_path: path_copy as *mut efi::protocols::device_path::Protocol,
            reserved: core::ptr::null_mut(),
            load_options_size: 0,
            load_options: core::ptr::null_mut(),
            image_base: base as *mut c_void,
            image_size: size,
            image_code_type: code_type,
            image_data_type: data_type,
            unload: None,
        },
    )?;
    let handle = c.handles.install(None, &loaded_image::PROTOCOL_GUID, li as usize)?;
    c.handles.install(Some(handle), &loaded_image_device_path::PROTOCOL_GUID, full_path as usize)?;
    let owned = [li as *mut u8, full_path, path_copy].into_iter().filter(|p| !p.is_null()).collect();
    let application = pe.subsystem == crate::efi::pe::SUBSYSTEM_EFI_APPLICATION;
    c.images.push(Image {
        handle,
        loaded_image: li,
        base,
        pages,
        entry: base + pe.entry_point as u64,
        application,
        started: false,
        exit_context: None,
        exit_data: None,
        owned,
        refused: false,
        own_initrd: crate::efi::image_policy::carries_initrd(&pe),
    });
    Machine::image_loaded(base, size, handle);
    if let Some(d) = digests {
        super::protocols::tcg2::measure_image(c, &d, base, size, pe.image_base, pe.subsystem, device_path);
    }
    log::info!(
        "image: {:#x}..{:#x} ({} KiB, {}), entry {:#x}, handle {handle:#x}",
        base,
        base + size,
        size / 1024,
        if matches!(placement, Placement::InPlace(_)) { "run in place" } else { "copied" },
        base + pe.entry_point as u64
    );
    Ok(handle)
}

/// W^X for a loaded image: headers read-only, each section as its flags say (code read-only
/// and executable, data never executable). A section that asks for write and execute keeps
/// both, with a warning: refusing it would refuse real images.
fn map_sections(pe: &PeImage, base: u64, size: u64) {
    use crate::efi::pe::{SCN_MEM_EXECUTE as X, SCN_MEM_WRITE as W};
    if (pe.section_alignment as u64) < PAGE_SIZE {
        log::warn!("image at {base:#x}: SectionAlignment {:#x} is below a page: sections share pages, mapped RWX", pe.section_alignment);
        return;
    }
    let mut result = Machine::set_access(base, size, Access::RODATA);
    for s in pe.sections() {
        let access = match s.characteristics & (W | X) {
            0 => Access::RODATA,
            W => Access::DATA,
            X => Access::CODE,
            _ => {
                log::warn!("image section {} is writable and executable: mapped RWX", s.name());
                Access::RAM
            }
        };
        let len = (s.virtual_size.max(s.raw_size) as u64).min(size - s.virtual_address as u64);
        result = result.and_then(|_| Machine::set_access(base + s.virtual_address as u64, len, access));
    }
    if result.is_err() {
        log::warn!("image at {base:#x}: section permissions not applied (out of page-table frames)");
    }
}

/// Sets an image's LoadOptions to `options` (UTF-16, NUL added) in pool memory.
pub fn set_load_options(c: &mut Core, handle: usize, options: &[u16]) -> Result<(), EfiError> {
    let bytes = (options.len() + 1) * 2;
    let p = c.pool.allocate(&mut c.memory, efi::LOADER_DATA, bytes)? as *mut u16;
    // SAFETY: fresh pool buffer of `bytes` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(options.as_ptr(), p, options.len());
        p.add(options.len()).write(0);
    }
    let img = c.image(handle)?;
    img.owned.push(p as *mut u8);
    // SAFETY: the live LoadedImage of that image.
    unsafe {
        (*img.loaded_image).load_options = p as *mut c_void;
        (*img.loaded_image).load_options_size = bytes as u32;
    }
    Ok(())
}

/// Starts an image on its own stack and returns its status (from a return or from Exit).
pub fn start(handle: usize) -> Result<Status, EfiError> {
    let (entry, stack, systab) = with_core(|c| {
        let systab = c.tables.systab;
        let img = c.image(handle)?;
        if img.refused {
            return Err(EfiError::SecurityViolation);
        }
        if img.started {
            return Err(EfiError::InvalidParameter);
        }
        img.started = true;
        let (entry, own_initrd) = (img.entry, img.own_initrd);
        // systemd-stub registers the UKI's initrd and gives up when one is there already
        // (LocateDevicePath before any install): the loader's withdraws first, as it would
        // never have been there under firmware (systemd-boot -> UKI with an initrd).
        if own_initrd {
            if let Some(h) = c.initrd.handle {
                super::protocols::initrd::withdraw(c, h, "the image starting is a UKI with its own .initrd");
            }
        }
        let stack = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, IMAGE_STACK / PAGE_SIZE, PAGE_SIZE)?;
        Ok((entry, stack, systab))
    })?;
    let mut ctx = <Machine as Images>::ExitContext::default();
    with_core(|c| {
        c.running.push(handle);
        c.image(handle).map(|i| i.exit_context = Some(&raw mut ctx))
    })?;
    if PAYLOAD_START.load(Ordering::Relaxed) == 0 {
        PAYLOAD_START.store(Machine::ticks(), Ordering::Relaxed);
    }
    // The image runs outside every service call (its own calls count from zero), at
    // TPL_APPLICATION, where the tick may interrupt it.
    let depth = super::SERVICE_DEPTH.swap(0, Ordering::Relaxed);
    Machine::set_interrupts(true);
    // SAFETY: the entry point of an image we loaded and synchronised with the I-cache, on a
    // fresh 16-byte-aligned stack freed only after the call; the context lives in this frame,
    // which stays alive until the image returns or exits.
    let status = unsafe { Machine::start_image(entry, handle, systab, stack + IMAGE_STACK, &raw mut ctx) };
    Machine::set_interrupts(false);
    super::SERVICE_DEPTH.store(depth, Ordering::Relaxed);
    if exited() {
        // Boot services are gone (the image called ExitBootServices, then returned): the
        // core's memory may belong to the OS now.
        return Ok(Status::from_usize(status));
    }
    with_core(|c| {
        c.running.retain(|&h| h != handle);
        if let Ok(img) = c.image(handle) {
            img.exit_context = None;
        }
        c.memory.free(stack, IMAGE_STACK / PAGE_SIZE)
    })?;
    Ok(Status::from_usize(status))
}

/// The milestone lines the harness measures.
pub fn report_handoff(entry: u64) {
    super::diagnostics::timeline::mark(super::diagnostics::timeline::Milestone::PayloadEntry);
    let us = Machine::micros_since_entry();
    log::info!("handing off to the payload at {entry:#x}: {}.{:03} ms after emulator entry", us / 1000, us % 1000);
}

pub fn report_exit_boot_services() {
    let start = PAYLOAD_START.load(Ordering::Relaxed);
    let us = ((Machine::ticks() - start) as u128 * 1_000_000 / Machine::ticks_per_second() as u128) as u64;
    let total = Machine::micros_since_entry();
    log::info!("ExitBootServices: the payload ran {}.{:03} ms in boot services ({}.{:03} ms since emulator entry)", us / 1000, us % 1000, total / 1000, total % 1000);
    super::diagnostics::timeline::report();
}

efiapi! {
    fn load_image(boot_policy: efi::Boolean, parent: efi::Handle, path: *mut efi::protocols::device_path::Protocol, source: *mut c_void, size: usize, image: *mut efi::Handle) -> Status {
        guarded_growing(|| {
            // A parent is any handle with a LoadedImage, as EDK2 asks: shim loads GRUB as
            // images of its own and GRUB then loads Linux with one of those as the parent.
            if image.is_null() || !with_core(|c| c.handles.get(parent as usize, &efi::protocols::loaded_image::PROTOCOL_GUID).is_ok()) {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: an optional device path from the payload; copied, since callers (systemd)
            // keep it on their stack.
            let dp = unsafe { device_path::read(path as *const u8) };
            let fetched = if source.is_null() {
                fetch_from_device(dp.ok_or(EfiError::InvalidParameter)?, bool::from(boot_policy))?
            } else {
                // SAFETY: the payload passes `size` readable bytes; LoadImage copies them.
                let file = unsafe { bytes_arg(source as *const u8, size)? };
                // The device is whatever publishes a prefix of the path, if anything does.
                let (device, rest) = dp.and_then(|p| with_core(|c| find_device(c, p, &efi::protocols::device_path::PROTOCOL_GUID))).unwrap_or((0, 0));
                Fetched { file, pages: None, device, rest }
            };
            // As EDK2's core: SECURITY_VIOLATION (from a replacement Security2) loads the image,
            // which StartImage then refuses; any other refusal (ours: ACCESS_DENIED) loads nothing.
            let security = super::protocols::security::authenticate(fetched.file, dp, bool::from(boot_policy));
            let loaded = if security.is_error() && security != Status::SECURITY_VIOLATION {
                // SAFETY: the payload's out-argument, checked non-NULL above: NULL, as the spec asks.
                unsafe { out(image, core::ptr::null_mut())? };
                Err(if security == Status::ACCESS_DENIED { EfiError::AccessDenied } else { EfiError::SecurityViolation })
            } else {
                with_core(|c| load(c, fetched.file, Placement::Copy, parent as usize, fetched.device, dp.map(|p| &p[fetched.rest..]), dp))
            };
            if let Some((at, pages)) = fetched.pages {
                with_core(|c| c.memory.free(at, pages))?;
            }
            let h = loaded?;
            // Its LoadedImage is news to RegisterProtocolNotify registrations.
            super::handles::notify_registered();
            // SAFETY: the payload's out-argument.
            unsafe { out(image, h as efi::Handle)? };
            if security == Status::SECURITY_VIOLATION {
                with_core(|c| c.image(h).map(|i| i.refused = true))?;
                return Err(EfiError::SecurityViolation);
            }
            Ok(())
        })
    }

    fn start_image(handle: efi::Handle, exit_data_size: *mut usize, exit_data: *mut *mut u16) -> Status {
        if exited() {
            return Status::UNSUPPORTED;
        }
        match start(handle as usize) {
            Ok(s) => {
                if !exited() {
                    let data = with_core(|c| c.image(handle as usize).ok().and_then(|i| i.exit_data.take()));
                    if let Some((n, p)) = data {
                        // SAFETY: the payload's optional out-arguments (NULL is skipped).
                        unsafe {
                            let _ = out(exit_data_size, n);
                            let _ = out(exit_data, p);
                        }
                    }
                    // An application is unloaded once it returns or exits (its ExitData, pool
                    // memory it allocated, stays for the caller to free); a driver only when it
                    // fails, since its protocols stay in use.
                    let application = with_core(|c| c.image(handle as usize).map(|i| i.application).unwrap_or(false));
                    if application || s.is_error() {
                        let _ = unload(handle as usize);
                    }
                }
                s
            }
            Err(e) => e.status(),
        }
    }

    fn exit(handle: efi::Handle, exit_status: Status, data_size: usize, data: *mut u16) -> Status {
        if exited() {
            return Status::UNSUPPORTED;
        }
        let ctx = with_core(|c| {
            // Only the image running now may exit (not one further out, which would skip it).
            let current = c.running.last() == Some(&(handle as usize));
            let img = c.image(handle as usize)?;
            let ctx = img.exit_context.filter(|_| current).ok_or(EfiError::InvalidParameter)?;
            if !data.is_null() && data_size > 0 {
                img.exit_data = Some((data_size, data));
            }
            Ok(ctx)
        });
        match ctx {
            // SAFETY: the context of the StartImage call that is running this image.
            Ok(ctx) => unsafe { Machine::exit_image(ctx, exit_status.as_usize()) },
            Err(EfiError::InvalidParameter) if with_core(|c| c.image(handle as usize).is_ok_and(|i| !i.started)) => {
                // Exit on an image that never started unloads it.
                status(unload(handle as usize))
            }
            Err(e) => e.status(),
        }
    }

    fn unload_image(handle: efi::Handle) -> Status {
        if exited() {
            return Status::UNSUPPORTED;
        }
        // SAFETY: the LoadedImage protocol of an image record lives as long as the record.
        let unload_fn = with_core(|c| c.image(handle as usize).map(|i| (i.started, unsafe { (*i.loaded_image).unload })));
        match unload_fn {
            Err(e) => e.status(),
            Ok((true, None)) => Status::UNSUPPORTED,
            Ok((true, Some(f))) => {
                // SAFETY: the image's own Unload function, called with its handle.
                let s = unsafe { f(handle) };
                if s == Status::SUCCESS {
                    status(unload(handle as usize))
                } else {
                    s
                }
            }
            Ok((false, _)) => status(unload(handle as usize)),
        }
    }
}

/// A file LoadImage got: its bytes, the pages holding them when LoadImage read it (freed once
/// the image is loaded), and the device that published it with the length of its path prefix.
struct Fetched<'a> {
    file: &'a [u8],
    pages: Option<(u64, u64)>,
    device: usize,
    rest: usize,
}

/// LoadImage without a buffer: the file comes from the ESP's file system (a File() path on
/// it), or from LoadFile2 (unless BootPolicy) or LoadFile on the device the path names.
fn fetch_from_device(path: &[u8], boot_policy: bool) -> Result<Fetched<'static>, EfiError> {
    use efi::protocols::load_file;
    let from_esp = with_core(|c| {
        let (h, rest) = find_device(c, path, &efi::protocols::simple_file_system::PROTOCOL_GUID).filter(|&(h, _)| Some(h) == c.esp.handle)?;
        let file = device_path::file_path_of(&path[rest..])?;
        Some(super::protocols::esp::read_file(c, &file).map(|(at, pages, size)| (at, pages, size, h, rest)))
    });
    if let Some(read) = from_esp {
        let (at, pages, size, device, rest) = read?;
        // SAFETY: the pages read_file filled with `size` bytes, ours until freed.
        let file = unsafe { core::slice::from_raw_parts(at as *const u8, size) };
        return Ok(Fetched { file, pages: Some((at, pages)), device, rest });
    }
    let guids = [(!boot_policy).then_some(load_file2::PROTOCOL_GUID), Some(load_file::PROTOCOL_GUID)];
    let (device, rest, iface) =
        with_core(|c| guids.iter().flatten().find_map(|g| find_device(c, path, g).map(|(h, n)| (h, n, c.handles.get(h, g).unwrap_or(0))))).ok_or(EfiError::NotFound)?;
    let proto = iface as *mut load_file::Protocol;
    let remaining = path[rest..].as_ptr() as *mut efi::protocols::device_path::Protocol;
    let policy = if boot_policy { efi::Boolean::TRUE } else { efi::Boolean::FALSE };
    let mut size = 0usize;
    // SAFETY: the protocol instance the device published; the size probe passes no buffer.
    let s = unsafe { ((*proto).load_file)(proto, remaining, policy, &mut size, core::ptr::null_mut()) };
    if s != Status::BUFFER_TOO_SMALL || size == 0 {
        log::warn!("LoadImage: LoadFile size probe returned {:#x}", s.as_usize());
        return Err(if s.is_error() { EfiError::NotFound } else { EfiError::LoadError });
    }
    let pages = (size as u64).div_ceil(PAGE_SIZE);
    let buf = with_core(|c| c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, pages, PAGE_SIZE))?;
    // SAFETY: as above, with a buffer of `size` bytes. The callee may call boot services: the
    // core is not held.
    let s = unsafe { ((*proto).load_file)(proto, remaining, policy, &mut size, buf as *mut c_void) };
    if s != Status::SUCCESS {
        log::warn!("LoadImage: LoadFile returned {:#x}", s.as_usize());
        with_core(|c| c.memory.free(buf, pages))?;
        return Err(EfiError::LoadError);
    }
    // SAFETY: the buffer we allocated, filled with `size` bytes, ours until freed.
    let file = unsafe { core::slice::from_raw_parts(buf as *const u8, size) };
    Ok(Fetched { file, pages: Some((buf, pages)), device, rest })
}

/// Frees an image's pages and pool memory and removes its handle.
fn unload(handle: usize) -> Result<(), EfiError> {
    with_core(|c| {
        let i = c.images.iter().position(|i| i.handle == handle).ok_or(EfiError::InvalidParameter)?;
        let img = c.images.remove(i);
        // What the image opened goes with it (EDK2's CoreUnloadAndCloseImage).
        c.handles.close_all_of(handle);
        for g in [loaded_image::PROTOCOL_GUID, loaded_image_device_path::PROTOCOL_GUID] {
            if let Ok(iface) = c.handles.get(handle, &g) {
                let _ = c.handles.uninstall(handle, &g, iface);
            }
        }
        for p in img.owned {
            let _ = c.pool.free(&mut c.memory, p as u64);
        }
        let _ = Machine::set_access(img.base, img.pages * PAGE_SIZE, Access::RAM);
        c.memory.free(img.base, img.pages)
    })
}

/// A handle that carries only a (copied) device path.
pub fn install_device_path(c: &mut Core, path: &[u8]) -> Result<usize, EfiError> {
    let dp = copy_to_pool(c, path)?;
    c.handles.install(None, &efi::protocols::device_path::PROTOCOL_GUID, dp as usize)
}
