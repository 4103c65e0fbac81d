//! EFI_DEVICE_PATH_UTILITIES_PROTOCOL (required by UEFI 2.10 section 2.6.1): sizes, copies,
//! appends and instances of device paths, each result in fresh pool memory the caller frees.
//! The functions return NULL for NULL or malformed input where the specification has no status.

use crate::efi::device_path::{self as dp};
use crate::services::*;
use efi::protocols::device_path::Protocol as DevicePath;
use efi::protocols::device_path_utilities as dpu;

/// A path argument: `None` for NULL, `Err` for a malformed one.
///
/// # Safety
/// `p` is NULL or points to a device path the payload owns.
unsafe fn path<'a>(p: *const DevicePath) -> Result<Option<&'a [u8]>, ()> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: per the contract.
    unsafe { dp::read(p as *const u8) }.map(Some).ok_or(())
}

/// `bytes` in pool memory, as the device path the caller gets.
fn to_pool(bytes: &[u8]) -> *mut DevicePath {
    pool_copy_for_payload(bytes) as *mut DevicePath
}

efiapi! {
    fn get_device_path_size(p: *const DevicePath) -> usize {
        // SAFETY: the payload's path argument.
        unsafe { path(p) }.ok().flatten().map_or(0, |b| b.len())
    }

    fn duplicate_device_path(p: *const DevicePath) -> *mut DevicePath {
        // SAFETY: as above.
        match unsafe { path(p) } {
            Ok(Some(b)) => to_pool(b),
            _ => core::ptr::null_mut(),
        }
    }

    fn append_device_path(a: *const DevicePath, b: *const DevicePath) -> *mut DevicePath {
        // SAFETY: the payload's path arguments.
        match unsafe { (path(a), path(b)) } {
            (Ok(a), Ok(b)) => to_pool(&dp::append_paths(a, b)),
            _ => core::ptr::null_mut(),
        }
    }

    fn append_device_node(p: *const DevicePath, node: *const DevicePath) -> *mut DevicePath {
        // SAFETY: the payload's node (a header and the length it gives).
        let node = unsafe { dp::read_node(node as *const u8) };
        // SAFETY: as above.
        match unsafe { path(p) } {
            Ok(p) => to_pool(&dp::append_node(p, node)),
            Err(()) => core::ptr::null_mut(),
        }
    }

    fn append_device_path_instance(p: *const DevicePath, instance: *const DevicePath) -> *mut DevicePath {
        // SAFETY: the payload's path arguments.
        match unsafe { (path(p), path(instance)) } {
            (Ok(p), Ok(Some(i))) => to_pool(&dp::append_instance(p, i)),
            _ => core::ptr::null_mut(),
        }
    }

    fn get_next_device_path_instance(p: *mut *mut DevicePath, size: *mut usize) -> *mut DevicePath {
        if p.is_null() || size.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: the payload's in/out path pointer and its out size.
        unsafe {
            let Ok(Some(bytes)) = path(*p) else { return core::ptr::null_mut() };
            let (instance, next) = dp::next_instance(bytes);
            *size = instance.len();
            *p = next.map_or(core::ptr::null_mut(), |off| (*p as *mut u8).add(off) as *mut DevicePath);
            to_pool(&instance)
        }
    }

    fn is_device_path_multi_instance(p: *const DevicePath) -> efi::Boolean {
        // SAFETY: the payload's path argument.
        let multi = unsafe { path(p) }.ok().flatten().is_some_and(dp::is_multi_instance);
        if multi { efi::Boolean::TRUE } else { efi::Boolean::FALSE }
    }

    fn create_device_node(ty: u8, sub: u8, length: u16) -> *mut DevicePath {
        dp::create_node(ty, sub, length).map_or(core::ptr::null_mut(), |n| to_pool(&n))
    }
}

/// Publishes the protocol on a handle of its own, which DevicePathToText and DevicePathFromText
/// then share (as EDK2's DevicePathDxe has them); returns it.
pub fn install(c: &mut Core) -> Result<usize, EfiError> {
    let protocol = dpu::Protocol {
        get_device_path_size: get_device_path_size::entry,
        duplicate_device_path: duplicate_device_path::entry,
        append_device_path: append_device_path::entry,
        append_device_node: append_device_node::entry,
        append_device_path_instance: append_device_path_instance::entry,
        get_next_device_path_instance: get_next_device_path_instance::entry,
        is_device_path_multi_instance: is_device_path_multi_instance::entry,
        create_device_node: create_device_node::entry,
    };
    install_protocol(c, &dpu::PROTOCOL_GUID, protocol)
}
