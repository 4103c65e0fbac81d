//! The UEFI driver model (UEFI 2.10 section 7.3): ConnectController starts the drivers a
//! payload installed (EFI_DRIVER_BINDING_PROTOCOL) on a controller, DisconnectController stops
//! them, and OpenProtocol(EXCLUSIVE) and UninstallProtocolInterface disconnect the drivers that
//! hold a protocol before they take it, as EDK2 does. The emulator ships no drivers itself; a
//! payload that loads some (a UEFI shell, a driver its boot manager loads) gets the binding
//! calls in EDK2's order.
//!
//! Driver functions are called with the core released: they call boot services themselves.

use super::*;
use efi::protocols::device_path::Protocol as DevicePath;
use efi::protocols::driver_binding;

efiapi! {
    fn connect_controller(controller: efi::Handle, drivers: *mut efi::Handle, remaining: *mut DevicePath, recursive: efi::Boolean) -> Status {
        guarded(|| {
            // SAFETY: the payload's NULL-terminated driver handle list, when it gives one.
            let named = unsafe { handle_list(drivers)? };
            connect(controller as usize, &named, remaining, recursive.into(), 0)
        })
    }

    fn disconnect_controller(controller: efi::Handle, driver: efi::Handle, child: efi::Handle) -> Status {
        guarded(|| disconnect(controller as usize, (!driver.is_null()).then_some(driver as usize), (!child.is_null()).then_some(child as usize)))
    }
}

/// How deep a recursive ConnectController goes (real device trees are a few levels).
const MAX_DEPTH: usize = 16;

/// Most driver handles ConnectController reads from its list (a list longer than the handle
/// database holds names a handle twice or is not terminated).
const MAX_NAMED_DRIVERS: usize = 4096;

/// The NULL-terminated handle list at `list` (none for NULL).
///
/// # Safety
/// `list` must be NULL or point to handles up to a NULL one.
unsafe fn handle_list(list: *const efi::Handle) -> Result<Vec<usize>, EfiError> {
    let mut out = Vec::new();
    if list.is_null() {
        return Ok(out);
    }
    for i in 0.. {
        // SAFETY: per the contract, up to and including the NULL.
        let h = unsafe { list.add(i).read_unaligned() } as usize;
        if h == 0 {
            break;
        }
        if i == MAX_NAMED_DRIVERS {
            return Err(EfiError::InvalidParameter);
        }
        out.push(h);
    }
    Ok(out)
}

/// A driver: the handle its Driver Binding protocol is on, and the protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Driver {
    handle: usize,
    binding: *mut driver_binding::Protocol,
}

/// The drivers ConnectController tries, in UEFI 2.10's order: the ones the caller named, then
/// every other Driver Binding by Version, highest first (the override protocols are not
/// served here).
fn candidates(c: &Core, named: &[usize]) -> Vec<Driver> {
    let all: Vec<Driver> = c.handles.with_protocol(&driver_binding::PROTOCOL_GUID).map(|(handle, i)| Driver { handle, binding: i as *mut driver_binding::Protocol }).collect();
    let mut out: Vec<Driver> = named.iter().filter_map(|h| all.iter().find(|d| d.handle == *h).copied()).collect();
    // SAFETY: each binding is the interface a payload installed under the Driver Binding GUID.
    let version = |d: &Driver| unsafe { (*d.binding).version };
    // By insertion, highest Version first, equal ones in handle order: a few drivers at most,
    // and the library's sorts cost kilobytes of the blob.
    let mut rest: Vec<Driver> = Vec::new();
    for d in all.into_iter().filter(|d| !named.contains(&d.handle)) {
        let at = rest.iter().position(|r| version(r) < version(&d)).unwrap_or(rest.len());
        rest.insert(at, d);
    }
    out.extend(rest);
    out
}

