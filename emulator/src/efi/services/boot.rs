//! Boot services: the table and every function in it.

use super::*;
use crate::arch::aarch64::cpu;
use crate::efi::events::TimerDelay;
use crate::efi::handles::Search;
use crate::efi::memory::AllocateType;
use crate::efi::protocols::device_path;
use core::mem::size_of;

/// Descriptor stride GetMemoryMap reports (EDK2's, larger than the struct, so payloads must
/// step by DescriptorSize as the spec says).
pub const DESC_SIZE: usize = 48;

/// Runs a boot service body unless boot services are gone.
macro_rules! bs {
    ($body:expr) => {{
        if let Err(s) = boot_services_available() {
            return s;
        }
        let r: Result<(), EfiError> = (|| $body)();
        status(r)
    }};
}

/// Whether `e` is signaled (its signal is then taken); a NOTIFY_WAIT event's notify function
/// runs first, outside the core, so it can signal. Shared by CheckEvent and WaitForEvent.
fn take_signal(e: usize) -> Result<bool, EfiError> {
    match with_core(|c| c.events.check(e)) {
        Ok(None) => Ok(true),
        Ok(Some(n)) => {
            dispatch(alloc::vec![n]);
            Ok(with_core(|c| {
                let signaled = c.events.is_signaled(e);
                if signaled {
                    c.events.reset(e);
                }
                signaled
            }))
        }
        Err(EfiError::NotReady) => Ok(false),
        Err(e) => Err(e),
    }
}

fn poll_timers() {
    let due = with_core(|c| c.events.poll_timers(cpu::ticks()));
    dispatch(due);
}

