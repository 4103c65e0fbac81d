//! Handles and protocols: install, reinstall, uninstall (also several at once), look up, open,
//! close, locate.

use super::*;
use crate::efi::device_path;
use crate::efi::handles::{OpenInfo, Search};
use core::ffi::c_void;
use core::mem::size_of;
use efi::protocols::device_path::{Protocol as DevicePath, PROTOCOL_GUID as DEVICE_PATH};

/// The handle with `protocol` whose device path is the longest prefix of `path`, and where in
/// `path` the rest begins.
pub fn find_device(c: &Core, path: &[u8], protocol: &Guid) -> Option<(usize, usize)> {
    c.handles
        .with_protocol(protocol)
        .filter_map(|(h, _)| {
            let dp = c.handles.get(h, &DEVICE_PATH).ok()?;
            // SAFETY: device paths installed on handles point to well-formed paths (checked when
            // the emulator or the payload installed them).
            let bytes = unsafe { device_path::read(dp as *const u8) }?;
            device_path::match_prefix(bytes, path).map(|n| (h, n))
        })
        .max_by_key(|&(_, n)| n)
}

/// Copies `values` into one fresh pool buffer for the payload to free.
fn pool_array<T: Copy>(c: &mut Core, values: &[T]) -> Result<*mut T, EfiError> {
    let buf = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, core::mem::size_of_val(values).max(1))? as *mut T;
    // SAFETY: a fresh pool buffer of that many T, 16-byte aligned.
    unsafe { core::ptr::copy_nonoverlapping(values.as_ptr(), buf, values.len()) };
    Ok(buf)
}

fn locate(search: efi::LocateSearchType, protocol: *mut Guid, key: *mut c_void) -> Result<Vec<usize>, EfiError> {
    match search {
        efi::ALL_HANDLES => with_core(|c| c.handles.locate(Search::AllHandles)),
        efi::BY_PROTOCOL => {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            with_core(|c| c.handles.locate(Search::ByProtocol(&g)))
        }
        // One handle a call: the next that got the registration's protocol.
        efi::BY_REGISTER_NOTIFY if !key.is_null() => with_core(|c| c.handles.next_registered(key as usize)).map(|h| alloc::vec![h]),
        _ => Err(EfiError::InvalidParameter),
    }
}

/// Signals the RegisterProtocolNotify events of the protocols just installed, and runs the
/// notify functions that are due.
pub fn notify_registered() {
    with_core(|c| {
        for e in c.handles.take_signals() {
            let _ = c.events.signal(e);
        }
    });
    dispatch();
}

