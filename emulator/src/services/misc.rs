//! The rest of boot services: configuration tables, ExitBootServices, the monotonic count, the
//! watchdog, CRC32, CopyMem and SetMem.

use super::*;
use crate::efi::platform::{BulkCopy, Clock, Power};
use core::ffi::c_void;

efiapi! {
    fn install_configuration_table(guid: *mut Guid, table: *mut c_void) -> Status {
        guarded_growing(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(guid)? };
            with_core(|c| c.install_config(g, table as usize))
        })
    }

    fn exit_boot_services(image: efi::Handle, key: usize) -> Status {
        guarded(|| exit_boot_services_body(image as usize, key))
    }

    fn get_next_monotonic_count(count: *mut u64) -> Status {
        guarded(|| {
            if count.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let n = with_core(|c| {
                let n = next_monotonic(c.misc.monotonic)?;
                c.misc.monotonic = n;
                Ok(n)
            })?;
            // SAFETY: the payload's out-argument.
            unsafe { out(count, n) }
        })
    }

    fn set_watchdog_timer(timeout: usize, code: u64, size: usize, data: *mut u16) -> Status {
        guarded(|| {
            let _ = (size, data);
            // Codes up to 0xffff are the firmware's own (spec).
            if code <= 0xffff && timeout != 0 {
                return Err(EfiError::InvalidParameter);
            }
            let image = with_core(|c| c.running.last().copied().unwrap_or(0));
            arm_watchdog(timeout as u64, image);
            Ok(())
        })
    }

    fn calculate_crc32(data: *mut c_void, size: usize, crc: *mut u32) -> Status {
        guarded(|| {
            if data.is_null() || size == 0 || crc.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload passes `size` readable bytes and an out-argument.
            unsafe { out(crc, crate::efi::crc32::crc32(bytes_arg(data as *const u8, size)?)) }
        })
    }

    fn copy_mem(dest: *mut c_void, src: *mut c_void, len: usize) {
        // SAFETY: CopyMem handles overlapping buffers; the payload vouches for both.
        unsafe { Machine::copy(dest as *mut u8, src as *const u8, len) };
    }

    fn set_mem(buffer: *mut c_void, len: usize, value: u8) {
        // SAFETY: the payload vouches for `len` writable bytes.
        unsafe { Machine::fill(buffer as *mut u8, value, len) };
    }
}

/// The value after `last`; EFI_DEVICE_ERROR once all 64 bits are spent (UEFI 2.10 section 7.5.2).
fn next_monotonic(last: u64) -> Result<u64, EfiError> {
    last.checked_add(1).ok_or(EfiError::DeviceError)
}

/// Where GetNextMonotonicCount's high 32 bits come from, so that a count taken in this boot is
/// above every count of earlier boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonotonicHigh {
    /// The firmware's non-volatile count (its GetNextHighMonotonicCount), as EDK2 starts it.
    Firmware(u32),
    /// Without firmware: the real-time clock's seconds, which grow between boots unless the
    /// clock is set back or the machine boots twice within a second.
    Clock(u32),
    /// Neither: the high half is 0 and counts of this boot may repeat an earlier boot's.
    None,
}

impl MonotonicHigh {
    pub fn choose(firmware: Option<u32>, rtc_seconds: Option<u64>) -> Self {
        match (firmware, rtc_seconds) {
            (Some(high), _) => Self::Firmware(high),
            (None, Some(seconds)) => Self::Clock(u32::try_from(seconds).unwrap_or(u32::MAX)),
            (None, None) => Self::None,
        }
    }

    /// The count before the first GetNextMonotonicCount of this boot.
    pub fn start(self) -> u64 {
        match self {
            Self::Firmware(high) | Self::Clock(high) => u64::from(high) << 32,
            Self::None => 0,
        }
    }
}

/// This file's part of the core.
#[derive(Default)]
pub struct MiscState {
    /// The last value GetNextMonotonicCount returned (or the start, [`MonotonicHigh::start`]).
    pub monotonic: u64,
    /// EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES was signalled (at the first ExitBootServices).
    pub before_exit_signaled: bool,
    pub watchdog: Option<Watchdog>,
}

/// The armed watchdog.
#[derive(Clone, Copy)]
pub struct Watchdog {
    /// When it runs out, in counter ticks.
    pub deadline: u64,
    /// Its length, and the image it was armed for, for the message.
    pub seconds: u64,
    pub image: usize,
}

/// What a boot manager signals right before it starts a boot option (UEFI 2.10 section 7.1):
/// EFI_EVENT_GROUP_READY_TO_BOOT, then EFI_EVENT_GROUP_AFTER_READY_TO_BOOT.
pub fn ready_to_boot() {
    for group in [efi::EVENT_GROUP_READY_TO_BOOT, efi::EVENT_GROUP_AFTER_READY_TO_BOOT] {
        with_core(|c| c.events.signal_group(&group));
        dispatch();
    }
}