efiapi! {
    fn raise_tpl(new: efi::Tpl) -> efi::Tpl {
        if boot_services_available().is_err() {
            return new;
        }
        with_core(|c| c.events.raise_tpl(new))
    }

    fn restore_tpl(old: efi::Tpl) {
        if boot_services_available().is_ok() {
            with_core(|c| c.events.restore_tpl(old));
        }
    }

    fn allocate_pages(how: efi::AllocateType, ty: efi::MemoryType, pages: usize, memory: *mut efi::PhysicalAddress) -> Status {
        bs!({
            if memory.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: non-NULL in/out pointer from the payload.
            let addr = unsafe { memory.read_unaligned() };
            let how = match how {
                efi::ALLOCATE_ANY_PAGES => AllocateType::AnyPages,
                efi::ALLOCATE_MAX_ADDRESS => AllocateType::MaxAddress(addr),
                efi::ALLOCATE_ADDRESS => AllocateType::Address(addr),
                _ => return Err(EfiError::InvalidParameter),
            };
            let at = with_core(|c| c.memory.allocate(how, ty, pages as u64, PAGE_SIZE))?;
            out(memory, at)
        })
    }

    fn free_pages(memory: efi::PhysicalAddress, pages: usize) -> Status {
        bs!(with_core(|c| c.memory.free(memory, pages as u64)))
    }

    fn get_memory_map(size: *mut usize, map: *mut efi::MemoryDescriptor, key: *mut usize, desc_size: *mut usize, version: *mut u32) -> Status {
        if EXITED.load(Ordering::Relaxed) {
            return Status::UNSUPPORTED;
        }
        status((|| {
            if size.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: non-NULL in/out pointer.
            let have = unsafe { size.read_unaligned() };
            if !desc_size.is_null() {
                out(desc_size, DESC_SIZE)?;
            }
            if !version.is_null() {
                out(version, efi::MEMORY_DESCRIPTOR_VERSION)?;
            }
            with_core(|c| {
                let buf = (!map.is_null()).then(|| {
                    // SAFETY: the payload says `have` bytes at `map` are its buffer.
                    unsafe { core::slice::from_raw_parts_mut(map as *mut u8, have) }
                });
                match c.memory.write_descriptors(buf, DESC_SIZE) {
                    Ok(n) => {
                        out(size, n)?;
                        if key.is_null() {
                            return Err(EfiError::InvalidParameter);
                        }
                        out(key, c.memory.key())
                    }
                    Err((EfiError::BufferTooSmall, needed)) if map.is_null() && have >= needed => Err(EfiError::InvalidParameter),
                    Err((e, needed)) => {
                        out(size, needed)?;
                        Err(e)
                    }
                }
            })
        })())
    }

    fn allocate_pool(ty: efi::MemoryType, size: usize, buffer: *mut *mut c_void) -> Status {
        bs!({
            if buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let p = with_core(|c| c.pool.allocate(&mut c.memory, ty, size))?;
            out(buffer, p as *mut c_void)
        })
    }

    fn free_pool(buffer: *mut c_void) -> Status {
        bs!(with_core(|c| c.pool.free(&mut c.memory, buffer as *mut u8)))
    }

    fn create_event(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *mut c_void, event: *mut efi::Event) -> Status {
        bs!(create(ty, tpl, notify, context, None, event))
    }

    fn create_event_ex(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *const c_void, group: *const Guid, event: *mut efi::Event) -> Status {
        bs!({
            let group = if group.is_null() { None } else { Some(guid_arg(group)?) };
            // CreateEventEx forbids the two legacy group types: the group GUID says it.
            if ty == efi::EVT_SIGNAL_EXIT_BOOT_SERVICES || ty == efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE {
                return Err(EfiError::InvalidParameter);
            }
            create(ty, tpl, notify, context as *mut c_void, group, event)
        })
    }

    fn set_timer(event: efi::Event, delay: efi::TimerDelay, trigger: u64) -> Status {
        bs!({
            let delay = match delay {
                efi::TIMER_CANCEL => TimerDelay::Cancel,
                efi::TIMER_PERIODIC => TimerDelay::Periodic,
                efi::TIMER_RELATIVE => TimerDelay::Relative,
                _ => return Err(EfiError::InvalidParameter),
            };
            with_core(|c| c.events.set_timer(event as usize, delay, trigger, cpu::ticks()))
        })
    }

    fn wait_for_event(count: usize, events: *mut efi::Event, index: *mut usize) -> Status {
        bs!({
            if count == 0 || events.is_null() || index.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            if with_core(|c| c.events.tpl()) != crate::efi::events::TPL_APPLICATION {
                return Err(EfiError::Unsupported);
            }
            // SAFETY: the payload passes `count` events.
            let list = unsafe { core::slice::from_raw_parts(events, count) };
            loop {
                poll_timers();
                for (i, e) in list.iter().enumerate() {
                    if take_signal(*e as usize)? {
                        return out(index, i);
                    }
                }
                core::hint::spin_loop();
            }
        })
    }

    fn signal_event(event: efi::Event) -> Status {
        bs!({
            let due = with_core(|c| c.events.signal(event as usize))?;
            dispatch(due);
            Ok(())
        })
    }

    fn close_event(event: efi::Event) -> Status {
        bs!(with_core(|c| c.events.close(event as usize)))
    }

    fn check_event(event: efi::Event) -> Status {
        bs!({
            poll_timers();
            if take_signal(event as usize)? { Ok(()) } else { Err(EfiError::NotReady) }
        })
    }

    fn install_protocol_interface(handle: *mut efi::Handle, protocol: *mut Guid, interface_type: efi::InterfaceType, interface: *mut c_void) -> Status {
        bs!({
            if handle.is_null() || interface_type != efi::NATIVE_INTERFACE {
                return Err(EfiError::InvalidParameter);
            }
            let g = guid_arg(protocol)?;
            // SAFETY: non-NULL in/out handle pointer.
            let h = unsafe { handle.read_unaligned() } as usize;
            let h = with_core(|c| c.handles.install((h != 0).then_some(h), &g, interface as usize))?;
            out(handle, h as efi::Handle)
        })
    }

    fn reinstall_protocol_interface(handle: efi::Handle, protocol: *mut Guid, old: *mut c_void, new: *mut c_void) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            with_core(|c| c.handles.reinstall(handle as usize, &g, old as usize, new as usize))
        })
    }

    fn uninstall_protocol_interface(handle: efi::Handle, protocol: *mut Guid, interface: *mut c_void) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            with_core(|c| c.handles.uninstall(handle as usize, &g, interface as usize))
        })
    }

    fn handle_protocol(handle: efi::Handle, protocol: *mut Guid, interface: *mut *mut c_void) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            if interface.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let i = with_core(|c| c.handles.get(handle as usize, &g))?;
            out(interface, i as *mut c_void)
        })
    }

    fn register_protocol_notify(protocol: *mut Guid, event: efi::Event, registration: *mut *mut c_void) -> Status {
        bs!({
            guid_arg(protocol)?;
            if registration.is_null() || !with_core(|c| c.events.exists(event as usize)) {
                return Err(EfiError::InvalidParameter);
            }
            // No driver here installs protocols behind a payload's back, so there is nothing
            // to be told about: say so rather than accept a registration that never fires.
            Err(EfiError::Unsupported)
        })
    }

    fn locate_handle(search: efi::LocateSearchType, protocol: *mut Guid, key: *mut c_void, size: *mut usize, buffer: *mut efi::Handle) -> Status {
        bs!({
            let _ = key;
            let found = locate(search, protocol)?;
            sized_buffer(size, found.len() * size_of::<efi::Handle>())?;
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

    fn locate_device_path(protocol: *mut Guid, path: *mut *mut efi::protocols::device_path::Protocol, device: *mut efi::Handle) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            if path.is_null() || device.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: non-NULL in/out pointer to the payload's device path pointer.
            let start = unsafe { path.read_unaligned() } as *const u8;
            // SAFETY: the payload passes a device path.
            let wanted = unsafe { device_path::read(start) }.ok_or(EfiError::InvalidParameter)?;
            let (handle, matched) = with_core(|c| {
                let dp_guid = efi::protocols::device_path::PROTOCOL_GUID;
                c.handles
                    .with_protocol(&g)
                    .filter_map(|(h, _)| {
                        let dp = c.handles.get(h, &dp_guid).ok()?;
                        // SAFETY: device paths we or the payload installed.
                        let bytes = unsafe { device_path::read(dp as *const u8) }?;
                        device_path::match_prefix(bytes, wanted).map(|n| (h, n))
                    })
                    .max_by_key(|&(_, n)| n)
                    .ok_or(EfiError::NotFound)
            })?;
            out(device, handle as efi::Handle)?;
            // SAFETY: `matched` is inside the payload's path.
            out(path, unsafe { start.add(matched) } as *mut efi::protocols::device_path::Protocol)
        })
    }

    fn install_configuration_table(guid: *mut Guid, table: *mut c_void) -> Status {
        bs!({
            let g = guid_arg(guid)?;
            with_core(|c| c.install_config(g, table as usize))
        })
    }

    fn exit_boot_services(image: efi::Handle, key: usize) -> Status {
        if EXITED.load(Ordering::Relaxed) {
            return Status::UNSUPPORTED;
        }
        status(exit_boot_services_body(image as usize, key))
    }

    fn get_next_monotonic_count(count: *mut u64) -> Status {
        bs!({
            let n = with_core(|c| {
                c.monotonic += 1;
                c.monotonic
            });
            out(count, n)
        })
    }

    fn stall(microseconds: usize) -> Status {
        bs!({
            let freq = cpu::ticks_per_second();
            let end = cpu::ticks() + (microseconds as u128 * freq as u128 / 1_000_000) as u64;
            while cpu::ticks() < end {
                core::hint::spin_loop();
            }
            poll_timers();
            Ok(())
        })
    }

    fn set_watchdog_timer(timeout: usize, code: u64, size: usize, data: *mut u16) -> Status {
        // Accepted and never fires: nothing here can reset a hung payload more usefully than
        // the user's own timeout.
        bs!({
            let _ = (timeout, code, size, data);
            Ok(())
        })
    }

    fn connect_controller(controller: efi::Handle, drivers: *mut efi::Handle, remaining: *mut efi::protocols::device_path::Protocol, recursive: efi::Boolean) -> Status {
        bs!({
            let _ = (drivers, remaining, recursive);
            if !with_core(|c| c.handles.is_handle(controller as usize)) {
                return Err(EfiError::InvalidParameter);
            }
            // There are no drivers to connect.
            Err(EfiError::NotFound)
        })
    }

    fn disconnect_controller(controller: efi::Handle, driver: efi::Handle, child: efi::Handle) -> Status {
        bs!({
            let _ = (driver, child);
            if !with_core(|c| c.handles.is_handle(controller as usize)) {
                return Err(EfiError::InvalidParameter);
            }
            Ok(())
        })
    }

    fn open_protocol(handle: efi::Handle, protocol: *mut Guid, interface: *mut *mut c_void, agent: efi::Handle, controller: efi::Handle, attributes: u32) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            if interface.is_null() && attributes != crate::efi::handles::OPEN_TEST_PROTOCOL {
                return Err(EfiError::InvalidParameter);
            }
            let i = with_core(|c| c.handles.open(handle as usize, &g, agent as usize, controller as usize, attributes))?;
            if !interface.is_null() && attributes != crate::efi::handles::OPEN_TEST_PROTOCOL {
                out(interface, i as *mut c_void)?;
            }
            Ok(())
        })
    }

    fn close_protocol(handle: efi::Handle, protocol: *mut Guid, agent: efi::Handle, controller: efi::Handle) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            with_core(|c| c.handles.close(handle as usize, &g, agent as usize, controller as usize))
        })
    }

    fn open_protocol_information(handle: efi::Handle, protocol: *mut Guid, entries: *mut *mut efi::OpenProtocolInformationEntry, count: *mut usize) -> Status {
        bs!({
            let g = guid_arg(protocol)?;
            if entries.is_null() || count.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            with_core(|c| {
                let info = c.handles.open_information(handle as usize, &g)?;
                let bytes = info.len() * size_of::<crate::efi::handles::OpenInfo>();
                let buf = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, bytes.max(1))? as *mut crate::efi::handles::OpenInfo;
                for (i, o) in info.iter().enumerate() {
                    // SAFETY: fresh pool buffer of `info.len()` entries.
                    unsafe { buf.add(i).write(*o) };
                }
                out(entries, buf as *mut efi::OpenProtocolInformationEntry)?;
                out(count, info.len())
            })
        })
    }

    fn protocols_per_handle(handle: efi::Handle, buffer: *mut *mut *mut Guid, count: *mut usize) -> Status {
        bs!({
            if buffer.is_null() || count.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            with_core(|c| {
                let guids = c.handles.protocols(handle as usize)?;
                // One allocation: the pointer array, then the GUIDs it points to.
                let bytes = guids.len() * (size_of::<*mut Guid>() + size_of::<Guid>());
                let buf = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, bytes.max(1))?;
                let ptrs = buf as *mut *mut Guid;
                // SAFETY: inside the fresh buffer.
                let store = unsafe { buf.add(guids.len() * size_of::<*mut Guid>()) } as *mut Guid;
                for (i, g) in guids.iter().enumerate() {
                    // SAFETY: inside the fresh buffer.
                    unsafe {
                        store.add(i).write_unaligned(*g);
                        ptrs.add(i).write(store.add(i));
                    }
                }
                out(buffer, ptrs)?;
                out(count, guids.len())
            })
        })
    }

    fn locate_handle_buffer(search: efi::LocateSearchType, protocol: *mut Guid, key: *mut c_void, count: *mut usize, buffer: *mut *mut efi::Handle) -> Status {
        bs!({
            let _ = key;
            if count.is_null() || buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let found = locate(search, protocol)?;
            with_core(|c| {
                let buf = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, found.len() * size_of::<efi::Handle>())? as *mut efi::Handle;
                for (i, h) in found.iter().enumerate() {
                    // SAFETY: fresh pool buffer of `found.len()` handles.
                    unsafe { buf.add(i).write(*h as efi::Handle) };
                }
                out(buffer, buf)?;
                out(count, found.len())
            })
        })
    }

    fn locate_protocol(protocol: *mut Guid, registration: *mut c_void, interface: *mut *mut c_void) -> Status {
        bs!({
            let _ = registration;
            let g = guid_arg(protocol)?;
            if interface.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            match with_core(|c| c.handles.locate_protocol(&g)) {
                Ok(i) => out(interface, i as *mut c_void),
                Err(e) => {
                    out(interface, core::ptr::null_mut())?;
                    Err(e)
                }
            }
        })
    }

    fn install_multiple_pairs(handle: *mut efi::Handle, args: *const *mut c_void) -> Status {
        bs!(multiple(handle, args, true))
    }

    fn uninstall_multiple_pairs(handle: efi::Handle, args: *const *mut c_void) -> Status {
        bs!({
            let mut h = handle;
            multiple(&mut h, args, false)
        })
    }

    fn calculate_crc32(data: *mut c_void, size: usize, crc: *mut u32) -> Status {
        bs!({
            if data.is_null() || size == 0 || crc.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload passes `size` readable bytes.
            let bytes = unsafe { core::slice::from_raw_parts(data as *const u8, size) };
            out(crc, crate::efi::crc32::crc32(bytes))
        })
    }

    fn copy_mem(dest: *mut c_void, src: *mut c_void, len: usize) {
        // SAFETY: CopyMem handles overlapping buffers; the payload vouches for both.
        unsafe { core::ptr::copy(src as *const u8, dest as *mut u8, len) };
    }

    fn set_mem(buffer: *mut c_void, len: usize, value: u8) {
        // SAFETY: the payload vouches for `len` writable bytes.
        unsafe { core::ptr::write_bytes(buffer as *mut u8, value, len) };
    }
}