// connect and disconnect are out of line: several services call them (the blob's size).
/// ConnectController: asks every candidate whether it supports `controller`, starts those that
/// do (from the first again after each start, as a started driver may make others apply), then
/// connects the children when `recursive`. EFI_NOT_FOUND when none started (unless
/// `remaining` is an End node: nothing was to be made). `depth` counts the recursion: children
/// are connected at most [`MAX_DEPTH`] levels down (a payload can make children that name their
/// parents).
#[inline(never)]
fn connect(controller: usize, named: &[usize], remaining: *mut DevicePath, recursive: bool, depth: usize) -> Result<(), EfiError> {
    if !with_core(|c| c.handles.is_handle(controller)) || named.iter().any(|h| !with_core(|c| c.handles.is_handle(*h))) {
        return Err(EfiError::InvalidParameter);
    }
    let mut started: Vec<usize> = Vec::new();
    loop {
        let next = with_core(|c| candidates(c, named)).into_iter().filter(|d| !started.contains(&d.handle)).find(|d| {
            // SAFETY: the payload's Driver Binding functions, called as UEFI says: the binding
            // itself, the controller, the remaining path the caller gave; the core is released.
            unsafe {
                ((*d.binding).supported)(d.binding, controller as efi::Handle, remaining) == Status::SUCCESS
                    && ((*d.binding).start)(d.binding, controller as efi::Handle, remaining) == Status::SUCCESS
            }
        });
        match next {
            Some(d) => started.push(d.handle),
            None => break,
        }
    }
    if recursive && depth < MAX_DEPTH {
        for child in with_core(|c| c.handles.children_of(controller, None)) {
            let _ = connect(child, &[], core::ptr::null_mut(), true, depth + 1);
        }
    }
    // SAFETY: `remaining` is NULL or the payload's device path.
    let ends_here =
        !remaining.is_null() && unsafe { (*remaining).r#type == crate::efi::device_path::TYPE_END && (*remaining).sub_type == crate::efi::device_path::SUBTYPE_END_ENTIRE };
    if started.is_empty() && !ends_here {
        return Err(EfiError::NotFound);
    }
    Ok(())
}

/// DisconnectController: each driver managing `controller` (or only `driver`) stops its
/// children (or only `child`), then, once none is left, lets go of the controller. A driver
/// whose Stop fails makes it EFI_DEVICE_ERROR; nothing to stop is success.
#[inline(never)]
fn disconnect(controller: usize, driver: Option<usize>, child: Option<usize>) -> Result<(), EfiError> {
    let valid = |h: Option<usize>| h.is_none_or(|h| with_core(|c| c.handles.is_handle(h)));
    if !valid(Some(controller)) || !valid(driver) || !valid(child) {
        return Err(EfiError::InvalidParameter);
    }
    let managing: Vec<usize> = with_core(|c| c.handles.drivers_of(controller)).into_iter().filter(|d| driver.is_none_or(|x| x == *d)).collect();
    for d in managing {
        let Ok(binding) = with_core(|c| c.handles.get(d, &driver_binding::PROTOCOL_GUID)) else {
            log::warn!("DisconnectController: the driver {d:#x} holding {controller:#x} has no Driver Binding to stop it with");
            return Err(EfiError::DeviceError);
        };
        let binding = binding as *mut driver_binding::Protocol;
        let children = with_core(|c| c.handles.children_of(controller, Some(d)));
        let mut stopping: Vec<efi::Handle> = children.iter().filter(|h| child.is_none_or(|x| x == **h)).map(|h| *h as efi::Handle).collect();
        // SAFETY: the driver's Stop, with its binding, the controller and the children it made
        // (or none: the controller itself); the core is released.
        unsafe {
            if !stopping.is_empty() && ((*binding).stop)(binding, controller as efi::Handle, stopping.len(), stopping.as_mut_ptr()) != Status::SUCCESS {
                return Err(EfiError::DeviceError);
            }
            let none_left = with_core(|c| c.handles.children_of(controller, Some(d))).is_empty();
            if none_left && ((*binding).stop)(binding, controller as efi::Handle, 0, core::ptr::null_mut()) != Status::SUCCESS {
                return Err(EfiError::DeviceError);
            }
        }
    }
    Ok(())
}

/// UninstallProtocolInterface as EDK2 has it: the drivers holding the protocol are
/// disconnected, the passive opens go with it; when something still holds it, the drivers are
/// connected again and it stays (EFI_ACCESS_DENIED).
pub fn uninstall(handle: usize, guid: &Guid, interface: usize) -> Result<(), EfiError> {
    if with_core(|c| c.handles.get(handle, guid)) != Ok(interface) {
        return Err(EfiError::NotFound);
    }
    for d in with_core(|c| c.handles.drivers_holding(handle, guid)) {
        let _ = disconnect(handle, Some(d), None);
    }
    let result = with_core(|c| {
        c.handles.close_passive_opens(handle, guid);
        c.handles.uninstall(handle, guid, interface)
    });
    if result == Err(EfiError::AccessDenied) {
        let _ = connect(handle, &[], core::ptr::null_mut(), true, 0);
    }
    result
}

/// Before an EXCLUSIVE open: the drivers holding the protocol BY_DRIVER are disconnected
/// (EDK2); the open itself then finds whether anything still holds it.
pub fn make_exclusive(handle: usize, guid: &Guid) {
    for d in with_core(|c| c.handles.drivers_holding(handle, guid)) {
        // One that will not let go still holds it: the open then finds it and is refused.
        let _ = disconnect(handle, Some(d), None);
    }
}