/// The watchdog firmware arms before it starts a boot option (UEFI 2.10 section 3.1.2).
pub const BOOT_WATCHDOG_SECONDS: u64 = 300;

/// Arms the watchdog for `seconds` from now (0 disarms), naming `image`. Without a timer
/// interrupt it is checked whenever a payload waits in boot services (WaitForEvent, CheckEvent,
/// Stall, RestoreTPL), the places a hung payload spins in.
pub fn arm_watchdog(seconds: u64, image: usize) {
    let now = Machine::ticks();
    with_core(|c| c.misc.watchdog = (seconds != 0).then(|| Watchdog { deadline: now.saturating_add(seconds.saturating_mul(Machine::ticks_per_second())), seconds, image }));
}

/// Ends the machine when the watchdog has run out: which image hung, for how long, then a reset
/// (as firmware does; QEMU's `-no-reboot` makes that an exit).
pub fn check_watchdog() {
    let now = Machine::ticks();
    let Some(Watchdog { seconds, image, .. }) = with_core(|c| c.misc.watchdog.filter(|w| now >= w.deadline)) else {
        return;
    };
    log::error!("watchdog: image {image:#x} did not return or exit within {seconds} s of the watchdog being armed: resetting");
    Machine::power(crate::efi::platform::PowerAction::Reset)
}

/// Test hook (`/chosen/efi-emulator,debug-stale-map-key`, only in blobs built with the
/// `test-hooks` feature): the map changes under the first ExitBootServices, as if a timer event
/// had allocated, so the payload's one retry runs.
#[cfg(feature = "test-hooks")]
pub static DEBUG_STALE_KEY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn exit_boot_services_body(image: usize, key: usize) -> Result<(), EfiError> {
    // The last chance to use boot services, before the key is checked, once (UEFI 2.10
    // section 7.1; EDK2 signals it at the first call only).
    if with_core(|c| !core::mem::replace(&mut c.misc.before_exit_signaled, true)) {
        with_core(|c| c.events.signal_group(&efi::EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES));
        dispatch();
    }
    with_core(|c| {
        // The spec refuses only a stale key. The handle may be one the emulator never loaded:
        // shim 16 starts GRUB on a handle of its own, and GRUB hands it to Linux.
        if !c.images.iter().any(|i| i.handle == image) {
            log::info!("ExitBootServices from handle {image:#x}, an image the emulator did not load");
        }
        #[cfg(feature = "test-hooks")]
        if DEBUG_STALE_KEY.swap(false, core::sync::atomic::Ordering::Relaxed) {
            let p = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, 1, PAGE_SIZE)?;
            c.memory.free(p, 1)?;
            log::warn!("debug: the memory map changed under ExitBootServices (key {key} -> {})", c.memory.key());
        }
        if key != c.memory.key() {
            log::warn!("ExitBootServices with stale map key {key} (current {}): EFI_INVALID_PARAMETER", c.memory.key());
            return Err(EfiError::InvalidParameter);
        }
        c.events.signal_group(&efi::EVENT_GROUP_EXIT_BOOT_SERVICES);
        super::protocols::tcg2::measure_exit_boot_services(c);
        Ok(())
    })?;
    dispatch();
    with_core(|c| {
        c.events.cancel_timers();
        // ExitBootServices disarms the watchdog (spec).
        c.misc.watchdog = None;
        // What of the system table stays valid at runtime (UEFI 2.10 section 4.3): the boot
        // services and the consoles go, as EDK2 clears them.
        let st = c.tables.systab;
        // SAFETY: the system table lives in runtime data the core owns; the payload is in the
        // call that ends boot services and reads it again only after.
        unsafe {
            (*st).boot_services = core::ptr::null_mut();
            (*st).con_in = core::ptr::null_mut();
            (*st).console_in_handle = core::ptr::null_mut();
            (*st).con_out = core::ptr::null_mut();
            (*st).console_out_handle = core::ptr::null_mut();
            (*st).std_err = core::ptr::null_mut();
            (*st).standard_error_handle = core::ptr::null_mut();
            super::seal(&raw mut (*st).hdr);
        }
    });
    super::diagnostics::integrity::verify("ExitBootServices");
    let address_change: Vec<_> = with_core(|c| c.events.group_notifies(&efi::EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE).collect());
    // Interrupts stay masked (they always were); from here on boot services refuse.
    Machine::mask_interrupts();
    set_exited();
    super::runtime::exit_boot_services(&address_change);
    super::image::report_exit_boot_services();
    Ok(())
}