fn create(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *mut c_void, group: Option<Guid>, event: *mut efi::Event) -> Result<(), EfiError> {
    if event.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    let notify = notify.map(|f| (f as usize, context as usize));
    let e = with_core(|c| c.events.create(ty, tpl, notify, group))?;
    out(event, e as efi::Event)
}

fn locate(search: efi::LocateSearchType, protocol: *mut Guid) -> Result<Vec<usize>, EfiError> {
    match search {
        efi::ALL_HANDLES => with_core(|c| c.handles.locate(Search::AllHandles)),
        efi::BY_PROTOCOL => {
            let g = guid_arg(protocol)?;
            with_core(|c| c.handles.locate(Search::ByProtocol(&g)))
        }
        // RegisterProtocolNotify refuses registrations, so there is no key to search by.
        efi::BY_REGISTER_NOTIFY => Err(EfiError::InvalidParameter),
        _ => Err(EfiError::InvalidParameter),
    }
}

/// Install/UninstallMultipleProtocolInterfaces over the (GUID, interface) pairs the variadic
/// shim collected; all or nothing.
fn multiple(handle: *mut efi::Handle, args: *const *mut c_void, install: bool) -> Result<(), EfiError> {
    if handle.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    let mut pairs = Vec::new();
    for i in 0.. {
        // SAFETY: the shim laid the register and stack arguments out as one array; the list
        // ends with a NULL GUID pointer, as the spec requires of the caller.
        let g = unsafe { *args.add(2 * i) } as *const Guid;
        if g.is_null() {
            break;
        }
        let interface = unsafe { *args.add(2 * i + 1) } as usize;
        pairs.push((guid_arg(g)?, interface));
        if i > 64 {
            return Err(EfiError::InvalidParameter);
        }
    }
    // SAFETY: non-NULL handle pointer.
    let mut h = unsafe { handle.read_unaligned() } as usize;
    with_core(|c| {
        let dp = efi::protocols::device_path::PROTOCOL_GUID;
        if install {
            // A device path that another handle already has is refused (spec).
            if let Some(&(_, path)) = pairs.iter().find(|(g, _)| *g == dp) {
                // SAFETY: the payload installs a device path it owns.
                if let Some(wanted) = unsafe { device_path::read(path as *const u8) } {
                    let taken = c.handles.with_protocol(&dp).any(|(_, other)| {
                        // SAFETY: installed device paths.
                        unsafe { device_path::read(other as *const u8) }.is_some_and(|b| b == wanted)
                    });
                    if taken {
                        return Err(EfiError::AlreadyStarted);
                    }
                }
            }
            let mut done = Vec::new();
            for (g, i) in &pairs {
                match c.handles.install((h != 0).then_some(h), g, *i) {
                    Ok(new) => {
                        h = new;
                        done.push((*g, *i));
                    }
                    Err(e) => {
                        for (g, i) in done {
                            let _ = c.handles.uninstall(h, &g, i);
                        }
                        return Err(e);
                    }
                }
            }
            out(handle, h as efi::Handle)
        } else {
            if pairs.iter().any(|(g, i)| c.handles.get(h, g) != Ok(*i)) {
                return Err(EfiError::InvalidParameter);
            }
            for (g, i) in &pairs {
                c.handles.uninstall(h, g, *i)?;
            }
            Ok(())
        }
    })
}