efiapi! {
    fn install_protocol_interface(handle: *mut efi::Handle, protocol: *mut Guid, interface_type: efi::InterfaceType, interface: *mut c_void) -> Status {
        guarded_growing(|| {
            if interface_type != efi::NATIVE_INTERFACE {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's GUID and in/out handle arguments.
            let (g, h) = unsafe { (guid_arg(protocol)?, read(handle)? as usize) };
            let h = with_core(|c| c.handles.install((h != 0).then_some(h), &g, interface as usize))?;
            notify_registered();
            // SAFETY: as above.
            unsafe { out(handle, h as efi::Handle) }
        })
    }

    fn reinstall_protocol_interface(handle: efi::Handle, protocol: *mut Guid, old: *mut c_void, new: *mut c_void) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            with_core(|c| c.handles.reinstall(handle as usize, &g, old as usize, new as usize))?;
            notify_registered();
            Ok(())
        })
    }

    fn uninstall_protocol_interface(handle: efi::Handle, protocol: *mut Guid, interface: *mut c_void) -> Status {
        guarded(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            super::drivers::uninstall(handle as usize, &g, interface as usize)
        })
    }

    fn handle_protocol(handle: efi::Handle, protocol: *mut Guid, interface: *mut *mut c_void) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            if interface.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let i = with_core(|c| c.handles.get(handle as usize, &g))?;
            // SAFETY: the payload's out-argument.
            unsafe { out(interface, i as *mut c_void) }
        })
    }

    fn register_protocol_notify(protocol: *mut Guid, event: efi::Event, registration: *mut *mut c_void) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            if registration.is_null() || !with_core(|c| c.events.exists(event as usize)) {
                return Err(EfiError::InvalidParameter);
            }
            let key = with_core(|c| c.handles.register_notify(&g, event as usize));
            // SAFETY: the payload's out-argument.
            unsafe { out(registration, key as *mut c_void) }
        })
    }

    fn locate_handle(search: efi::LocateSearchType, protocol: *mut Guid, key: *mut c_void, size: *mut usize, buffer: *mut efi::Handle) -> Status {
        guarded(|| {
            let found = locate(search, protocol, key)?;
            // SAFETY: the payload's in/out size argument.
            unsafe { sized_buffer(size, found.len() * size_of::<efi::Handle>())? };
            if buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            for (i, h) in found.iter().enumerate() {
                // SAFETY: the payload's buffer holds at least the bytes `sized_buffer` asked for.
                unsafe { buffer.add(i).write_unaligned(*h as efi::Handle) };
            }
            Ok(())
        })
    }

    fn locate_device_path(protocol: *mut Guid, path: *mut *mut DevicePath, device: *mut efi::Handle) -> Status {
        guarded(|| {
            // SAFETY: the payload's GUID argument and in/out device path pointer.
            let (g, start) = unsafe { (guid_arg(protocol)?, read(path)? as *const u8) };
            if device.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload passes a device path.
            let wanted = unsafe { device_path::read(start) }.ok_or(EfiError::InvalidParameter)?;
            let (handle, matched) = with_core(|c| find_device(c, wanted, &g)).ok_or(EfiError::NotFound)?;
            // SAFETY: the payload's out-arguments; `matched` is inside the payload's path.
            unsafe {
                out(device, handle as efi::Handle)?;
                out(path, start.add(matched) as *mut DevicePath)
            }
        })
    }

    fn open_protocol(handle: efi::Handle, protocol: *mut Guid, interface: *mut *mut c_void, agent: efi::Handle, controller: efi::Handle, attributes: u32) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            let test = attributes == efi::OPEN_PROTOCOL_TEST_PROTOCOL;
            if interface.is_null() && !test {
                return Err(EfiError::InvalidParameter);
            }
            if attributes & efi::OPEN_PROTOCOL_EXCLUSIVE != 0 {
                super::drivers::make_exclusive(handle as usize, &g);
            }
            // As EDK2: the interface comes back with EFI_ALREADY_STARTED too (the driver opened it
            // already), and NULL with EFI_UNSUPPORTED; other errors leave it alone.
            let (result, i) = with_core(|c| {
                let r = c.handles.open(handle as usize, &g, agent as usize, controller as usize, attributes);
                let i = match r {
                    Ok(i) => Some(i),
                    Err(EfiError::AlreadyStarted) => c.handles.get(handle as usize, &g).ok(),
                    Err(EfiError::Unsupported) => Some(0),
                    Err(_) => None,
                };
                (r, i)
            });
            if let (false, Some(i)) = (test, i) {
                // SAFETY: the payload's out-argument.
                unsafe { out(interface, i as *mut c_void)? };
            }
            result.map(|_| ())
        })
    }

    fn close_protocol(handle: efi::Handle, protocol: *mut Guid, agent: efi::Handle, controller: efi::Handle) -> Status {
        guarded(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            with_core(|c| c.handles.close(handle as usize, &g, agent as usize, controller as usize))
        })
    }

    fn open_protocol_information(handle: efi::Handle, protocol: *mut Guid, entries: *mut *mut efi::OpenProtocolInformationEntry, count: *mut usize) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            if entries.is_null() || count.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let (buf, n) = with_core(|c| {
                let info: Vec<OpenInfo> = c.handles.open_information(handle as usize, &g)?;
                Ok::<_, EfiError>((pool_array(c, &info)?, info.len()))
            })?;
            // SAFETY: the payload's out-arguments.
            unsafe {
                out(entries, buf as *mut efi::OpenProtocolInformationEntry)?;
                out(count, n)
            }
        })
    }

    fn protocols_per_handle(handle: efi::Handle, buffer: *mut *mut *mut Guid, count: *mut usize) -> Status {
        guarded_growing(|| {
            if buffer.is_null() || count.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let (ptrs, n) = with_core(|c| {
                let guids = c.handles.protocols(handle as usize)?;
                // One allocation: the pointer array, then the GUIDs it points to.
                let bytes = guids.len() * (size_of::<*mut Guid>() + size_of::<Guid>());
                let buf = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, bytes.max(1))?;
                let ptrs = buf as *mut *mut Guid;
                // SAFETY: inside the fresh buffer, past the pointer array.
                let store = unsafe { buf.add(guids.len() * size_of::<*mut Guid>()) } as *mut Guid;
                for (i, g) in guids.iter().enumerate() {
                    // SAFETY: inside the fresh buffer; the GUIDs are 8-byte aligned after the
                    // pointer array, and written unaligned all the same.
                    unsafe {
                        store.add(i).write_unaligned(*g);
                        ptrs.add(i).write(store.add(i));
                    }
                }
                Ok::<_, EfiError>((ptrs, guids.len()))
            })?;
            // SAFETY: the payload's out-arguments.
            unsafe {
                out(buffer, ptrs)?;
                out(count, n)
            }
        })
    }

    fn locate_handle_buffer(search: efi::LocateSearchType, protocol: *mut Guid, key: *mut c_void, count: *mut usize, buffer: *mut *mut efi::Handle) -> Status {
        guarded_growing(|| {
            if count.is_null() || buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let found: Vec<efi::Handle> = locate(search, protocol, key)?.into_iter().map(|h| h as efi::Handle).collect();
            let buf = with_core(|c| pool_array(c, &found))?;
            // SAFETY: the payload's out-arguments.
            unsafe {
                out(buffer, buf)?;
                out(count, found.len())
            }
        })
    }

    fn locate_protocol(protocol: *mut Guid, registration: *mut c_void, interface: *mut *mut c_void) -> Status {
        guarded(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(protocol)? };
            if interface.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // With a registration: the next interface installed since it, not the first one.
            let found = with_core(|c| match registration as usize {
                0 => c.handles.locate_protocol(&g),
                key if c.handles.registered_guid(key) == Some(g) => c.handles.next_registered(key).and_then(|h| c.handles.get(h, &g)),
                _ => Err(EfiError::NotFound),
            });
            // SAFETY: the payload's out-argument: the interface, or NULL when there is none.
            unsafe { out(interface, found.map_or(core::ptr::null_mut(), |i| i as *mut c_void))? };
            found.map(|_| ())
        })
    }

    fn install_multiple_pairs(handle: *mut efi::Handle, args: *const *mut c_void) -> Status {
        guarded_growing(|| {
            // SAFETY: the variadic entry collected the arguments into one NULL-terminated array.
            let pairs = unsafe { pairs(args)? };
            // SAFETY: the payload's in/out handle argument.
            let h = unsafe { read(handle)? } as usize;
            let h = with_core(|c| install_all(c, h, &pairs))?;
            notify_registered();
            // SAFETY: as above.
            unsafe { out(handle, h as efi::Handle) }
        })
    }

    fn uninstall_multiple_pairs(handle: efi::Handle, args: *const *mut c_void) -> Status {
        guarded(|| {
            // SAFETY: as for install_multiple_pairs.
            let pairs = unsafe { pairs(args)? };
            uninstall_all(handle as usize, &pairs)
        })
    }
}

