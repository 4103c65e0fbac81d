//! The `extern "efiapi"` side of the UEFI core: the tables a payload sees, the shims it calls,
//! and the one global core they reach.
//!
//! Every function a payload can call is defined with `efiapi!`. On the blob it generates a
//! naked entry that saves x18 (and the link register) around the Rust body: the precompiled
//! `core` may use x18 as a scratch register, and payloads (Linux) require it preserved. The Rust
//! bodies check the pointers they are given (`args`), call the portable core, and turn its
//! `Result` into a `Status`; the machine is reached through [`Machine`] only, so the whole layer
//! also builds and is tested on the host (`host.rs` is the simulated machine there).
//!
//! One file per service area: `memory` (pages, pool, the map), `events` (TPL, events, timers,
//! Stall), `handles` (handles and protocols), `drivers` (the driver model: Connect and
//! DisconnectController), `misc` (configuration tables, ExitBootServices, the rest), `image` (Load/Start/Exit/UnloadImage), `boot` (the table), `runtime`; `protocols/`
//! one file per protocol the emulator publishes; `diagnostics/` the opt-in integrity check and
//! timeline.

mod args;
pub mod boot;
pub mod diagnostics;
pub mod drivers;
pub mod events;
pub mod handles;
pub mod image;
pub mod memory;
pub mod misc;
pub mod protocols;
pub mod runtime;
mod state;
pub mod tables;

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod host;
#[cfg(test)]
mod tests;

use crate::efi::platform::Clock;
use crate::efi::EfiError;
use crate::mem::PAGE_SIZE;
use alloc::vec::Vec;
pub use args::*;
use r_efi::efi::{self, Guid, Status};
pub use state::*;

/// The machine the services run on: the real one in the blob, a simulated one in host tests.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub type Machine = crate::arch::aarch64::platform::Aarch64;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub type Machine = host::HostMachine;

// The machine, real or simulated, is all of the platform.
const _: () = {
    const fn whole<P: crate::efi::platform::Platform>() {}
    whole::<Machine>()
};

/// Defines payload-callable functions: `fn name(args) -> ret { body }` becomes a module `name`
/// with `inner` (the body) and `entry` (the shim to put in tables: on the blob a naked one that
/// keeps x18 and x30). No function here takes more than eight arguments, so none is passed on
/// the stack, which the shim's 16-byte push would shift.
macro_rules! efiapi {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    )*) => {$(
        #[allow(non_snake_case)]
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$meta])*
            pub(crate) extern "efiapi" fn inner($($arg: $ty),*) $(-> $ret)? $body

            /// The entry a payload calls: `efi_emulator_service` (beside `efiapi!`) with the body's
            /// address in x9 (a scratch register in the calling convention).
            ///
            /// # Safety
            /// Called by payloads with the arguments the UEFI specification gives this service.
            #[cfg(all(target_arch = "aarch64", target_os = "none"))]
            #[unsafe(naked)]
            #[allow(unused_variables)]
            pub unsafe extern "efiapi" fn entry($($arg: $ty),*) $(-> $ret)? {
                core::arch::naked_asm!(
                    "adrp x9, {inner}",
                    "add x9, x9, :lo12:{inner}",
                    "b efi_emulator_service",
                    inner = sym inner,
                )
            }

            /// The entry host tests call through the tables (no x18 to keep there).
            ///
            /// # Safety
            /// As on the blob: the arguments the UEFI specification gives this service.
            #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
            pub unsafe extern "efiapi" fn entry($($arg: $ty),*) $(-> $ret)? {
                inner($($arg),*)
            }
        }
    )*};
}
pub(crate) use efiapi;

// What every service entry does around its body (x9): x18 and x30 saved, the caller's DAIF
// kept, IRQs masked for the body (the tick never meets the core mid-change), the nesting depth
// counted, and on the outermost return the mask set as `services_left` says. x9-x11 are scratch
// registers in the calling convention; no service takes arguments on the stack.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    r#"
    .section .text.efi_emulator_service, "ax"
    .global efi_emulator_service