/// The variadic entries: x1..x7 are spilled right below the caller's stack arguments, so the
/// (GUID, interface) list is one array whatever its length; x18 and x30 are kept as in
/// every shim.
macro_rules! variadic_entry {
    ($name:ident($handle:ty) => $inner:path) => {
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
variadic_entry!(install_multiple_protocol_interfaces(*mut efi::Handle) => install_multiple_pairs::inner);
variadic_entry!(uninstall_multiple_protocol_interfaces(efi::Handle) => uninstall_multiple_pairs::inner);

/// Test hook (`/chosen/efi-emulator,debug-stale-map-key`): the map changes under the first
/// ExitBootServices, as if a timer event had allocated, so the payload's one retry runs.
pub static DEBUG_STALE_KEY: AtomicBool = AtomicBool::new(false);

fn exit_boot_services_body(image: usize, key: usize) -> Result<(), EfiError> {
    let due = with_core(|c| {
        if !c.images.iter().any(|i| i.handle == image) {
            return Err(EfiError::InvalidParameter);
        }
        if DEBUG_STALE_KEY.swap(false, Ordering::Relaxed) {
            let p = c.memory.allocate(AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, 1, PAGE_SIZE)?;
            c.memory.free(p, 1)?;
            log::warn!("debug: the memory map changed under ExitBootServices (key {key} -> {})", c.memory.key());
        }
        if key != c.memory.key() {
            c.ebs_failed = true;
            log::warn!("ExitBootServices with stale map key {key} (current {}): EFI_INVALID_PARAMETER", c.memory.key());
            return Err(EfiError::InvalidParameter);
        }
        Ok(c.events.signal_group(&efi::EVENT_GROUP_EXIT_BOOT_SERVICES))
    })?;
    dispatch(due);
    with_core(|c| {
        c.events.cancel_timers();
    });
    super::integrity::verify("ExitBootServices");
    // Interrupts stay masked (they always were); from here on boot services refuse.
    // SAFETY: masking DAIF has no memory effects.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    EXITED.store(true, Ordering::Relaxed);
    super::runtime::exit_boot_services();
    image::report_exit_boot_services();
    Ok(())
}

/// Builds the boot services table in pool memory.
pub fn table(c: &mut Core) -> Result<*mut efi::BootServices, EfiError> {
    let t = efi::BootServices {
        hdr: table_header::<efi::BootServices>(efi::BOOT_SERVICES_SIGNATURE),
        raise_tpl: raise_tpl::entry,
        restore_tpl: restore_tpl::entry,
        allocate_pages: allocate_pages::entry,
        free_pages: free_pages::entry,
        get_memory_map: get_memory_map::entry,
        allocate_pool: allocate_pool::entry,
        free_pool: free_pool::entry,
        create_event: create_event::entry,
        set_timer: set_timer::entry,
        wait_for_event: wait_for_event::entry,
        signal_event: signal_event::entry,
        close_event: close_event::entry,
        check_event: check_event::entry,
        install_protocol_interface: install_protocol_interface::entry,
        reinstall_protocol_interface: reinstall_protocol_interface::entry,
        uninstall_protocol_interface: uninstall_protocol_interface::entry,
        handle_protocol: handle_protocol::entry,
        reserved: core::ptr::null_mut(),
        register_protocol_notify: register_protocol_notify::entry,
        locate_handle: locate_handle::entry,
        locate_device_path: locate_device_path::entry,
        install_configuration_table: install_configuration_table::entry,
        load_image: image::load_image::entry,
        start_image: image::start_image::entry,
        exit: image::exit::entry,
        unload_image: image::unload_image::entry,
        exit_boot_services: exit_boot_services::entry,
        get_next_monotonic_count: get_next_monotonic_count::entry,
        stall: stall::entry,
        set_watchdog_timer: set_watchdog_timer::entry,
        connect_controller: connect_controller::entry,
        disconnect_controller: disconnect_controller::entry,
        open_protocol: open_protocol::entry,
        close_protocol: close_protocol::entry,
        open_protocol_information: open_protocol_information::entry,
        protocols_per_handle: protocols_per_handle::entry,
        locate_handle_buffer: locate_handle_buffer::entry,
        locate_protocol: locate_protocol::entry,
        install_multiple_protocol_interfaces,
        uninstall_multiple_protocol_interfaces,
        calculate_crc32: calculate_crc32::entry,
        copy_mem: copy_mem::entry,
        set_mem: set_mem::entry,
        create_event_ex: create_event_ex::entry,
    };
    let p = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, size_of::<efi::BootServices>())? as *mut efi::BootServices;
    // SAFETY: fresh pool memory of the right size.
    unsafe {
        p.write(t);
        Core::seal(&mut (*p).hdr);
    }
    Ok(p)
}