/// Most (GUID, interface) pairs one call may pass.
const MAX_PAIRS: usize = 64;

/// The (GUID, interface) pairs of Install/UninstallMultipleProtocolInterfaces.
///
/// # Safety
/// `args` points to pairs of pointers ending with a NULL GUID pointer, each GUID readable.
unsafe fn pairs(args: *const *mut c_void) -> Result<Vec<(Guid, usize)>, EfiError> {
    let mut pairs = Vec::new();
    loop {
        let i = pairs.len();
        // SAFETY: per the contract, the list goes on until its NULL GUID pointer.
        let g = unsafe { *args.add(2 * i) } as *const Guid;
        if g.is_null() {
            return Ok(pairs);
        }
        if i == MAX_PAIRS {
            return Err(EfiError::InvalidParameter);
        }
        // SAFETY: as above: a GUID pointer is followed by its interface.
        let interface = unsafe { *args.add(2 * i + 1) } as usize;
        // SAFETY: a non-NULL GUID pointer of the list.
        pairs.push((unsafe { guid_arg(g)? }, interface));
    }
}

/// InstallMultipleProtocolInterfaces: all pairs or none. Returns the handle.
pub fn install_all(c: &mut Core, handle: usize, pairs: &[(Guid, usize)]) -> Result<usize, EfiError> {
    // A device path that another handle already has is refused (spec).
    if let Some(&(_, path)) = pairs.iter().find(|(g, _)| *g == DEVICE_PATH) {
        // SAFETY: the payload installs a device path it owns.
        if let Some(wanted) = unsafe { device_path::read(path as *const u8) } {
            let taken = c.handles.with_protocol(&DEVICE_PATH).find(|&(_, other)| {
                // SAFETY: installed device paths.
                unsafe { device_path::read(other as *const u8) }.is_some_and(|b| b == wanted)
            });
            if let Some((owner, _)) = taken {
                if !super::protocols::initrd::yield_to(c, owner) {
                    return Err(EfiError::AlreadyStarted);
                }
            }
        }
    }
    let mut h = handle;
    for (done, (g, i)) in pairs.iter().enumerate() {
        match c.handles.install((h != 0).then_some(h), g, *i) {
            Ok(new) => h = new,
            Err(e) => {
                for (g, i) in &pairs[..done] {
                    let _ = c.handles.uninstall(h, g, *i);
                }
                return Err(e);
            }
        }
    }
    Ok(h)
}