efi_emulator_service:
    stp     x18, x30, [sp, #-32]!
    mrs     x10, daif
    str     x10, [sp, #16]
    msr     daifset, #2
    adrp    x10, {depth}
    ldr     x11, [x10, :lo12:{depth}]
    add     x11, x11, #1
    str     x11, [x10, :lo12:{depth}]
    blr     x9
    adrp    x10, {depth}
    ldr     x11, [x10, :lo12:{depth}]
    sub     x11, x11, #1
    str     x11, [x10, :lo12:{depth}]
    cbnz    x11, 1f
    str     x0, [sp, #24]
    ldr     x0, [sp, #16]
    bl      {left}
    ldr     x0, [sp, #24]
1:  ldp     x18, x30, [sp], #32
    ret
"#,
    depth = sym SERVICE_DEPTH,
    left = sym services_left,
);

/// How many service calls are running (nested through notify functions and images): the
/// entries count it, and only the outermost return may let the tick's interrupts in.
pub static SERVICE_DEPTH: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The payload gets control back from its outermost service call (`daif`: its interrupt mask
/// when it called): while boot services run, IRQs (the tick) are unmasked when its TPL is below
/// TPL_HIGH_LEVEL; afterwards (an OS calling runtime services) the mask is the caller's own, as
/// Linux checks.
pub extern "C" fn services_left(daif: u64) {
    if exited() {
        Machine::restore_interrupt_mask(daif);
    } else {
        Machine::set_interrupts(with_core(|c| c.events.tpl()) < efi::TPL_HIGH_LEVEL);
    }
}

/// The machine's console as a `fmt::Write`: ConOut's text and the integrity lines, printed
/// whatever the log level.
pub struct ConsoleOut;

impl core::fmt::Write for ConsoleOut {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        <Machine as crate::efi::platform::ConsoleIo>::console_write(s);
        Ok(())
    }
}

/// Runs a boot service: `EFI_UNSUPPORTED` once boot services are gone, else the body's result
/// as a status. A service that changed the memory map signals EFI_EVENT_GROUP_MEMORY_MAP_CHANGE
/// on its way out (EDK2 signals it at every change of the map key).
pub fn guarded(body: impl FnOnce() -> Result<(), EfiError>) -> Status {
    if exited() {
        return Status::UNSUPPORTED;
    }
    let key = map_key();
    let result = body();
    announce_map_change(key);
    status(result)
}

// Out of line: `guarded` is instantiated for every service.
#[inline(never)]
fn map_key() -> usize {
    with_core(|c| c.memory.key())
}

/// Signals MEMORY_MAP_CHANGE when the map key moved from `before` (boot services still run).
#[inline(never)]
fn announce_map_change(before: usize) {
    if !exited() && with_core(|c| c.memory.key() != before) {
        with_core(|c| c.events.signal_group(&efi::EVENT_GROUP_MEMORY_MAP_CHANGE));
        dispatch();
    }
}

/// The heap the emulator keeps free before a service that may grow its tables runs (every table
/// entry a service adds is far smaller), and the step it grows by from the memory map.
pub const HEAP_HEADROOM: u64 = 1 << 20;
pub const HEAP_GROWTH: u64 = 4 << 20; // the message in `heap_room` says 4 MiB

/// [`guarded`] for a service that may grow the emulator's tables (CreateEvent, protocol
/// installs, OpenProtocol, LoadImage, allocations that split the map): with less than
/// [`HEAP_HEADROOM`] free, the heap first grows from the memory map; when RAM or the heap's
/// regions are spent, EFI_OUT_OF_RESOURCES, and services that release keep working.
pub fn guarded_growing(body: impl FnOnce() -> Result<(), EfiError>) -> Status {
    guarded(|| {
        heap_room()?;
        body()
    })
}

#[inline(never)]
fn heap_room() -> Result<(), EfiError> {
    use crate::efi::platform::{HeapRoom, Protection};
    if Machine::heap_free() >= HEAP_HEADROOM {
        return Ok(());
    }
    let pages = HEAP_GROWTH / PAGE_SIZE;
    let grown = with_core(|c| {
        let at = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, pages, PAGE_SIZE).ok()?;
        // SAFETY: fresh pages of the map, the core's until ExitBootServices, made plain data
        // (a payload may have left them read-only or executable).
        let taken = Machine::set_access(at, HEAP_GROWTH, crate::efi::platform::Access::DATA).is_ok() && unsafe { Machine::heap_grow(at, HEAP_GROWTH) };
        if !taken {
            let _ = c.memory.free(at, pages);
        }
        taken.then_some(at)
    });
    match grown {
        Some(at) => {
            log::info!("the emulator's heap grew by 4 MiB at {at:#x}");
            Ok(())
        }
        None => {
            log::warn!("the emulator's heap is low ({} KiB free) and cannot grow: EFI_OUT_OF_RESOURCES", Machine::heap_free() / 1024);
            Err(EfiError::OutOfResources)
        }
    }
}

/// Runs a service that stays after ExitBootServices (runtime services, protocol functions that
/// check for themselves) and converts its result.
pub fn run(body: impl FnOnce() -> Result<(), EfiError>) -> Status {
    status(body())
}

/// Converts a core result to a status.
pub fn status(r: Result<(), EfiError>) -> Status {
    crate::efi::status_of(r)
}

/// A table header at revision 2.10 for a table of type `T`; the CRC is filled in by `seal`.
pub fn table_header<T>(signature: u64) -> efi::TableHeader {
    efi::TableHeader { signature, revision: crate::efi::guids::REVISION_2_10, header_size: core::mem::size_of::<T>() as u32, crc32: 0, reserved: 0 }
}

/// Recomputes a table header's CRC32 over `HeaderSize` bytes with the CRC field zeroed.
///
/// # Safety
/// `hdr` must point to a table of at least `header_size` bytes that nothing else accesses.
pub unsafe fn seal(hdr: *mut efi::TableHeader) {
    // SAFETY: per the contract.
    unsafe {
        (*hdr).crc32 = 0;
        let bytes = core::slice::from_raw_parts(hdr as *const u8, (*hdr).header_size as usize);
        (*hdr).crc32 = crate::efi::crc32::crc32(bytes);
    }
}

/// Writes `value` into fresh pool memory of type `ty` and returns it (protocol instances and
/// tables the emulator publishes).
pub fn publish<T>(c: &mut Core, ty: u32, value: T) -> Result<*mut T, EfiError> {
    let p = c.pool.allocate(&mut c.memory, ty, core::mem::size_of::<T>())? as *mut T;
    // SAFETY: fresh pool memory of T's size, 16-byte aligned (pool allocations are).
    unsafe { p.write(value) };
    Ok(p)
}

/// `bytes` in fresh boot-services pool memory the payload frees, for services that return a
/// pointer: NULL when the pool is exhausted or boot services are gone.
pub fn pool_copy_for_payload(bytes: &[u8]) -> *mut u8 {
    if exited() {
        return core::ptr::null_mut();
    }
    with_core(|c| copy_to_pool(c, bytes)).unwrap_or(core::ptr::null_mut())
}

/// `bytes` in fresh boot-services pool memory (device-path copies, load options).
pub fn copy_to_pool(c: &mut Core, bytes: &[u8]) -> Result<*mut u8, EfiError> {
    let p = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, bytes.len())?;
    // SAFETY: fresh pool buffer of that size.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    Ok(p)
}

/// Installs a protocol instance the emulator publishes on a new handle.
pub fn install_protocol<T>(c: &mut Core, guid: &Guid, value: T) -> Result<usize, EfiError> {
    install_protocol_on(c, None, guid, value)
}

/// [`install_protocol`] on `handle` (`None`: a new one); returns the handle.
pub fn install_protocol_on<T>(c: &mut Core, handle: Option<usize>, guid: &Guid, value: T) -> Result<usize, EfiError> {
    let p = publish(c, efi::BOOT_SERVICES_DATA, value)?;
    c.handles.install(handle, guid, p as usize)
}
