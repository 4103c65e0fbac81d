//! The initrd from `/chosen`, served through LoadFile2 on the handle Linux's EFI stub looks
//! for: device path exactly VenMedia(LINUX_EFI_INITRD_MEDIA_GUID)/End.

use crate::drivers::fdt;
use crate::efi::device_path;
use crate::services::*;
use core::ffi::c_void;
use efi::protocols::load_file2;

/// This protocol's part of the core.
#[derive(Default)]
pub struct InitrdState {
    /// The initrd from `/chosen`, `[start, end)`.
    pub range: Option<(u64, u64)>,
    /// The handle that serves it, until a payload installs its own initrd there.
    pub handle: Option<usize>,
}

efiapi! {
    fn initrd_load_file(this: *mut load_file2::Protocol, path: *mut efi::protocols::device_path::Protocol, boot_policy: efi::Boolean, size: *mut usize, buffer: *mut c_void) -> Status {
        guarded(|| {
            let _ = (this, path);
            if bool::from(boot_policy) {
                return Err(EfiError::Unsupported);
            }
            let (start, end) = with_core(|c| c.initrd.range).ok_or(EfiError::NotFound)?;
            let len = (end - start) as usize;
            // SAFETY: the payload's in/out size argument.
            unsafe { sized_buffer(size, len)? };
            if buffer.is_null() {
                return Err(EfiError::BufferTooSmall);
            }
            // SAFETY: the initrd lies in loader-placed RAM; the payload's buffer holds `len`.
            unsafe { core::ptr::copy_nonoverlapping(start as *const u8, buffer as *mut u8, len) };
            Ok(())
        })
    }
}

/// Publishes the initrd `[start, end)`.
pub fn install(c: &mut Core, start: u64, end: u64) -> Result<(), EfiError> {
    c.initrd.range = Some((start, end));
    let dp = copy_to_pool(c, &device_path::vendor_media(&crate::efi::guids::LINUX_EFI_INITRD_MEDIA))?;
    let proto = publish(c, efi::BOOT_SERVICES_DATA, load_file2::Protocol { load_file: initrd_load_file::entry })?;
    let h = c.handles.install(None, &efi::protocols::device_path::PROTOCOL_GUID, dp as usize)?;
    c.handles.install(Some(h), &load_file2::PROTOCOL_GUID, proto as usize)?;
    c.initrd.handle = Some(h);
    Ok(())
}

/// A payload installs its own initrd on the same device path (GRUB's `initrd` command,
/// systemd-stub assembling one from credentials and sysexts): the loader's steps aside, as it
/// would never have been there had the payload been started by firmware.
pub fn yield_to(c: &mut Core, handle: usize) -> bool {
    if c.initrd.handle != Some(handle) {
        return false;
    }
    withdraw(c, handle, "the payload installs its own initrd");
    true
}

/// Takes the loader's initrd (served on `handle`) back, and says why.
pub fn withdraw(c: &mut Core, handle: usize, why: &str) {
    for guid in [load_file2::PROTOCOL_GUID, efi::protocols::device_path::PROTOCOL_GUID] {
        if let Ok(iface) = c.handles.get(handle, &guid) {
            let _ = c.handles.uninstall(handle, &guid, iface);
        }
    }
    c.initrd.handle = None;
    forget_in_device_tree(c);
    log::info!("{why}: the loader's initrd is withdrawn");
}

/// The loader named its initrd in the device tree's `/chosen` too, and Linux takes that over
/// the initrd its EFI stub loads: the published tree forgets it (in place, FDT_NOP), when it
/// still names exactly the loader's initrd.
fn forget_in_device_tree(c: &Core) {
    let (Some(initrd), Some(&(_, dtb))) = (c.initrd.range, c.config.iter().find(|(g, _)| *g == crate::efi::guids::DEVICE_TREE)) else {
        return;
    };
    // SAFETY: the published device tree: the loader's DTB (validated at entry) or one a payload
    // installed, in RAM; its header is read first, then `totalsize` bytes.
    let size = match fdt::total_size(unsafe { core::slice::from_raw_parts(dtb as *const u8, fdt::HEADER_SIZE) }) {
        Ok(size) => size,
        Err(_) => return,
    };
    // SAFETY: as above; nothing else holds a reference to the tree while boot services run.
    let blob = unsafe { core::slice::from_raw_parts_mut(dtb as *mut u8, size) };
    if fdt::Fdt::new(blob).ok().and_then(|f| f.initrd()) != Some(initrd) {
        return;
    }
    for name in ["linux,initrd-start", "linux,initrd-end"] {
        fdt::nop_property(blob, "/chosen", name);
    }
}