/// UninstallMultipleProtocolInterfaces: all pairs or none, each uninstalled as
/// UninstallProtocolInterface does (its drivers disconnected first).
pub fn uninstall_all(handle: usize, pairs: &[(Guid, usize)]) -> Result<(), EfiError> {
    if pairs.iter().any(|(g, i)| with_core(|c| c.handles.get(handle, g)) != Ok(*i)) {
        return Err(EfiError::InvalidParameter);
    }
    // All or nothing: one that cannot go (a driver will not let go) puts the others back, and
    // the call fails as EDK2's does. The handle stays: the one that failed is still on it.
    for (done, (g, i)) in pairs.iter().enumerate() {
        if super::drivers::uninstall(handle, g, *i).is_err() {
            for (g, i) in pairs[..done].iter().rev() {
                with_core(|c| c.handles.install(Some(handle), g, *i))?;
            }
            return Err(EfiError::InvalidParameter);
        }
    }
    Ok(())
}

/// The variadic entries: x1..x7 are spilled right below the caller's stack arguments, so the
/// (GUID, interface) list is one array whatever its length; x18 and x30 are kept as in
/// every shim.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! variadic_entry {
    ($name:ident($handle:ty) => $inner:path) => {
        /// # Safety
        /// Called by payloads with a handle and (GUID, interface) pairs ending with NULL.
        #[unsafe(naked)]
        #[allow(unused_variables)]
        pub unsafe extern "efiapi" fn $name(handle: $handle, first: *mut c_void, second: *mut c_void) -> Status {
            core::arch::naked_asm!(
                "sub sp, sp, #64",
                "stp x1, x2, [sp, #8]",
                "stp x3, x4, [sp, #24]",
                "stp x5, x6, [sp, #40]",
                "str x7, [sp, #56]",
                "stp x18, x30, [sp, #-16]!",
                "add x1, sp, #24",
                "bl {inner}",
                "ldp x18, x30, [sp], #16",
                "add sp, sp, #64",
                "ret",
                inner = sym $inner,
            )
        }
    };
}

/// On the host the table type has no variadic tail: the entries take one pair (the host tests
/// of longer lists call `inner` with their array).
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
macro_rules! variadic_entry {
    ($name:ident($handle:ty) => $inner:path) => {
        /// # Safety
        /// A handle and one (GUID, interface) pair.
        pub unsafe extern "efiapi" fn $name(handle: $handle, first: *mut c_void, second: *mut c_void) -> Status {
            let list = [first, second, core::ptr::null_mut()];
            // SAFETY: the entry of the same service, with a NULL-terminated pair list.
            unsafe { $inner(handle, list.as_ptr()) }
        }
    };
}

variadic_entry!(install_multiple_protocol_interfaces(*mut efi::Handle) => install_multiple_pairs::entry);
variadic_entry!(uninstall_multiple_protocol_interfaces(efi::Handle) => uninstall_multiple_pairs::entry);
