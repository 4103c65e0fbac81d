//! Every boot and runtime service entry point, called through the tables as a payload calls it,
//! on the simulated machine: NULL arguments, size probes, wrong types, rollback, TPL and event
//! rules, and the status codes payloads branch on.
//!
//! SAFETY (for every `unsafe` block below): the tables' function pointers are called as a
//! payload calls them, with valid pointers to locals or with the NULL and bogus values whose
//! refusal is under test; the services check those before any access.

use super::host::{self, machine, HostEntry};
use super::protocols::*;
use super::*;
use crate::efi::platform::{Access, PowerAction};
use core::ffi::c_void;
use core::ptr::{null, null_mut};
use efi::protocols::{memory_attribute as ma, rng as rngp, simple_text_input as text_in, simple_text_output as text_out};
use std::vec;

const G1: Guid = Guid::from_fields(0x1111_1111, 0x2222, 0x3333, 0x44, 0x55, &[1, 2, 3, 4, 5, 6]);
const G2: Guid = Guid::from_fields(0x5555_5555, 0x2222, 0x3333, 0x44, 0x55, &[1, 2, 3, 4, 5, 6]);

fn ucs2(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(core::iter::once(0)).collect()
}

fn map_key(bs: &efi::BootServices) -> usize {
    let (mut size, mut key, mut dsize, mut ver) = (0usize, 0usize, 0usize, 0u32);
    // SAFETY: see the module comment.
    assert_eq!(unsafe { (bs.get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut ver) }, Status::BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; size + 4 * dsize];
    size = buf.len();
    // SAFETY: see the module comment.
    assert_eq!(unsafe { (bs.get_memory_map)(&mut size, buf.as_mut_ptr().cast(), &mut key, &mut dsize, &mut ver) }, Status::SUCCESS);
    key
}

#[test]
fn tables_are_complete_and_sealed() {
    let (m, _) = machine();
    // SAFETY: see the module comment.
    unsafe {
        let st = &*m.systab;
        for hdr in [&st.hdr, &(*st.boot_services).hdr, &(*st.runtime_services).hdr] {
            let crc = hdr.crc32;
            let mut bytes = vec![0u8; hdr.header_size as usize];
            core::ptr::copy_nonoverlapping((hdr as *const efi::TableHeader).cast::<u8>(), bytes.as_mut_ptr(), bytes.len());
            bytes[16..20].fill(0);
            assert_eq!(crate::efi::crc32::crc32(&bytes), crc, "table {:#x} sealed", hdr.signature);
        }
        // Every slot of both tables is a function (reserved excepted): no NULL a payload could call.
        let words = |p: *const u8, len: usize| core::slice::from_raw_parts(p.add(24) as *const usize, (len - 24) / 8).to_vec();
        let boot = words(st.boot_services as *const u8, core::mem::size_of::<efi::BootServices>());
        assert_eq!(boot.iter().filter(|&&w| w == 0).count(), 1, "only BootServices.Reserved is NULL");
        let runtime = words(st.runtime_services as *const u8, core::mem::size_of::<efi::RuntimeServices>());
        assert!(runtime.iter().all(|&w| w != 0));
        assert!(!st.con_out.is_null() && !st.con_in.is_null() && st.number_of_table_entries == 1, "RT properties table published");
    }
}

#[test]
fn pages_and_the_memory_map() {
    let (m, _) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut at = 0u64;
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 4, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.allocate_pages)(7, efi::LOADER_DATA, 4, &mut at), Status::INVALID_PARAMETER, "bad allocation type");
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::CONVENTIONAL_MEMORY, 4, &mut at), Status::INVALID_PARAMETER, "bad memory type");
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 1 << 30, &mut at), Status::OUT_OF_RESOURCES);
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 4, &mut at), Status::SUCCESS);
        let (lo, hi) = m.ram();
        assert!(at >= lo && at + 4 * PAGE_SIZE <= hi && at.is_multiple_of(PAGE_SIZE));
        let mut fixed = at;
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ADDRESS, efi::LOADER_DATA, 1, &mut fixed), Status::NOT_FOUND, "already taken");
        let mut below = lo + 64 * PAGE_SIZE;
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_MAX_ADDRESS, efi::LOADER_DATA, 1, &mut below), Status::SUCCESS);
        assert!(below < lo + 64 * PAGE_SIZE);
        assert_eq!((bs.free_pages)(at + PAGE_SIZE, 1), Status::SUCCESS, "part of an allocation");
        assert_eq!((bs.free_pages)(at + PAGE_SIZE, 1), Status::NOT_FOUND, "twice");
        assert_eq!((bs.free_pages)(at + 1, 1), Status::INVALID_PARAMETER, "unaligned");

        // GetMemoryMap: the size probe, NULL rules, the key changing with the map.
        let (mut size, mut key, mut dsize, mut ver) = (0usize, 0usize, 0usize, 0u32);
        assert_eq!((bs.get_memory_map)(null_mut(), null_mut(), &mut key, &mut dsize, &mut ver), Status::INVALID_PARAMETER);
        assert_eq!((bs.get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut ver), Status::BUFFER_TOO_SMALL);
        assert_eq!((dsize, ver), (memory::DESC_SIZE, 1));
        let mut buf = vec![0u8; size];
        // A NULL MapKey is not among the spec's invalid parameters, and EDK2 takes it: the map
        // is written and its size returned (it was written, then refused).
        let mut keyless = size;
        assert_eq!((bs.get_memory_map)(&mut keyless, buf.as_mut_ptr().cast(), null_mut(), &mut dsize, &mut ver), Status::SUCCESS, "NULL key");
        assert!(keyless > 0 && keyless <= size);
        let mut huge = usize::MAX / 2;
        assert_eq!((bs.get_memory_map)(&mut huge, null_mut(), &mut key, &mut dsize, &mut ver), Status::INVALID_PARAMETER, "room claimed but no buffer");
        assert_eq!((bs.get_memory_map)(&mut size, buf.as_mut_ptr().cast(), &mut key, &mut dsize, &mut ver), Status::SUCCESS);
        let descs = crate::mem::Descriptors::new(&buf[..size], dsize);
        assert!(descs.iter().any(|d| d.physical_start == at && d.r#type == efi::LOADER_DATA));
        assert!(descs.iter().any(|d| d.r#type == efi::RUNTIME_SERVICES_DATA && d.attribute & efi::MEMORY_RUNTIME != 0), "the tables' block");
        let before = key;
        assert_eq!((bs.free_pages)(at, 1), Status::SUCCESS);
        assert_ne!(map_key(bs), before, "a changed map has a new key");
    }
}

/// What a payload's GetMemoryMap shows at runtime (the tables, the variable store, a runtime
/// pool and pages it allocated itself): every runtime range on 64 KiB boundaries (UEFI 2.10
/// section 2.3.6), which a 64K-page kernel needs to map each with its own permissions.
#[test]
fn every_runtime_range_in_the_map_is_64k_aligned() {
    let (m, _) = host::machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut at = 0u64;
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::RUNTIME_SERVICES_DATA, 3, &mut at), Status::SUCCESS);
        let mut pool = null_mut();
        assert_eq!((bs.allocate_pool)(efi::RUNTIME_SERVICES_CODE, 100, &mut pool), Status::SUCCESS);
        let (mut size, mut key, mut dsize, mut ver) = (0usize, 0usize, 0usize, 0u32);
        assert_eq!((bs.get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut ver), Status::BUFFER_TOO_SMALL);
        let mut buf = vec![0u8; size + 4 * dsize];
        size = buf.len();
        assert_eq!((bs.get_memory_map)(&mut size, buf.as_mut_ptr().cast(), &mut key, &mut dsize, &mut ver), Status::SUCCESS);
        let mut runtime = 0;
        for d in buf[..size].chunks_exact(dsize).map(|c| c.as_ptr().cast::<efi::MemoryDescriptor>().read_unaligned()) {
            if d.attribute & efi::MEMORY_RUNTIME != 0 || crate::efi::memory::is_runtime_type(d.r#type) {
                runtime += 1;
                assert_eq!(
                    (d.physical_start % 0x1_0000, (d.number_of_pages * PAGE_SIZE) % 0x1_0000),
                    (0, 0),
                    "type {} at {:#x}, {} pages",
                    d.r#type,
                    d.physical_start,
                    d.number_of_pages
                );
            }
        }
        assert!(runtime >= 2, "the tables and what was allocated: {runtime} runtime ranges");
    }
}

/// Linux's EFI stub installs a fresh memreserve root over the one passed on from the firmware
/// (the previous kernel's reservations, GICv3 LPI tables among them): the old chain continues
/// behind the new root, so the next kernel still reserves them; a root that links on by itself,
/// or the same root installed again, is left alone.
#[test]
fn a_new_memreserve_root_keeps_the_previous_kernels_chain() {
    let (m, _) = host::machine();
    let bs = m.bs();
    let mut guid = crate::efi::guids::LINUX_EFI_MEMRESERVE;
    // [size and count (two u32), next, ...]: the previous kernel's root, then the stub's new one.
    let old: Box<[u64; 4]> = Box::new([0, 0, 0, 0]);
    let mut new: Box<[u64; 4]> = Box::new([0, 0, 0, 0]);
    let mut linked: Box<[u64; 4]> = Box::new([0, 0x1234_5000, 0, 0]);
    // SAFETY: see the module comment; the tables outlive the calls.
    unsafe {
        assert_eq!((bs.install_configuration_table)(&mut guid, old.as_ptr() as *mut c_void), Status::SUCCESS);
        assert_eq!((bs.install_configuration_table)(&mut guid, new.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(new[1], old.as_ptr() as u64, "next = the previous root");
        assert_eq!((bs.install_configuration_table)(&mut guid, new.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(new[1], old.as_ptr() as u64, "installed again: unchanged, no loop");
        assert_eq!((bs.install_configuration_table)(&mut guid, linked.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(linked[1], 0x1234_5000, "a root that links on by itself keeps its link");
    }
    drop(m);
    let _ = (old, new, linked);
}

#[test]
fn pool() {
    let (m, _) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((bs.allocate_pool)(efi::LOADER_DATA, 100, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.allocate_pool)(efi::CONVENTIONAL_MEMORY, 100, &mut p), Status::INVALID_PARAMETER);
        assert_eq!((bs.allocate_pool)(efi::LOADER_DATA, 1 << 30, &mut p), Status::OUT_OF_RESOURCES);
        assert_eq!((bs.allocate_pool)(efi::LOADER_DATA, 100, &mut p), Status::SUCCESS);
        assert!((p as usize).is_multiple_of(8));
        (bs.set_mem)(p, 100, 0x5a);
        let mut q: *mut c_void = null_mut();
        assert_eq!((bs.allocate_pool)(efi::BOOT_SERVICES_DATA, 100, &mut q), Status::SUCCESS);
        (bs.copy_mem)(q, p, 100);
        assert_eq!(*(q as *const u8).add(99), 0x5a);
        (bs.copy_mem)((p as *mut u8).add(1).cast(), p, 50);
        let mut crc = 0u32;
        assert_eq!((bs.calculate_crc32)(q, 0, &mut crc), Status::INVALID_PARAMETER);
        assert_eq!((bs.calculate_crc32)(q, 100, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.calculate_crc32)(q, 100, &mut crc), Status::SUCCESS);
        assert_eq!(crc, crate::efi::crc32::crc32(&[0x5a; 100]));
        assert_eq!((bs.free_pool)((p as *mut u8).add(8).cast()), Status::INVALID_PARAMETER, "inside an allocation");
        assert_eq!((bs.free_pool)(p), Status::SUCCESS);
        assert_eq!((bs.free_pool)(p), Status::INVALID_PARAMETER, "twice");
        assert_eq!((bs.free_pool)(null_mut()), Status::INVALID_PARAMETER);
    }
}

static NOTIFIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "efiapi" fn count_notify(_: efi::Event, context: *mut c_void) {
    NOTIFIED.fetch_add(context as usize, std::sync::atomic::Ordering::SeqCst);
}

/// A NOTIFY_WAIT function that signals its event, as ConIn's WaitForKey does when a key is there.
extern "efiapi" fn signal_self(event: efi::Event, context: *mut c_void) {
    let bs = context as *const efi::BootServices;
    // SAFETY: the test passes the boot services table as the context.
    unsafe { ((*bs).signal_event)(event) };
}

#[test]
fn events_timers_and_tpl() {
    let (m, _) = machine();
    let bs = m.bs();
    NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: see the module comment.
    unsafe {
        let mut e: efi::Event = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, None, null_mut(), &mut e), Status::INVALID_PARAMETER, "no notify function");
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_HIGH_LEVEL, Some(count_notify), null_mut(), &mut e), Status::INVALID_PARAMETER, "bad TPL");
        assert_eq!((bs.create_event)(0, 0, None, null_mut(), null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.create_event_ex)(efi::EVT_SIGNAL_EXIT_BOOT_SERVICES, efi::TPL_CALLBACK, Some(count_notify), null(), null(), &mut e), Status::INVALID_PARAMETER);

        // A group: signaling one member notifies all.
        let (mut a, mut b) = (null_mut(), null_mut());
        assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance(1), &G1, &mut a), Status::SUCCESS);
        assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance(10), &G1, &mut b), Status::SUCCESS);
        assert_eq!((bs.signal_event)(a), Status::SUCCESS);
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 11);
        assert_eq!((bs.check_event)(a), Status::INVALID_PARAMETER, "NOTIFY_SIGNAL events cannot be checked");
        assert_eq!((bs.close_event)(a), Status::SUCCESS);
        assert_eq!((bs.close_event)(a), Status::INVALID_PARAMETER);
        assert_eq!((bs.signal_event)(a), Status::INVALID_PARAMETER);

        // Timers fire when polled: the simulated counter moves 1 us a read.
        let mut t = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_TIMER, 0, None, null_mut(), &mut t), Status::SUCCESS);
        assert_eq!((bs.set_timer)(t, 9, 0), Status::INVALID_PARAMETER);
        assert_eq!((bs.set_timer)(b, efi::TIMER_RELATIVE, 0), Status::INVALID_PARAMETER, "not a timer event");
        assert_eq!((bs.set_timer)(t, efi::TIMER_RELATIVE, 1_000), Status::SUCCESS); // 100 us
        assert_eq!((bs.check_event)(t), Status::NOT_READY);
        assert_eq!((bs.stall)(200), Status::SUCCESS);
        assert_eq!((bs.check_event)(t), Status::SUCCESS);
        // A huge Stall waits instead of wrapping to a deadline in the past.
        assert_eq!(events::stall_deadline(5, usize::MAX, 62_500_000), u64::MAX);
        assert_eq!(events::stall_deadline(u64::MAX - 1, 10, 1_000_000), u64::MAX);
        assert_eq!(events::stall_deadline(100, 1_000, 1_000_000), 1_100);
        assert_eq!((bs.check_event)(t), Status::NOT_READY, "checking takes the signal");
        assert_eq!((bs.set_timer)(t, efi::TIMER_RELATIVE, 500), Status::SUCCESS);
        let mut index = 9usize;
        let mut list = [b, t];
        assert_eq!((bs.wait_for_event)(0, list.as_mut_ptr(), &mut index), Status::INVALID_PARAMETER);
        assert_eq!((bs.wait_for_event)(1, list[1..].as_mut_ptr(), null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.wait_for_event)(2, list.as_mut_ptr(), &mut index), Status::INVALID_PARAMETER, "a NOTIFY_SIGNAL event in the list");
        assert_eq!(index, 0, "Index names the NOTIFY_SIGNAL event");
        assert_eq!((bs.wait_for_event)(1, list[1..].as_mut_ptr(), &mut index), Status::SUCCESS);
        assert_eq!(index, 0);
        assert_eq!((bs.set_timer)(t, efi::TIMER_CANCEL, 0), Status::SUCCESS);

        // A NOTIFY_WAIT event's function runs when it is checked, and can signal it.
        let mut w = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_WAIT, efi::TPL_NOTIFY, Some(signal_self), bs as *const _ as *mut c_void, &mut w), Status::SUCCESS);
        assert_eq!((bs.check_event)(w), Status::SUCCESS);

        // TPL: raise returns the old level; WaitForEvent is refused above TPL_APPLICATION.
        assert_eq!((bs.raise_tpl)(efi::TPL_NOTIFY), efi::TPL_APPLICATION);
        assert_eq!((bs.wait_for_event)(1, list[1..].as_mut_ptr(), &mut index), Status::UNSUPPORTED);
        (bs.restore_tpl)(efi::TPL_APPLICATION);
        assert_eq!((bs.raise_tpl)(efi::TPL_CALLBACK), efi::TPL_APPLICATION);
        (bs.restore_tpl)(efi::TPL_APPLICATION);
    }
}

#[test]
fn notifications_follow_the_tpl_and_repeat() {
    let (m, _) = machine();
    let bs = m.bs();
    NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
    let count = || NOTIFIED.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: see the module comment.
    unsafe {
        let mut e = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_APPLICATION, Some(count_notify), null_mut(), &mut e), Status::INVALID_PARAMETER);
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance_mut(1), &mut e), Status::SUCCESS);
        // Every SignalEvent notifies (it did once in the event's lifetime).
        for n in 1..=3 {
            assert_eq!((bs.signal_event)(e), Status::SUCCESS);
            assert_eq!(count(), n);
        }
        // Signaled at TPL_NOTIFY: the notification waits for RestoreTPL.
        assert_eq!((bs.raise_tpl)(efi::TPL_NOTIFY), efi::TPL_APPLICATION);
        assert_eq!((bs.raise_tpl)(efi::TPL_CALLBACK), efi::TPL_NOTIFY, "no lowering through RaiseTPL");
        assert_eq!((bs.signal_event)(e), Status::SUCCESS);
        assert_eq!(count(), 3, "deferred");
        (bs.restore_tpl)(efi::TPL_APPLICATION);
        assert_eq!(count(), 4, "run by RestoreTPL");
        // A periodic timer notifies at every period.
        let mut t = null_mut();
        assert_eq!(
            (bs.create_event)(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance_mut(10), &mut t),
            Status::SUCCESS
        );
        assert_eq!((bs.set_timer)(t, efi::TIMER_PERIODIC, 1_000), Status::SUCCESS); // 100 us
        for _ in 0..5 {
            assert_eq!((bs.stall)(150), Status::SUCCESS);
        }
        assert!(count() >= 4 + 40, "five periods at least: {}", count());
        // One long Stall: the timer keeps firing inside it, as the tick would make it.
        let before = count();
        assert_eq!((bs.stall)(2_000), Status::SUCCESS);
        assert!(count() >= before + 10 * 10, "ten periods at least inside one Stall: {}", count() - before);
        assert_eq!((bs.close_event)(t), Status::SUCCESS);
    }
}

#[test]
fn protocols_and_handles() {
    let (m, kernel) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut h: efi::Handle = null_mut();
        let (i1, i2) = (0x1000 as *mut c_void, 0x2000 as *mut c_void);
        assert_eq!((bs.install_protocol_interface)(null_mut(), &mut G1.clone(), efi::NATIVE_INTERFACE, i1), Status::INVALID_PARAMETER);
        assert_eq!((bs.install_protocol_interface)(&mut h, null_mut(), efi::NATIVE_INTERFACE, i1), Status::INVALID_PARAMETER);
        assert_eq!((bs.install_protocol_interface)(&mut h, &mut G1.clone(), 1, i1), Status::INVALID_PARAMETER, "not a native interface");
        assert_eq!((bs.install_protocol_interface)(&mut h, &mut G1.clone(), efi::NATIVE_INTERFACE, i1), Status::SUCCESS);
        assert!(!h.is_null());
        assert_eq!((bs.install_protocol_interface)(&mut h, &mut G1.clone(), efi::NATIVE_INTERFACE, i1), Status::INVALID_PARAMETER, "already there");
        let mut got: *mut c_void = null_mut();
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), &mut got), Status::SUCCESS);
        assert_eq!(got, i1);
        assert_eq!((bs.handle_protocol)(h, &mut G2.clone(), &mut got), Status::UNSUPPORTED);
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.reinstall_protocol_interface)(h, &mut G1.clone(), i2, i1), Status::NOT_FOUND, "wrong old interface");
        assert_eq!((bs.reinstall_protocol_interface)(h, &mut G1.clone(), i1, i2), Status::SUCCESS);
        assert_eq!((bs.locate_protocol)(&mut G1.clone(), null_mut(), &mut got), Status::SUCCESS);
        assert_eq!(got, i2);
        assert_eq!((bs.locate_protocol)(&mut G2.clone(), null_mut(), &mut got), Status::NOT_FOUND);
        assert!(got.is_null(), "LocateProtocol clears the interface when it finds none");

        // LocateHandle: the size probe; LocateHandleBuffer: a pool buffer.
        let mut size = 0usize;
        assert_eq!((bs.locate_handle)(efi::BY_PROTOCOL, &mut G1.clone(), null_mut(), &mut size, null_mut()), Status::BUFFER_TOO_SMALL);
        assert_eq!(size, 8);
        let mut found: efi::Handle = null_mut();
        assert_eq!((bs.locate_handle)(efi::BY_PROTOCOL, &mut G1.clone(), null_mut(), &mut size, &mut found), Status::SUCCESS);
        assert_eq!(found, h);
        assert_eq!((bs.locate_handle)(efi::BY_PROTOCOL, &mut G2.clone(), null_mut(), &mut size, &mut found), Status::NOT_FOUND);
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), null_mut(), &mut size, &mut found), Status::INVALID_PARAMETER);
        let (mut count, mut buf) = (0usize, null_mut());
        assert_eq!((bs.locate_handle_buffer)(efi::ALL_HANDLES, null_mut(), null_mut(), &mut count, &mut buf), Status::SUCCESS);
        assert!(count >= 3 && core::slice::from_raw_parts(buf, count).contains(&h), "console, RNG, memory attribute, kernel, h");
        assert_eq!((bs.free_pool)(buf.cast()), Status::SUCCESS);
        assert_eq!((bs.locate_handle_buffer)(efi::ALL_HANDLES, null_mut(), null_mut(), null_mut(), &mut buf), Status::INVALID_PARAMETER);

        // ProtocolsPerHandle and OpenProtocol(Information).
        let mut guids: *mut *mut Guid = null_mut();
        assert_eq!((bs.protocols_per_handle)(h, &mut guids, &mut count), Status::SUCCESS);
        assert_eq!((count, **guids), (1, G1));
        assert_eq!((bs.free_pool)(guids.cast()), Status::SUCCESS);
        assert_eq!((bs.protocols_per_handle)(0x77 as efi::Handle, &mut guids, &mut count), Status::INVALID_PARAMETER);
        let agent = kernel as efi::Handle;
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), null_mut(), agent, null_mut(), efi::OPEN_PROTOCOL_GET_PROTOCOL), Status::INVALID_PARAMETER);
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), null_mut(), agent, null_mut(), efi::OPEN_PROTOCOL_TEST_PROTOCOL), Status::SUCCESS);
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), &mut got, agent, null_mut(), 0x40), Status::INVALID_PARAMETER, "bad attributes");
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), &mut got, agent, null_mut(), efi::OPEN_PROTOCOL_BY_HANDLE_PROTOCOL), Status::SUCCESS);
        let mut entries: *mut efi::OpenProtocolInformationEntry = null_mut();
        assert_eq!((bs.open_protocol_information)(h, &mut G1.clone(), &mut entries, &mut count), Status::SUCCESS);
        assert_eq!((count, (*entries).agent_handle), (1, agent));
        assert_eq!((bs.open_protocol_information)(h, &mut G1.clone(), null_mut(), &mut count), Status::INVALID_PARAMETER);
        assert_eq!((bs.close_protocol)(h, &mut G1.clone(), agent, null_mut()), Status::SUCCESS);
        assert_eq!((bs.close_protocol)(h, &mut G1.clone(), agent, null_mut()), Status::NOT_FOUND);
        // BY_DRIVER twice by one agent: EFI_ALREADY_STARTED, with the interface (as EDK2, which
        // drivers rely on); a protocol the handle lacks: EFI_UNSUPPORTED, and NULL.
        let controller = h;
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), &mut got, agent, controller, efi::OPEN_PROTOCOL_BY_DRIVER), Status::SUCCESS);
        let first = got;
        got = 0x1234 as *mut c_void;
        assert_eq!((bs.open_protocol)(h, &mut G1.clone(), &mut got, agent, controller, efi::OPEN_PROTOCOL_BY_DRIVER), Status::ALREADY_STARTED);
        assert_eq!(got, first);
        assert_eq!((bs.close_protocol)(h, &mut G1.clone(), agent, controller), Status::SUCCESS);
        got = 0x1234 as *mut c_void;
        assert_eq!((bs.open_protocol)(h, &mut G2.clone(), &mut got, agent, null_mut(), efi::OPEN_PROTOCOL_GET_PROTOCOL), Status::UNSUPPORTED);
        assert!(got.is_null());

        // RegisterProtocolNotify: the event fires for each install of the protocol, and the
        // registration hands out the new handles one at a time.
        NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
        let mut ev = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance_mut(1), &mut ev), Status::SUCCESS);
        let mut reg: *mut c_void = null_mut();
        assert_eq!((bs.register_protocol_notify)(&mut G2.clone(), ev, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.register_protocol_notify)(&mut G2.clone(), 0x77 as efi::Event, &mut reg), Status::INVALID_PARAMETER, "no such event");
        assert_eq!((bs.register_protocol_notify)(&mut G2.clone(), ev, &mut reg), Status::SUCCESS);
        assert!(!reg.is_null());
        let mut size = 8usize;
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), reg, &mut size, &mut found), Status::NOT_FOUND, "nothing installed yet");
        let mut h2: efi::Handle = null_mut();
        assert_eq!((bs.install_protocol_interface)(&mut h2, &mut G2.clone(), efi::NATIVE_INTERFACE, i2), Status::SUCCESS);
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 1, "the event fired");
        assert_eq!((bs.locate_protocol)(&mut G2.clone(), reg, &mut got), Status::SUCCESS);
        assert_eq!(got, i2, "LocateProtocol with the registration gives the new interface");
        assert_eq!((bs.locate_protocol)(&mut G2.clone(), reg, &mut got), Status::NOT_FOUND, "once");
        assert_eq!((bs.reinstall_protocol_interface)(h2, &mut G2.clone(), i2, i1), Status::SUCCESS);
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 2, "a reinstall notifies too");
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), reg, &mut size, &mut found), Status::SUCCESS);
        assert_eq!((found, size), (h2, 8));
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), reg, &mut size, &mut found), Status::NOT_FOUND);
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), null_mut(), &mut size, &mut found), Status::INVALID_PARAMETER, "no key");
        assert_eq!((bs.close_event)(ev), Status::SUCCESS);
        assert_eq!((bs.locate_handle)(efi::BY_REGISTER_NOTIFY, null_mut(), reg, &mut size, &mut found), Status::INVALID_PARAMETER, "closing the event ended the registration");
        assert_eq!((bs.uninstall_protocol_interface)(h2, &mut G2.clone(), i1), Status::SUCCESS);

        // Controllers have no drivers.
        assert_eq!((bs.connect_controller)(h, null_mut(), null_mut(), efi::Boolean::FALSE), Status::NOT_FOUND);
        assert_eq!((bs.connect_controller)(0x55 as efi::Handle, null_mut(), null_mut(), efi::Boolean::FALSE), Status::INVALID_PARAMETER);
        assert_eq!((bs.disconnect_controller)(h, null_mut(), null_mut()), Status::SUCCESS);
        assert_eq!((bs.disconnect_controller)(0x55 as efi::Handle, null_mut(), null_mut()), Status::INVALID_PARAMETER);

        assert_eq!((bs.uninstall_protocol_interface)(h, &mut G1.clone(), i1), Status::NOT_FOUND, "not that interface");
        assert_eq!((bs.uninstall_protocol_interface)(h, &mut G1.clone(), i2), Status::SUCCESS);
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), &mut got), Status::INVALID_PARAMETER, "the handle went with its last protocol");
    }
}

#[test]
fn multiple_protocol_interfaces_roll_back() {
    let (m, kernel) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let (i1, i2) = (0x1000 as *mut c_void, 0x2000 as *mut c_void);
        let mut h: efi::Handle = null_mut();
        // The table's entries (one pair on the host), then the longer lists through `inner`.
        assert_eq!((bs.install_multiple_protocol_interfaces)(&mut h, &G1 as *const Guid as *mut c_void, i1), Status::SUCCESS);
        let mut got = null_mut();
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), &mut got), Status::SUCCESS);
        let g1 = &G1 as *const Guid as *mut c_void;
        let g2 = &G2 as *const Guid as *mut c_void;
        // G2 installs, then G1 is already there: all or nothing, so G2 is gone again.
        let args = [g2, i2, g1, i1, null_mut()];
        assert_eq!(handles::install_multiple_pairs::inner(&mut h, args.as_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((bs.handle_protocol)(h, &mut G2.clone(), &mut got), Status::UNSUPPORTED, "rolled back");
        assert_eq!(handles::install_multiple_pairs::inner(null_mut(), args.as_ptr()), Status::INVALID_PARAMETER);
        // Uninstall: one pair that does not match leaves everything installed.
        let args = [g1, i2, null_mut()];
        assert_eq!((bs.uninstall_multiple_protocol_interfaces)(h, g1, i2), Status::INVALID_PARAMETER);
        assert_eq!(handles::uninstall_multiple_pairs::inner(h, args.as_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), &mut got), Status::SUCCESS);
        // One that cannot go (a driver has it open): the ones before it come back.
        assert_eq!((bs.install_protocol_interface)(&mut h, &mut G2.clone(), efi::NATIVE_INTERFACE, i2), Status::SUCCESS);
        let agent = kernel as efi::Handle;
        assert_eq!((bs.open_protocol)(h, &mut G2.clone(), &mut got, agent, h, efi::OPEN_PROTOCOL_BY_DRIVER), Status::SUCCESS);
        let args = [g1, i1, g2, i2, null_mut()];
        assert_eq!(handles::uninstall_multiple_pairs::inner(h, args.as_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((bs.handle_protocol)(h, &mut G1.clone(), &mut got), Status::SUCCESS, "G1 put back");
        assert_eq!((bs.close_protocol)(h, &mut G2.clone(), agent, h), Status::SUCCESS);
        assert_eq!((bs.uninstall_protocol_interface)(h, &mut G2.clone(), i2), Status::SUCCESS);
        assert_eq!((bs.uninstall_multiple_protocol_interfaces)(h, g1, i1), Status::SUCCESS);
        // A device path another handle has is refused (EFI_ALREADY_STARTED).
        let path = crate::efi::device_path::vendor_media(&G2);
        let dp = &efi::protocols::device_path::PROTOCOL_GUID as *const Guid as *mut c_void;
        let mut first = null_mut();
        assert_eq!((bs.install_multiple_protocol_interfaces)(&mut first, dp, path.as_ptr() as *mut c_void), Status::SUCCESS);
        let mut second = null_mut();
        assert_eq!((bs.install_multiple_protocol_interfaces)(&mut second, dp, path.as_ptr() as *mut c_void), Status::ALREADY_STARTED);
        // LocateDevicePath finds it and moves the path past the match.
        let mut remaining = path.as_ptr() as *mut efi::protocols::device_path::Protocol;
        let mut device = null_mut();
        assert_eq!((bs.locate_device_path)(dp.cast(), &mut remaining, &mut device), Status::SUCCESS);
        assert_eq!(device, first);
        assert_eq!(remaining as usize - path.as_ptr() as usize, path.len() - 4, "at the End node");
        assert_eq!((bs.locate_device_path)(&mut G1.clone(), &mut remaining, &mut device), Status::NOT_FOUND);
        assert_eq!((bs.locate_device_path)(dp.cast(), null_mut(), &mut device), Status::INVALID_PARAMETER);
    }
}

#[test]
fn configuration_tables_and_misc() {
    let (m, _) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let st = &*m.systab;
        let n = st.number_of_table_entries;
        assert_eq!((bs.install_configuration_table)(null_mut(), 0x10 as *mut c_void), Status::INVALID_PARAMETER);
        assert_eq!((bs.install_configuration_table)(&mut G1.clone(), null_mut()), Status::NOT_FOUND, "deleting what is not there");
        assert_eq!((bs.install_configuration_table)(&mut G1.clone(), 0x10 as *mut c_void), Status::SUCCESS);
        assert_eq!((bs.install_configuration_table)(&mut G1.clone(), 0x20 as *mut c_void), Status::SUCCESS);
        let st = &*m.systab;
        assert_eq!(st.number_of_table_entries, n + 1, "replaced, not added");
        assert_eq!((*st.configuration_table.add(n)).vendor_table, 0x20 as *mut c_void);
        assert_eq!((bs.install_configuration_table)(&mut G1.clone(), null_mut()), Status::SUCCESS);
        assert_eq!((*m.systab).number_of_table_entries, n);

        let (mut a, mut b) = (0u64, 0u64);
        assert_eq!((bs.get_next_monotonic_count)(null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.get_next_monotonic_count)(&mut a), Status::SUCCESS);
        assert_eq!((bs.get_next_monotonic_count)(&mut b), Status::SUCCESS);
        assert!(b > a);
        assert_eq!((bs.set_watchdog_timer)(0, 0, 0, null_mut()), Status::SUCCESS, "disarming");
        assert_eq!((bs.set_watchdog_timer)(5, 0x100, 0, null_mut()), Status::INVALID_PARAMETER, "codes up to 0xffff are the firmware's");
    }
}

/// The high half carries what makes this boot's counts larger than earlier boots' (the
/// firmware's count, else the clock), and the 64-bit count ends in EFI_DEVICE_ERROR, not a wrap.
#[test]
fn the_monotonic_count_is_above_earlier_boots_and_never_wraps() {
    use misc::MonotonicHigh;
    assert_eq!(MonotonicHigh::choose(Some(7), Some(1_800_000_000)), MonotonicHigh::Firmware(7));
    assert_eq!(MonotonicHigh::choose(None, Some(1_800_000_000)).start(), 1_800_000_000 << 32);
    assert_eq!(MonotonicHigh::choose(None, Some(u64::MAX)), MonotonicHigh::Clock(u32::MAX), "saturated");
    assert_eq!(MonotonicHigh::choose(None, None).start(), 0);

    let (m, _) = machine();
    let bs = m.bs();
    with_core(|c| c.misc.monotonic = MonotonicHigh::Firmware(3).start());
    let mut count = 0u64;
    // SAFETY: see the module comment.
    unsafe {
        assert_eq!((bs.get_next_monotonic_count)(&mut count), Status::SUCCESS);
        assert_eq!(count >> 32, 3, "the high half is the firmware's");
        with_core(|c| c.misc.monotonic = u64::MAX - 1);
        assert_eq!((bs.get_next_monotonic_count)(&mut count), Status::SUCCESS);
        assert_eq!(count, u64::MAX);
        assert_eq!((bs.get_next_monotonic_count)(&mut count), Status::DEVICE_ERROR, "spent");
    }
}

/// Before it starts the kernel, the boot flow signals what a boot manager signals before a boot
/// option: READY_TO_BOOT, then AFTER_READY_TO_BOOT (systemd-stub and shim listen).
#[test]
fn the_boot_option_is_announced_ready_to_boot() {
    let (m, _) = machine();
    let bs = m.bs();
    static ORDER: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    extern "efiapi" fn record(_: efi::Event, context: *mut c_void) {
        ORDER.lock().unwrap().push(context as usize);
    }
    // SAFETY: see the module comment.
    unsafe {
        for (context, guid) in [(1usize, efi::EVENT_GROUP_AFTER_READY_TO_BOOT), (2, efi::EVENT_GROUP_READY_TO_BOOT)] {
            let (mut e, mut g) = (null_mut(), guid);
            assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(record), context as *mut c_void, &mut g, &mut e), Status::SUCCESS);
        }
    }
    misc::ready_to_boot();
    assert_eq!(*ORDER.lock().unwrap(), [2, 1], "READY_TO_BOOT, then AFTER_READY_TO_BOOT");
    drop(m);
}

/// The emulator's heap grows from the memory map before a service that adds to its tables
/// runs short; once RAM is spent such services answer EFI_OUT_OF_RESOURCES (a fatal
/// out-of-memory before), and the ones that release keep working.
#[test]
fn a_low_heap_grows_from_the_map_then_runs_out_honestly() {
    let (m, _) = machine();
    let bs = m.bs();
    host::state(|s| s.heap_free = Some(HEAP_HEADROOM - 1));
    let mut e = null_mut();
    // SAFETY: see the module comment.
    unsafe {
        assert_eq!((bs.create_event)(efi::EVT_TIMER, efi::TPL_CALLBACK, None, null_mut(), &mut e), Status::SUCCESS);
        let grown = host::state(|s| s.heap_grown.clone());
        assert_eq!(grown.len(), 1, "grew once");
        let (at, size) = grown[0];
        assert_eq!(size, HEAP_GROWTH);
        assert_eq!(with_core(|c| c.memory.find(at).map(|r| (r.ty, r.allocated))), Some((efi::BOOT_SERVICES_DATA, true)), "taken from the map as boot-services data");
        assert_eq!(host::state(|s| s.pages.get(&at).copied()), Some(Access::DATA), "made plain data");

        // Spend RAM, then run the heap low again.
        let mut spent = Vec::new();
        let mut chunk = 256usize;
        while chunk > 0 {
            let mut at = 0u64;
            if (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, chunk, &mut at) == Status::SUCCESS {
                spent.push((at, chunk));
            } else {
                chunk /= 2;
            }
        }
        host::state(|s| s.heap_free = Some(HEAP_HEADROOM - 1));
        let mut again = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_TIMER, efi::TPL_CALLBACK, None, null_mut(), &mut again), Status::OUT_OF_RESOURCES);
        let mut h = null_mut();
        assert_eq!((bs.install_protocol_interface)(&mut h, &mut G1.clone(), efi::NATIVE_INTERFACE, null_mut()), Status::OUT_OF_RESOURCES);
        assert_eq!(host::state(|s| s.heap_grown.len()), 1, "nothing to grow from");
        assert_eq!((bs.close_event)(e), Status::SUCCESS, "releasing still works");
        let (at, pages) = spent[0];
        assert_eq!((bs.free_pages)(at, pages), Status::SUCCESS);
        assert_eq!((bs.create_event)(efi::EVT_TIMER, efi::TPL_CALLBACK, None, null_mut(), &mut again), Status::OUT_OF_RESOURCES, "256 pages cannot hold 4 MiB");
        for &(at, pages) in &spent[1..] {
            assert_eq!((bs.free_pages)(at, pages), Status::SUCCESS);
        }
        assert_eq!((bs.create_event)(efi::EVT_TIMER, efi::TPL_CALLBACK, None, null_mut(), &mut again), Status::SUCCESS, "RAM again: grown");
        assert_eq!(host::state(|s| s.heap_grown.len()), 2);
    }
    drop(m);
}

/// Every service that changes the memory map signals MEMORY_MAP_CHANGE (as EDK2 at each new map
/// key); one that only reads it does not.
#[test]
fn a_changed_memory_map_is_announced() {
    let (m, _) = machine();
    let bs = m.bs();
    static CHANGES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    extern "efiapi" fn changed(_: efi::Event, _: *mut c_void) {
        CHANGES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let changes = || CHANGES.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: see the module comment.
    unsafe {
        let (mut e, mut g) = (null_mut(), efi::EVENT_GROUP_MEMORY_MAP_CHANGE);
        assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(changed), null_mut(), &mut g, &mut e), Status::SUCCESS);
        let mut at = 0u64;
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 3, &mut at), Status::SUCCESS);
        assert_eq!(changes(), 1, "allocated");
        map_key(bs);
        assert_eq!(changes(), 1, "GetMemoryMap changes nothing");
        assert_eq!((bs.free_pages)(at, 3), Status::SUCCESS);
        assert_eq!(changes(), 2, "freed");
        assert_eq!((bs.free_pages)(at, 3), Status::NOT_FOUND);
        assert_eq!(changes(), 2, "a refused free changes nothing");
        assert_eq!((bs.close_event)(e), Status::SUCCESS);
    }
    drop(m);
}

/// A runtime driver's VIRTUAL_ADDRESS_CHANGE notify functions run inside SetVirtualAddressMap
/// (events of the type and of the group; a closed one not), and ConvertPointer answers there
/// with the new map, and only there.
#[test]
fn set_virtual_address_map_notifies_and_convert_pointer_converts() {
    let (m, _) = machine();
    let (bs, rt) = (m.bs(), m.rt() as *const efi::RuntimeServices);
    struct Seen {
        rt: *const efi::RuntimeServices,
        pointers: [u64; 4],
        statuses: [Status; 4],
        calls: usize,
    }
    extern "efiapi" fn convert(_: efi::Event, context: *mut c_void) {
        // SAFETY: the test passes its `Seen` as the context, alive until SetVirtualAddressMap returns.
        let seen = unsafe { &mut *(context as *mut Seen) };
        seen.calls += 1;
        for i in 0..4 {
            let mut p = seen.pointers[i] as *mut c_void;
            // SAFETY: see the module comment.
            seen.statuses[i] = unsafe { ((*seen.rt).convert_pointer)(if i == 3 { 1 } else { 0 }, &mut p) };
            seen.pointers[i] = p as u64;
        }
    }
    let runtime = |phys: u64, virt: u64| efi::MemoryDescriptor {
        r#type: efi::RUNTIME_SERVICES_DATA,
        physical_start: phys,
        virtual_start: virt,
        number_of_pages: 2,
        attribute: efi::MEMORY_RUNTIME,
    };
    let mut map = [runtime(0x4000_0000, 0x4000_0000), efi::MemoryDescriptor { attribute: 0, ..runtime(0x5000_0000, 0x5000_0000) }];
    // Inside the runtime range, outside it, in a range without EFI_MEMORY_RUNTIME, NULL optional.
    let mut by_type = Seen { rt, pointers: [0x4000_1ff8, 0x4000_2000, 0x5000_0000, 0], statuses: [Status::ABORTED; 4], calls: 0 };
    let mut by_group = Seen { rt, pointers: [0; 4], statuses: [Status::ABORTED; 4], calls: 0 };
    let mut closed = Seen { rt, pointers: [0; 4], statuses: [Status::ABORTED; 4], calls: 0 };
    // SAFETY: see the module comment.
    unsafe {
        let rt = &*rt;
        let mut e = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE, efi::TPL_NOTIFY, Some(convert), (&raw mut by_type).cast(), &mut e), Status::SUCCESS);
        let mut g = efi::EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE;
        assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(convert), (&raw mut by_group).cast(), &mut g, &mut e), Status::SUCCESS);
        assert_eq!((bs.create_event)(efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE, efi::TPL_NOTIFY, Some(convert), (&raw mut closed).cast(), &mut e), Status::SUCCESS);
        assert_eq!((bs.close_event)(e), Status::SUCCESS);
        let mut p = 0x4000_0000 as *mut c_void;
        assert_eq!((rt.convert_pointer)(0, &mut p), Status::UNSUPPORTED, "not during SetVirtualAddressMap");
        assert_eq!((bs.exit_boot_services)(core::ptr::without_provenance_mut(1), map_key(bs)), Status::SUCCESS);
        map[0].virtual_start = 0xffff_0000_0000;
        assert_eq!((rt.set_virtual_address_map)(80, 40, 1, map.as_mut_ptr()), Status::UNSUPPORTED, "a move");
        assert_eq!(by_type.calls, 0, "a refused map notifies nobody");
        map[0].virtual_start = 0x4000_0000;
        assert_eq!((rt.set_virtual_address_map)(80, 40, 1, map.as_mut_ptr()), Status::SUCCESS);
        assert_eq!((by_type.calls, by_group.calls, closed.calls), (1, 1, 0));
        assert_eq!(by_type.statuses, [Status::SUCCESS, Status::NOT_FOUND, Status::NOT_FOUND, Status::SUCCESS]);
        assert_eq!(by_type.pointers, [0x4000_1ff8, 0x4000_2000, 0x5000_0000, 0]);
        assert_eq!(by_group.statuses[0], Status::INVALID_PARAMETER, "NULL without EFI_OPTIONAL_PTR");
        assert_eq!((rt.convert_pointer)(0, &mut p), Status::UNSUPPORTED, "after SetVirtualAddressMap");
    }
    // The translation itself, with a range that moves (the firmware's, kept where it runs).
    let moved = [efi::MemoryDescriptor { virtual_start: 0xffff_8000_0000_0000, ..runtime(0x4000_0000, 0) }];
    assert_eq!(runtime::convert_address(moved.into_iter(), 0x4000_1234, false), Ok(0xffff_8000_0000_1234));
    assert_eq!(runtime::convert_address(moved.into_iter(), 0x3fff_ffff, false), Err(EfiError::NotFound));
    assert_eq!(runtime::convert_address(moved.into_iter(), 0, true), Ok(0));
    drop(m);
}

#[test]
fn exit_boot_services_needs_the_current_key_and_ends_boot_services() {
    let (m, kernel) = machine();
    let bs = m.bs();
    NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: see the module comment.
    unsafe {
        let mut e = null_mut();
        assert_eq!((bs.create_event)(efi::EVT_SIGNAL_EXIT_BOOT_SERVICES, efi::TPL_NOTIFY, Some(count_notify), 5 as *mut c_void, &mut e), Status::SUCCESS);
        // EFI_EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES: at the first call, before the key check.
        let mut before = null_mut();
        let mut group = efi::EVENT_GROUP_BEFORE_EXIT_BOOT_SERVICES;
        assert_eq!((bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), 100 as *mut c_void, &mut group, &mut before), Status::SUCCESS);
        let mut hidden = ucs2("BootOnly");
        let bs_only = efi::VARIABLE_BOOTSERVICE_ACCESS;
        assert_eq!((m.rt().set_variable)(hidden.as_mut_ptr(), &mut G1.clone(), bs_only, 1, [7u8].as_ptr() as *mut c_void), Status::SUCCESS);
        // shim 16 loads GRUB with its own loader, on a handle it made with a LoadedImage of its
        // own; GRUB starts Linux, whose stub passes that handle here. Only the key is checked.
        let mut shim_loaded = null_mut();
        let li = Box::leak(Box::new([0u8; 128]));
        let mut li_guid = efi::protocols::loaded_image::PROTOCOL_GUID;
        assert_eq!((bs.install_protocol_interface)(&mut shim_loaded, &mut li_guid, efi::NATIVE_INTERFACE, li.as_mut_ptr().cast()), Status::SUCCESS);
        let key = map_key(bs);
        assert_eq!((bs.exit_boot_services)(kernel as efi::Handle, key + 1), Status::INVALID_PARAMETER, "stale key");
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 100, "BEFORE_EXIT_BOOT_SERVICES ran before the key check");
        let key = map_key(bs);
        assert_eq!((bs.exit_boot_services)(shim_loaded, key), Status::SUCCESS, "an image handle the payload made");
        // The system table keeps only what stays valid at runtime (UEFI 2.10 section 4.3), sealed.
        let st = &*m.systab;
        assert!(st.boot_services.is_null() && st.con_in.is_null() && st.con_out.is_null() && st.std_err.is_null());
        assert!(st.console_in_handle.is_null() && st.console_out_handle.is_null() && st.standard_error_handle.is_null());
        assert!(!st.runtime_services.is_null() && !st.configuration_table.is_null());
        let mut bytes = vec![0u8; st.hdr.header_size as usize];
        core::ptr::copy_nonoverlapping((&st.hdr as *const efi::TableHeader).cast::<u8>(), bytes.as_mut_ptr(), bytes.len());
        bytes[16..20].fill(0);
        assert_eq!(crate::efi::crc32::crc32(&bytes), st.hdr.crc32, "sealed again");
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 105, "the group was signaled, BEFORE_EXIT_BOOT_SERVICES only once");
        let mut p = null_mut();
        let mut at = 0u64;
        assert_eq!((bs.allocate_pool)(efi::LOADER_DATA, 8, &mut p), Status::UNSUPPORTED);
        assert_eq!((bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 1, &mut at), Status::UNSUPPORTED);
        assert_eq!((bs.exit_boot_services)(kernel as efi::Handle, key), Status::UNSUPPORTED);
        assert_eq!((bs.raise_tpl)(efi::TPL_NOTIFY), efi::TPL_NOTIFY, "RaiseTPL is inert afterwards");
        // Runtime services stay, for non-volatile runtime-access variables only (UEFI 2.10).
        let mut name = ucs2("After");
        let data = [1u8, 2, 3];
        let attrs = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;
        assert_eq!((m.rt().set_variable)(name.as_mut_ptr(), &mut G1.clone(), attrs, 3, data.as_ptr() as *mut c_void), Status::INVALID_PARAMETER, "no new volatile variable");
        let nv = attrs | efi::VARIABLE_NON_VOLATILE;
        assert_eq!((m.rt().set_variable)(name.as_mut_ptr(), &mut G1.clone(), nv, 3, data.as_ptr() as *mut c_void), Status::SUCCESS);
        let mut hidden = ucs2("BootOnly");
        let mut size = 8usize;
        let mut buf = [0u8; 8];
        assert_eq!((m.rt().get_variable)(hidden.as_mut_ptr(), &mut G1.clone(), null_mut(), &mut size, buf.as_mut_ptr().cast()), Status::NOT_FOUND);
        let bs_only = efi::VARIABLE_BOOTSERVICE_ACCESS;
        assert_eq!((m.rt().set_variable)(hidden.as_mut_ptr(), &mut G1.clone(), bs_only, 3, data.as_ptr() as *mut c_void), Status::INVALID_PARAMETER);
    }
}

#[test]
fn images_load_start_exit_and_unload() {
    let (m, kernel) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut h: efi::Handle = null_mut();
        let junk = [0u8; 64];
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, null_mut(), junk.as_ptr() as *mut c_void, 64, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, 0x99 as efi::Handle, null_mut(), junk.as_ptr() as *mut c_void, 64, &mut h), Status::INVALID_PARAMETER, "no such parent");
        // A parent the payload made itself (shim's own images): any handle with a LoadedImage.
        let mut own: efi::Handle = null_mut();
        let li: &mut efi::protocols::loaded_image::Protocol = Box::leak(Box::new(core::mem::zeroed()));
        assert_eq!(
            (bs.install_protocol_interface)(
                &mut own,
                &mut efi::protocols::loaded_image::PROTOCOL_GUID.clone(),
                efi::NATIVE_INTERFACE,
                (li as *mut efi::protocols::loaded_image::Protocol).cast()
            ),
            Status::SUCCESS
        );
        assert_eq!(
            (bs.load_image)(efi::Boolean::FALSE, own, null_mut(), junk.as_ptr() as *mut c_void, 64, &mut h),
            Status::LOAD_ERROR,
            "the parent is taken; the image is not a PE file"
        );
        let mut plain: efi::Handle = null_mut();
        assert_eq!((bs.install_protocol_interface)(&mut plain, &mut G1.clone(), efi::NATIVE_INTERFACE, null_mut()), Status::SUCCESS);
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, plain, null_mut(), junk.as_ptr() as *mut c_void, 64, &mut h), Status::INVALID_PARAMETER, "no LoadedImage on it");
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, null_mut(), junk.as_ptr() as *mut c_void, 64, &mut h), Status::LOAD_ERROR, "not a PE file");
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, null_mut(), null_mut(), 0, &mut h), Status::INVALID_PARAMETER, "no buffer, no path");
        let path = crate::efi::device_path::vendor_media(&G2);
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, path.as_ptr() as *mut _, null_mut(), 0, &mut h), Status::NOT_FOUND, "nothing serves that path");

        // A real (tiny) PE from a buffer with no device path: loaded, W^X applied, and its
        // LoadedImageDevicePath installed with a NULL interface, as EDK2 does.
        let pe = crate::efi::pe::test_image();
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, null_mut(), pe.as_ptr() as *mut c_void, pe.len(), &mut h), Status::SUCCESS);
        let mut li: *mut c_void = null_mut();
        assert_eq!((bs.handle_protocol)(h, &mut efi::protocols::loaded_image::PROTOCOL_GUID.clone(), &mut li), Status::SUCCESS);
        let li = &*(li as *const efi::protocols::loaded_image::Protocol);
        assert!(li.file_path.is_null() && li.image_size == 0x2000 && li.parent_handle == kernel as efi::Handle);
        let text = li.image_base as u64 + 0x1000;
        assert_eq!(host::state(|s| s.pages[&text]), Access::CODE, ".text read-only and executable");
        assert_eq!(host::state(|s| s.pages[&(li.image_base as u64)]), Access::RODATA, "headers read-only");
        let mut dp: *mut c_void = core::ptr::dangling_mut();
        assert_eq!((bs.handle_protocol)(h, &mut efi::protocols::loaded_image_device_path::PROTOCOL_GUID.clone(), &mut dp), Status::SUCCESS);
        assert!(dp.is_null(), "no invented device path");
        // What the image opened goes with it when it is unloaded.
        let mut i: *mut c_void = null_mut();
        assert_eq!((bs.open_protocol)(plain, &mut G1.clone(), &mut i, h, null_mut(), efi::OPEN_PROTOCOL_GET_PROTOCOL), Status::SUCCESS);
        let opens = || with_core(|c| c.handles.open_information(plain as usize, &G1).unwrap().len());
        assert_eq!(opens(), 1);
        assert_eq!((bs.unload_image)(h), Status::SUCCESS);
        assert_eq!(opens(), 0, "the unloaded image's open is closed");
        assert_eq!(host::state(|s| s.pages[&text]), Access::RAM, "permissions restored on unload");

        // Images whose entry points are host functions: one returns, one calls Exit.
        extern "efiapi" fn returns(_: efi::Handle, _: *mut efi::SystemTable) -> Status {
            Status::from_usize(0x1234)
        }
        extern "efiapi" fn exits(handle: efi::Handle, st: *mut efi::SystemTable) -> Status {
            // SAFETY: the system table StartImage passed.
            unsafe { ((*(*st).boot_services).exit)(handle, Status::ABORTED, 0, null_mut()) };
            unreachable!("Exit returned")
        }
        let fake = |entry: HostEntry| {
            let h = with_core(|c| {
                let h = c.handles.install(None, &efi::protocols::loaded_image::PROTOCOL_GUID, 0x3000).unwrap();
                let li = publish(c, efi::BOOT_SERVICES_DATA, core::mem::zeroed::<efi::protocols::loaded_image::Protocol>()).unwrap();
                let base = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::LOADER_CODE, 1, PAGE_SIZE).unwrap();
                c.images.push(image::Image {
                    handle: h,
                    loaded_image: li,
                    base,
                    pages: 1,
                    entry: entry as usize as u64,
                    application: true,
                    started: false,
                    exit_context: None,
                    exit_data: None,
                    owned: Vec::new(),
                    refused: false,
                    own_initrd: false,
                });
                h
            });
            h as efi::Handle
        };
        let free_before = with_core(|c| c.memory.free_pages());
        let a = fake(returns);
        let (mut size, mut data) = (0usize, null_mut());
        assert_eq!((bs.start_image)(a, &mut size, &mut data), Status::from_usize(0x1234));
        assert_eq!((bs.start_image)(a, &mut size, &mut data), Status::INVALID_PARAMETER, "unloaded once it returned");
        assert_eq!(with_core(|c| c.memory.free_pages()), free_before, "its pages went back: chainloading leaks nothing");
        let b = fake(exits);
        assert_eq!((bs.start_image)(b, &mut size, &mut data), Status::ABORTED, "Exit came back to StartImage");
        assert_eq!((bs.exit)(b, Status::SUCCESS, 0, null_mut()), Status::INVALID_PARAMETER, "not running: unloaded when it exited");

        // A running image may not Exit on behalf of the image that started it.
        extern "efiapi" fn starts_inner(_: efi::Handle, st: *mut efi::SystemTable) -> Status {
            let inner = INNER.load(std::sync::atomic::Ordering::SeqCst) as efi::Handle;
            // SAFETY: the system table StartImage passed.
            unsafe { ((*(*st).boot_services).start_image)(inner, null_mut(), null_mut()) }
        }
        extern "efiapi" fn exits_outer(_: efi::Handle, st: *mut efi::SystemTable) -> Status {
            let outer = OUTER.load(std::sync::atomic::Ordering::SeqCst) as efi::Handle;
            // SAFETY: the system table StartImage passed.
            unsafe { ((*(*st).boot_services).exit)(outer, Status::ABORTED, 0, null_mut()) }
        }
        static OUTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        static INNER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let outer = fake(starts_inner);
        OUTER.store(outer as usize, std::sync::atomic::Ordering::SeqCst);
        INNER.store(fake(exits_outer) as usize, std::sync::atomic::Ordering::SeqCst);
        assert_eq!((bs.start_image)(outer, &mut size, &mut data), Status::INVALID_PARAMETER, "the inner image's Exit(outer) was refused, and returned");

        // UnloadImage of a started image needs its Unload function.
        extern "efiapi" fn unloads_itself(handle: efi::Handle, st: *mut efi::SystemTable) -> Status {
            // SAFETY: the system table StartImage passed.
            unsafe { ((*(*st).boot_services).unload_image)(handle) }
        }
        let u = fake(unloads_itself);
        assert_eq!((bs.start_image)(u, &mut size, &mut data), Status::UNSUPPORTED, "started, and no Unload function");
        let c = fake(returns);
        assert_eq!((bs.exit)(c, Status::SUCCESS, 0, null_mut()), Status::SUCCESS, "Exit on an image never started unloads it");
        assert_eq!((bs.unload_image)(c), Status::INVALID_PARAMETER, "gone");
        let d = fake(returns);
        assert_eq!((bs.unload_image)(d), Status::SUCCESS);
        assert_eq!((bs.start_image)(0x99 as efi::Handle, null_mut(), null_mut()), Status::INVALID_PARAMETER);
    }
}

#[test]
fn device_path_utilities() {
    let (m, _) = machine();
    let bs = m.bs();
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((bs.locate_protocol)(&mut efi::protocols::device_path_utilities::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let u = &*(p as *const efi::protocols::device_path_utilities::Protocol);
        // The three device-path protocols share one handle, as EDK2's DevicePathDxe has them
        // (applications open Utilities on the DevicePathToText handle).
        let mut handles = [null_mut(); 3];
        for (h, guid) in handles.iter_mut().zip([
            efi::protocols::device_path_utilities::PROTOCOL_GUID,
            efi::protocols::device_path_to_text::PROTOCOL_GUID,
            efi::protocols::device_path_from_text::PROTOCOL_GUID,
        ]) {
            let (mut n, mut buf) = (0usize, null_mut());
            assert_eq!((bs.locate_handle_buffer)(efi::BY_PROTOCOL, &mut guid.clone(), null_mut(), &mut n, &mut buf), Status::SUCCESS);
            assert_eq!(n, 1);
            *h = *buf;
            assert_eq!((bs.free_pool)(buf.cast()), Status::SUCCESS);
        }
        assert!(handles[0] == handles[1] && handles[1] == handles[2], "{handles:?}");
        let a = crate::efi::device_path::vendor_media(&G1);
        let b = crate::efi::device_path::vendor_media(&G2);
        let (pa, pb) = (a.as_ptr() as *const _, b.as_ptr() as *const _);
        assert_eq!((u.get_device_path_size)(pa), a.len());
        assert_eq!((u.get_device_path_size)(null()), 0);
        let dup = (u.duplicate_device_path)(pa);
        assert_eq!(core::slice::from_raw_parts(dup as *const u8, a.len()), &a[..]);
        assert_eq!((bs.free_pool)(dup.cast()), Status::SUCCESS, "pool memory the caller frees");
        let ab = (u.append_device_path)(pa, pb);
        assert_eq!((u.get_device_path_size)(ab), a.len() + b.len() - 4);
        let multi = (u.append_device_path_instance)(pa, pb);
        assert_eq!((u.is_device_path_multi_instance)(multi), efi::Boolean::TRUE);
        assert_eq!((u.is_device_path_multi_instance)(pa), efi::Boolean::FALSE);
        let (mut cursor, mut size) = (multi, 0usize);
        let first = (u.get_next_device_path_instance)(&mut cursor, &mut size);
        assert_eq!((core::slice::from_raw_parts(first as *const u8, size), cursor.is_null()), (&a[..], false));
        let second = (u.get_next_device_path_instance)(&mut cursor, &mut size);
        assert_eq!((core::slice::from_raw_parts(second as *const u8, size), cursor.is_null()), (&b[..], true));
        let node = (u.create_device_node)(4, 3, 20);
        assert_eq!((u.get_device_path_size)((u.append_device_node)(null(), node)), 24);
        assert!((u.create_device_node)(4, 3, 2).is_null());
        let mut bad = a.clone();
        bad[2] = 1; // a node shorter than its header
        assert!((u.duplicate_device_path)(bad.as_ptr() as *const _).is_null());

        // DevicePathToText: a path and a node, in pool memory.
        assert_eq!((bs.locate_protocol)(&mut efi::protocols::device_path_to_text::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let t = &*(p as *const efi::protocols::device_path_to_text::Protocol);
        let text = |p: *mut u16| {
            let n = (0..).take_while(|&i| *p.add(i) != 0).count();
            String::from_utf16(core::slice::from_raw_parts(p, n)).unwrap()
        };
        let s = (t.convert_device_path_to_text)(multi, efi::Boolean::FALSE, efi::Boolean::FALSE);
        assert_eq!(text(s), "VenMedia(11111111-2222-3333-4455-010203040506),VenMedia(55555555-2222-3333-4455-010203040506)");
        assert_eq!((bs.free_pool)(s.cast()), Status::SUCCESS);
        let s = (t.convert_device_node_to_text)(pb as *mut _, efi::Boolean::TRUE, efi::Boolean::TRUE);
        assert_eq!(text(s), "VenMedia(55555555-2222-3333-4455-010203040506)");
        assert!((t.convert_device_path_to_text)(null_mut(), efi::Boolean::FALSE, efi::Boolean::FALSE).is_null());
        assert!((t.convert_device_path_to_text)(bad.as_mut_ptr().cast(), efi::Boolean::FALSE, efi::Boolean::FALSE).is_null());

        // DevicePathFromText: the text back to the same bytes.
        assert_eq!((bs.locate_protocol)(&mut efi::protocols::device_path_from_text::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let f = &*(p as *const efi::protocols::device_path_from_text::Protocol);
        let s = (t.convert_device_path_to_text)(multi, efi::Boolean::FALSE, efi::Boolean::FALSE);
        let back = (f.convert_text_to_device_path)(s);
        assert_eq!((u.get_device_path_size)(back), (u.get_device_path_size)(multi));
        assert_eq!(
            core::slice::from_raw_parts(back as *const u8, (u.get_device_path_size)(multi)),
            core::slice::from_raw_parts(multi as *const u8, (u.get_device_path_size)(multi))
        );
        let file = ucs2("\\EFI\\BOOT\\grubaa64.efi");
        let node = (f.convert_text_to_device_node)(file.as_ptr());
        assert_eq!(((*node).r#type, (*node).sub_type), (4, 4), "a file path node");
        let pci = ucs2("PciRoot(0x0)/Pci(0x1F,0x2)/Ata(Primary,Master,0x1)");
        let path = (f.convert_text_to_device_path)(pci.as_ptr());
        assert_eq!((u.get_device_path_size)(path), 12 + 6 + 8 + 4);
        let s = (t.convert_device_path_to_text)(path, efi::Boolean::FALSE, efi::Boolean::FALSE);
        assert_eq!(text(s), "PciRoot(0x0)/Pci(0x1F,0x2)/Ata(Primary,Master,0x1)");
        let unknown = ucs2("Pci(0x1,0x0)/NoSuchNode(0x1)");
        assert!((f.convert_text_to_device_path)(unknown.as_ptr()).is_null(), "a form no one defines");
        assert!((f.convert_text_to_device_node)(null()).is_null());
    }
}

#[test]
fn unicode_collation() {
    let (m, _) = machine();
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut unicode_collation::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let uc = p as *mut unicode_collation::Protocol;
        assert_eq!(core::ffi::CStr::from_ptr((*uc).supported_languages.cast()).to_str(), Ok("en"));
        let (mut a, mut b) = (ucs2("EFI\\Boot"), ucs2("efi\\BOOT"));
        assert_eq!(((*uc).stri_coll)(uc, a.as_mut_ptr(), b.as_mut_ptr()), 0);
        let mut pattern = ucs2("*\\B??T");
        assert_eq!(((*uc).metai_match)(uc, a.as_mut_ptr(), pattern.as_mut_ptr()), efi::Boolean::TRUE);
        ((*uc).str_upr)(uc, b.as_mut_ptr());
        assert_eq!(b, ucs2("EFI\\BOOT"));
        ((*uc).str_lwr)(uc, b.as_mut_ptr());
        assert_eq!(b, ucs2("efi\\boot"));
        let mut fat = [0u8; 11];
        let mut name = ucs2("grub.efi");
        assert_eq!(((*uc).str_to_fat)(uc, name.as_mut_ptr(), 11, fat.as_mut_ptr()), efi::Boolean::FALSE);
        assert_eq!(&fat[..7], b"GRUBEFI");
        let mut back = [0u16; 12];
        ((*uc).fat_to_str)(uc, 7, fat.as_mut_ptr(), back.as_mut_ptr());
        assert_eq!(&back[..8], &ucs2("GRUBEFI")[..]);
    }
}

/// A FAT16 ESP with a loader, its config and a kernel-sized file, made by the fatfs crate.
fn esp_image() -> Vec<u8> {
    use std::io::Write;
    let mut disk = std::io::Cursor::new(vec![0u8; 8 << 20]);
    fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().volume_label(*b"ESP        ")).unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
        let boot = fs.root_dir().create_dir("EFI").unwrap().create_dir("BOOT").unwrap();
        boot.create_file("BOOTAA64.EFI").unwrap().write_all(&crate::efi::pe::test_image()).unwrap();
        fs.root_dir().create_dir("loader").unwrap().create_file("loader.conf").unwrap().write_all(b"timeout 0\n").unwrap();
    }
    disk.into_inner()
}

#[test]
fn esp_as_a_disk_and_a_file_system() {
    let (m, kernel) = machine();
    let bs = m.bs();
    let disk = esp_image();
    let esp = with_core(|c| esp::install(c, disk.as_ptr() as u64, disk.len() as u64)).unwrap();
    let w = |s: &str| ucs2(s);
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((bs.handle_protocol)(esp as efi::Handle, &mut efi::protocols::simple_file_system::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let fs = p as *mut efi::protocols::simple_file_system::Protocol;
        let mut root: *mut efi::protocols::file::Protocol = null_mut();
        assert_eq!(((*fs).open_volume)(fs, &mut root), Status::SUCCESS);
        let r = &*root;
        let mut f: *mut efi::protocols::file::Protocol = null_mut();
        assert_eq!((r.open)(root, &mut f, w("efi\\boot\\bootaa64.efi").as_mut_ptr(), efi::protocols::file::MODE_READ, 0), Status::SUCCESS);
        assert_eq!((r.open)(root, &mut f, w("\\EFI\\nope").as_mut_ptr(), efi::protocols::file::MODE_READ, 0), Status::NOT_FOUND);
        let mode_rw = efi::protocols::file::MODE_READ | efi::protocols::file::MODE_WRITE;
        let mut g: *mut efi::protocols::file::Protocol = null_mut();
        assert_eq!((r.open)(root, &mut g, w("loader\\loader.conf").as_mut_ptr(), mode_rw, 0), Status::WRITE_PROTECTED);
        assert_eq!((r.open)(root, &mut f, w("\\EFI\\BOOT\\BOOTAA64.EFI").as_mut_ptr(), efi::protocols::file::MODE_READ, 0), Status::SUCCESS);
        let file = &*f;
        // GetInfo: the size probe, then EFI_FILE_INFO.
        let mut size = 0usize;
        assert_eq!((file.get_info)(f, &mut efi::protocols::file::INFO_ID.clone(), &mut size, null_mut()), Status::BUFFER_TOO_SMALL);
        let mut info = vec![0u8; size];
        assert_eq!((file.get_info)(f, &mut efi::protocols::file::INFO_ID.clone(), &mut size, info.as_mut_ptr().cast()), Status::SUCCESS);
        let file_size = u64::from_le_bytes(info[8..16].try_into().unwrap());
        assert_eq!(file_size as usize, crate::efi::pe::test_image().len());
        let mut bytes = vec![0u8; 4096];
        let mut n = bytes.len();
        assert_eq!((file.read)(f, &mut n, bytes.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!((n, &bytes[..2]), (file_size as usize, &b"MZ"[..]));
        let mut pos = 0u64;
        assert_eq!((file.get_position)(f, &mut pos), Status::SUCCESS);
        assert_eq!(pos, file_size);
        assert_eq!((file.set_position)(f, 2), Status::SUCCESS);
        n = 2;
        assert_eq!((file.read)(f, &mut n, bytes.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(n, 2);
        // Zero bytes into no buffer: nothing read, the position kept (Miri checks no slice is
        // made from NULL).
        n = 0;
        assert_eq!((file.read)(f, &mut n, null_mut()), Status::SUCCESS);
        assert_eq!((file.get_position)(f, &mut pos), Status::SUCCESS);
        assert_eq!((n, pos), (0, 4));
        n = 1;
        assert_eq!((file.read)(f, &mut n, null_mut()), Status::INVALID_PARAMETER);
        n = 4;
        assert_eq!((file.write)(f, &mut n, bytes.as_mut_ptr().cast()), Status::WRITE_PROTECTED);
        assert_eq!((file.set_info)(f, &mut efi::protocols::file::INFO_ID.clone(), 0, null_mut()), Status::WRITE_PROTECTED);
        assert_eq!((file.flush)(f), Status::SUCCESS);
        assert_eq!((file.delete)(f), Status::WARN_DELETE_FAILURE, "closed, not deleted");
        assert_eq!((file.close)(f), Status::INVALID_PARAMETER, "already closed");
        // The root directory reads as EFI_FILE_INFO entries, then size 0.
        let mut names = Vec::new();
        loop {
            let mut buf = vec![0u8; 512];
            let mut n = buf.len();
            assert_eq!((r.read)(root, &mut n, buf.as_mut_ptr().cast()), Status::SUCCESS);
            if n == 0 {
                break;
            }
            let name: Vec<u16> = buf[80..n].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
            names.push(String::from_utf16(&name).unwrap());
        }
        assert_eq!(names, ["EFI", "loader"]);
        assert_eq!((r.set_position)(root, 5), Status::UNSUPPORTED, "directories only rewind");
        assert_eq!((r.set_position)(root, 0), Status::SUCCESS);
        let mut pos = 0u64;
        assert_eq!((r.get_position)(root, &mut pos), Status::UNSUPPORTED);
        let mut buf = vec![0u8; 256];
        let mut n = buf.len();
        assert_eq!((r.get_info)(root, &mut efi::protocols::file::SYSTEM_INFO_ID.clone(), &mut n, buf.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(buf[8], 1, "read-only volume");
        n = buf.len();
        assert_eq!((r.get_info)(root, &mut efi::protocols::file::SYSTEM_VOLUME_LABEL_ID.clone(), &mut n, buf.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(&buf[..8], &[b'E', 0, b'S', 0, b'P', 0, 0, 0]);
        assert_eq!((r.get_info)(root, &mut G1.clone(), &mut n, buf.as_mut_ptr().cast()), Status::UNSUPPORTED);
        assert_eq!((r.close)(root), Status::SUCCESS);

        // BlockIo and DiskIo over the image.
        assert_eq!((bs.handle_protocol)(esp as efi::Handle, &mut efi::protocols::block_io::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let bio = p as *mut efi::protocols::block_io::Protocol;
        assert_eq!(((*(*bio).media).read_only, (*(*bio).media).last_block), (true, (8 << 20) / 512 - 1));
        let mut sector = vec![0u8; 512];
        assert_eq!(((*bio).read_blocks)(bio, 1, 0, 512, sector.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(&sector[510..], &[0x55, 0xaa]);
        assert_eq!(((*bio).read_blocks)(bio, 2, 0, 512, sector.as_mut_ptr().cast()), Status::MEDIA_CHANGED);
        assert_eq!(((*bio).read_blocks)(bio, 1, 0, 100, sector.as_mut_ptr().cast()), Status::BAD_BUFFER_SIZE);
        assert_eq!(((*bio).read_blocks)(bio, 1, 1 << 20, 512, sector.as_mut_ptr().cast()), Status::INVALID_PARAMETER, "past the end");
        assert_eq!(((*bio).write_blocks)(bio, 1, 0, 512, sector.as_mut_ptr().cast()), Status::WRITE_PROTECTED);
        assert_eq!((bs.handle_protocol)(esp as efi::Handle, &mut efi::protocols::disk_io::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let dio = p as *mut efi::protocols::disk_io::Protocol;
        let mut two = [0u8; 2];
        assert_eq!(((*dio).read_disk)(dio, 1, 510, 2, two.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(two, [0x55, 0xaa]);

        // LoadImage of RamDisk(..)/File(\EFI\BOOT\BOOTAA64.EFI): read through the file system.
        let mut path = crate::efi::device_path::ram_disk(disk.as_ptr() as u64, disk.as_ptr() as u64 + disk.len() as u64 - 1);
        path.truncate(path.len() - 4);
        path.extend(crate::efi::device_path::file_path(&w("\\EFI\\BOOT\\BOOTAA64.EFI")[..22]));
        let mut h: efi::Handle = null_mut();
        assert_eq!((bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, path.as_mut_ptr().cast(), null_mut(), 0, &mut h), Status::SUCCESS);
        let mut li: *mut c_void = null_mut();
        assert_eq!((bs.handle_protocol)(h, &mut efi::protocols::loaded_image::PROTOCOL_GUID.clone(), &mut li), Status::SUCCESS);
        let li = &*(li as *const efi::protocols::loaded_image::Protocol);
        assert_eq!(li.device_handle, esp as efi::Handle, "DeviceHandle is the ESP");
        let file_path = crate::efi::device_path::read(li.file_path as *const u8).unwrap();
        assert_eq!(crate::efi::device_path::file_path_of(file_path).unwrap(), &w("\\EFI\\BOOT\\BOOTAA64.EFI")[..22]);
    }
}

#[test]
fn initrd_through_load_file2() {
    let (m, _) = machine();
    let initrd: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let start = initrd.as_ptr() as u64;
    // The published device tree names the loader's initrd in /chosen, as kexec's does.
    let mut tree = efi_emulator_loader::dtb_edit::Tree::parse(&crate::abi::testkit::virt_dtb(1 << 30, "hvc")).unwrap();
    tree.chosen_mut().set_property("linux,initrd-start", start.to_be_bytes().to_vec());
    tree.chosen_mut().set_property("linux,initrd-end", (start + 5000).to_be_bytes().to_vec());
    let mut dtb = tree.to_blob();
    with_core(|c| {
        c.config.push((crate::efi::guids::DEVICE_TREE, dtb.as_mut_ptr() as usize));
        initrd::install(c, start, start + 5000)
    })
    .unwrap();
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut efi::protocols::load_file2::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let lf = &*(p as *const efi::protocols::load_file2::Protocol);
        let mut size = 0usize;
        assert_eq!((lf.load_file)(p.cast(), null_mut(), efi::Boolean::TRUE, &mut size, null_mut()), Status::UNSUPPORTED, "BootPolicy");
        assert_eq!((lf.load_file)(p.cast(), null_mut(), efi::Boolean::FALSE, null_mut(), null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((lf.load_file)(p.cast(), null_mut(), efi::Boolean::FALSE, &mut size, null_mut()), Status::BUFFER_TOO_SMALL);
        assert_eq!(size, 5000);
        let mut buf = vec![0u8; 5000];
        assert_eq!((lf.load_file)(p.cast(), null_mut(), efi::Boolean::FALSE, &mut size, buf.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(buf, initrd);

        // GRUB's `initrd` installs its own LoadFile2 on the same device path: it gets it.
        let path = crate::efi::device_path::vendor_media(&crate::efi::guids::LINUX_EFI_INITRD_MEDIA);
        let dp = &efi::protocols::device_path::PROTOCOL_GUID as *const Guid as *mut c_void;
        let lf2 = &efi::protocols::load_file2::PROTOCOL_GUID as *const Guid as *mut c_void;
        let theirs = 0x7000 as *mut c_void;
        let mut h: efi::Handle = null_mut();
        let args = [dp, path.as_ptr() as *mut c_void, lf2, theirs, null_mut()];
        assert_eq!(handles::install_multiple_pairs::inner(&mut h, args.as_ptr()), Status::SUCCESS);
        let mut found = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut efi::protocols::load_file2::PROTOCOL_GUID.clone(), null_mut(), &mut found), Status::SUCCESS);
        assert_eq!(found, theirs, "only the payload's initrd is left");
        // Linux takes /chosen's initrd over the one its stub loads: it is gone from there too.
        assert_eq!(crate::drivers::fdt::Fdt::new(&dtb).unwrap().initrd(), None, "/chosen no longer names the loader's initrd");
        // Any other device path twice is still refused.
        let mut again: efi::Handle = null_mut();
        assert_eq!(handles::install_multiple_pairs::inner(&mut again, args.as_ptr()), Status::ALREADY_STARTED);
    }
}

/// systemd-boot starts a UKI with its own `.initrd`: systemd-stub looks for an initrd with
/// LocateDevicePath before it registers its own, and gives up on finding the loader's. When
/// such an image starts, the loader's steps aside (a UKI without one keeps it: Linux loads it).
#[test]
fn a_uki_with_its_own_initrd_makes_the_loaders_step_aside() {
    let (m, _) = machine();
    let initrd = vec![0x1au8; 100];
    let start = initrd.as_ptr() as u64;
    with_core(|c| initrd::install(c, start, start + 100)).unwrap();
    extern "efiapi" fn looks(_: efi::Handle, st: *mut efi::SystemTable) -> Status {
        // As systemd-stub's initrd_register: anything but NOT_FOUND makes it give up.
        let mut path = crate::efi::device_path::vendor_media(&crate::efi::guids::LINUX_EFI_INITRD_MEDIA);
        let mut dp = path.as_mut_ptr() as *mut efi::protocols::device_path::Protocol;
        let mut handle = null_mut();
        // SAFETY: the system table StartImage passed; our own path.
        unsafe { ((*(*st).boot_services).locate_device_path)(&mut efi::protocols::load_file2::PROTOCOL_GUID.clone(), &mut dp, &mut handle) }
    }
    let image = |own_initrd: bool| {
        with_core(|c| {
            let h = c.handles.install(None, &efi::protocols::loaded_image::PROTOCOL_GUID, 0x3000).unwrap();
            let base = c.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::LOADER_CODE, 1, PAGE_SIZE).unwrap();
            c.images.push(image::Image {
                handle: h,
                loaded_image: null_mut(),
                base,
                pages: 1,
                entry: looks as HostEntry as usize as u64,
                application: false,
                started: false,
                exit_context: None,
                exit_data: None,
                owned: Vec::new(),
                refused: false,
                own_initrd,
            });
            h as efi::Handle
        })
    };
    // SAFETY: see the module comment.
    unsafe {
        let bs = m.bs();
        assert_eq!((bs.start_image)(image(false), null_mut(), null_mut()), Status::SUCCESS, "a UKI without .initrd finds the loader's");
        assert_eq!((bs.start_image)(image(true), null_mut(), null_mut()), Status::NOT_FOUND, "a UKI with one finds none, and registers its own");
    }
    drop(initrd);
}

#[test]
fn console_rng_and_memory_attributes() {
    let (m, _) = machine();
    // SAFETY: see the module comment.
    unsafe {
        let st = &*m.systab;
        let con = &*st.con_out;
        let mut text = ucs2("hi\r\n");
        assert_eq!((con.output_string)(st.con_out, text.as_mut_ptr()), Status::SUCCESS);
        assert_eq!((con.output_string)(null_mut(), text.as_mut_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((con.output_string)(st.con_out, null_mut()), Status::INVALID_PARAMETER);
        // A misaligned CHAR16 pointer is refused, not read as a (misaligned) slice.
        let units = [0x6800u16, 0, 0];
        assert_eq!((con.output_string)(st.con_out, (units.as_ptr() as *const u8).add(1) as *mut u16), Status::INVALID_PARAMETER);
        assert_eq!((con.test_string)(st.con_out, text.as_mut_ptr()), Status::SUCCESS);
        let (mut cols, mut rows) = (0usize, 0usize);
        assert_eq!((con.query_mode)(st.con_out, 0, &mut cols, &mut rows), Status::SUCCESS);
        assert_eq!((cols, rows), (80, 25));
        assert_eq!((con.query_mode)(st.con_out, 1, &mut cols, &mut rows), Status::UNSUPPORTED);
        assert_eq!((con.set_mode)(st.con_out, 1), Status::UNSUPPORTED);
        assert_eq!((con.set_mode)(st.con_out, 0), Status::SUCCESS);
        assert_eq!((con.set_attribute)(st.con_out, 0x80), Status::UNSUPPORTED);
        assert_eq!((con.set_attribute)(st.con_out, 0x1f), Status::SUCCESS);
        assert_eq!((con.set_cursor_position)(st.con_out, 80, 0), Status::UNSUPPORTED);
        assert_eq!((con.set_cursor_position)(st.con_out, 3, 2), Status::SUCCESS);
        assert_eq!(((*con.mode).cursor_column, (*con.mode).cursor_row), (3, 2));
        assert_eq!((con.clear_screen)(st.con_out), Status::SUCCESS);
        assert_eq!((con.enable_cursor)(st.con_out, efi::Boolean::TRUE), Status::SUCCESS);
        assert_eq!((con.reset)(st.con_out, efi::Boolean::FALSE), Status::SUCCESS);
        assert!(host::state(|s| s.console_out.starts_with("hi\n")), "{:?}", host::state(|s| s.console_out.clone()));
        // A lone CR (a line redrawn in place) reaches the terminal; SetAttribute sends colours.
        host::state(|s| s.console_out.clear());
        let mut progress = ucs2("50%\r60%");
        assert_eq!((con.output_string)(st.con_out, progress.as_mut_ptr()), Status::SUCCESS);
        assert_eq!((con.set_attribute)(st.con_out, 0x1e), Status::SUCCESS); // yellow on blue
        assert_eq!(host::state(|s| s.console_out.clone()), "50%\r60%\x1b[0;93;44m");

        let cin = &*st.con_in;
        let mut key = text_in::InputKey { scan_code: 0, unicode_char: 0 };
        assert_eq!((cin.read_key_stroke)(st.con_in, &mut key), Status::NOT_READY);
        host::state(|s| s.console_in.extend([b'a', 0x1b, b'[', b'B', 0x1b]));
        let mut index = 0usize;
        let mut wait = [cin.wait_for_key];
        assert_eq!((m.bs().wait_for_event)(1, wait.as_mut_ptr(), &mut index), Status::SUCCESS, "WaitForKey signals once a key is there");
        assert_eq!((cin.read_key_stroke)(st.con_in, &mut key), Status::SUCCESS);
        assert_eq!((key.scan_code, key.unicode_char), (0, b'a' as u16));
        assert_eq!((cin.read_key_stroke)(st.con_in, &mut key), Status::SUCCESS);
        assert_eq!((key.scan_code, key.unicode_char), (0x02, 0), "ESC [ B is the down arrow");
        assert_eq!((cin.read_key_stroke)(st.con_in, &mut key), Status::SUCCESS);
        assert_eq!((key.scan_code, key.unicode_char), (0x17, 0), "a lone ESC");
        host::state(|s| s.console_in.push_back(b'z'));
        assert_eq!((cin.read_key_stroke)(st.con_in, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((cin.reset)(st.con_in, efi::Boolean::FALSE), Status::SUCCESS);
        assert_eq!((cin.read_key_stroke)(st.con_in, &mut key), Status::NOT_READY, "Reset dropped the rest");

        // SimpleTextInputEx on the same handle: keys with (unreported) state, WaitForKeyEx, key
        // notifications, SetState.
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().handle_protocol)(st.console_in_handle, &mut efi::protocols::simple_text_input_ex::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let ex = p as *mut efi::protocols::simple_text_input_ex::Protocol;
        let mut data = efi::protocols::simple_text_input_ex::KeyData::default();
        assert_eq!(((*ex).read_key_stroke_ex)(ex, &mut data), Status::NOT_READY);
        extern "efiapi" fn on_q(data: *mut efi::protocols::simple_text_input_ex::KeyData) -> Status {
            // SAFETY: the key data ReadKeyStroke passes.
            NOTIFIED.fetch_add(unsafe { (*data).key.unicode_char } as usize, std::sync::atomic::Ordering::SeqCst);
            Status::SUCCESS
        }
        NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
        let mut q = efi::protocols::simple_text_input_ex::KeyData::default();
        q.key.unicode_char = b'q' as u16;
        let mut reg: *mut c_void = null_mut();
        assert_eq!(((*ex).register_key_notify)(ex, &mut q, on_q, &mut reg), Status::SUCCESS);
        host::state(|s| s.console_in.extend([b'x', b'q']));
        let mut wait = [(*ex).wait_for_key_ex];
        assert_eq!((m.bs().wait_for_event)(1, wait.as_mut_ptr(), &mut index), Status::SUCCESS);
        assert_eq!(((*ex).read_key_stroke_ex)(ex, &mut data), Status::SUCCESS);
        assert_eq!((data.key.unicode_char, data.key_state.key_shift_state), (b'x' as u16, 0));
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 0, "not the registered key");
        assert_eq!(((*ex).read_key_stroke_ex)(ex, &mut data), Status::SUCCESS);
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), b'q' as usize, "the notification saw the key");
        assert_eq!(((*ex).unregister_key_notify)(ex, reg), Status::SUCCESS);
        assert_eq!(((*ex).unregister_key_notify)(ex, reg), Status::INVALID_PARAMETER);
        let mut toggle = 0u8;
        assert_eq!(((*ex).set_state)(ex, &mut toggle), Status::UNSUPPORTED);
        toggle = efi::protocols::simple_text_input_ex::TOGGLE_STATE_VALID;
        assert_eq!(((*ex).set_state)(ex, &mut toggle), Status::SUCCESS);
        assert_eq!(((*ex).read_key_stroke_ex)(ex, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!(((*ex).reset)(ex, efi::Boolean::FALSE), Status::SUCCESS);

        // SerialIo on the console handle.
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().handle_protocol)(st.console_in_handle, &mut serial_io::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let sio = p as *mut serial_io::Protocol;
        assert_eq!(((*sio).set_attributes)(sio, 0, 0, 0, 0, 0, 0), Status::SUCCESS, "defaults");
        assert_eq!(((*(*sio).mode).baud_rate, (*(*sio).mode).data_bits), (115_200, 8));
        assert_eq!(((*sio).set_attributes)(sio, 9600, 1, 0, 9, 8, 1), Status::INVALID_PARAMETER, "no parity 9");
        let mut control = 0u32;
        assert_eq!(((*sio).get_control)(sio, &mut control), Status::SUCCESS);
        assert_ne!(control & serial_io::INPUT_BUFFER_EMPTY, 0);
        assert_eq!(((*sio).set_control)(sio, serial_io::REQUEST_TO_SEND), Status::SUCCESS);
        assert_eq!(((*sio).set_control)(sio, 0x1000), Status::UNSUPPORTED, "no loopback");
        host::state(|s| s.console_out.clear());
        let mut n = 5usize;
        assert_eq!(((*sio).write)(sio, &mut n, b"grub>".as_ptr() as *mut c_void), Status::SUCCESS);
        assert_eq!(host::state(|s| s.console_out.clone()), "grub>");
        host::state(|s| s.console_in.extend(*b"ab"));
        // Each byte may take Mode.Timeout to come (2 ms here), and timers fire meanwhile.
        assert_eq!(((*sio).set_attributes)(sio, 0, 0, 2_000, 0, 0, 0), Status::SUCCESS);
        NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
        let mut timer = null_mut();
        assert_eq!(
            (m.bs().create_event)(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count_notify), core::ptr::without_provenance_mut(1), &mut timer),
            Status::SUCCESS
        );
        assert_eq!((m.bs().set_timer)(timer, efi::TIMER_RELATIVE, 10_000), Status::SUCCESS); // 1 ms
        let mut buf = [0u8; 4];
        n = 4;
        let before = host::state(|s| s.ticks);
        assert_eq!(((*sio).read)(sio, &mut n, buf.as_mut_ptr().cast()), Status::TIMEOUT, "two of four bytes");
        assert_eq!((n, &buf[..2]), (2, &b"ab"[..]));
        assert!(host::state(|s| s.ticks) - before >= 2_000, "waited the timeout for the third byte");
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 1, "the timer fired during the wait");
        assert_eq!((m.bs().close_event)(timer), Status::SUCCESS);
        assert_eq!(((*sio).reset)(sio), Status::SUCCESS);

        // RNG.
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut rngp::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let rng = &*(p as *const rngp::Protocol);
        let mut size = 0usize;
        assert_eq!((rng.get_info)(p.cast(), &mut size, null_mut()), Status::BUFFER_TOO_SMALL);
        let mut algs = [rngp::ALGORITHM_RAW; 2];
        assert_eq!((rng.get_info)(p.cast(), &mut size, algs.as_mut_ptr()), Status::SUCCESS);
        assert_eq!(size, 32);
        let mut bytes = [0u8; 13];
        assert_eq!((rng.get_rng)(p.cast(), null_mut(), 13, bytes.as_mut_ptr()), Status::SUCCESS);
        assert_ne!(bytes, [0u8; 13]);
        assert_eq!((rng.get_rng)(p.cast(), &mut rngp::ALGORITHM_RAW.clone(), 0, bytes.as_mut_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((rng.get_rng)(p.cast(), &mut G1.clone(), 8, bytes.as_mut_ptr()), Status::UNSUPPORTED);
        host::state(|s| s.random = None);
        assert_eq!((rng.get_rng)(p.cast(), &mut rngp::ALGORITHM_RAW.clone(), 8, bytes.as_mut_ptr()), Status::DEVICE_ERROR);

        // Memory attributes on the simulated page tables.
        assert_eq!((m.bs().locate_protocol)(&mut ma::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let mattr = &*(p as *const ma::Protocol);
        let (base, _) = m.ram();
        let mut bits = 0u64;
        assert_eq!((mattr.get_memory_attributes)(p.cast(), base, 2 * PAGE_SIZE, &mut bits), Status::SUCCESS);
        assert_eq!(bits, 0);
        assert_eq!((mattr.set_memory_attributes)(p.cast(), base, PAGE_SIZE, efi::MEMORY_RO), Status::SUCCESS);
        assert_eq!(host::state(|s| s.pages[&base]), Access::CODE);
        assert_eq!((mattr.get_memory_attributes)(p.cast(), base, 2 * PAGE_SIZE, &mut bits), Status::NO_MAPPING, "not uniform");
        assert_eq!((mattr.set_memory_attributes)(p.cast(), base, PAGE_SIZE, efi::MEMORY_RP), Status::UNSUPPORTED);
        assert_eq!((mattr.set_memory_attributes)(p.cast(), base, PAGE_SIZE, 0), Status::INVALID_PARAMETER);
        assert_eq!((mattr.set_memory_attributes)(p.cast(), base + 1, PAGE_SIZE, efi::MEMORY_XP), Status::INVALID_PARAMETER);
        assert_eq!((mattr.clear_memory_attributes)(p.cast(), base, PAGE_SIZE, efi::MEMORY_RO), Status::SUCCESS);
        // shim 15.7+ clears RP|XP on each code section: nothing is read-protected, so it works.
        assert_eq!((mattr.set_memory_attributes)(p.cast(), base, PAGE_SIZE, efi::MEMORY_XP), Status::SUCCESS);
        assert_eq!((mattr.clear_memory_attributes)(p.cast(), base, PAGE_SIZE, efi::MEMORY_RP | efi::MEMORY_XP), Status::SUCCESS);
        assert_eq!(host::state(|s| s.pages[&base]), Access::RAM);
        assert_eq!((mattr.set_memory_attributes)(p.cast(), 0x1000, PAGE_SIZE, efi::MEMORY_XP), Status::NO_MAPPING, "unmapped");
        assert_eq!((mattr.get_memory_attributes)(null_mut(), base, PAGE_SIZE, &mut bits), Status::INVALID_PARAMETER);
        let _ = text_out::PROTOCOL_GUID;
    }
}

#[test]
fn runtime_services_without_firmware() {
    let (m, _) = machine();
    let rt = m.rt();
    // SAFETY: see the module comment.
    unsafe {
        let mut name = ucs2("Var");
        let attrs = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;
        let data = [7u8; 10];
        assert_eq!((rt.set_variable)(name.as_mut_ptr(), &mut G1.clone(), attrs, 10, null_mut()), Status::INVALID_PARAMETER);
        assert_eq!((rt.set_variable)(null_mut(), &mut G1.clone(), attrs, 10, data.as_ptr() as *mut c_void), Status::INVALID_PARAMETER);
        assert_eq!((rt.set_variable)(name.as_mut_ptr(), &mut G1.clone(), attrs, 10, data.as_ptr() as *mut c_void), Status::SUCCESS);
        let (mut size, mut got_attrs) = (0usize, 0u32);
        assert_eq!((rt.get_variable)(name.as_mut_ptr(), &mut G1.clone(), &mut got_attrs, &mut size, null_mut()), Status::BUFFER_TOO_SMALL);
        assert_eq!((size, got_attrs), (10, attrs), "UEFI 2.10: Attributes are set on EFI_BUFFER_TOO_SMALL too");
        let mut buf = [0u8; 10];
        assert_eq!((rt.get_variable)(name.as_mut_ptr(), &mut G1.clone(), &mut got_attrs, &mut size, buf.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!((buf, got_attrs), (data, attrs));
        assert_eq!((rt.get_variable)(name.as_mut_ptr(), &mut G2.clone(), &mut got_attrs, &mut size, buf.as_mut_ptr().cast()), Status::NOT_FOUND);
        assert_eq!((rt.get_variable)(name.as_mut_ptr(), &mut G1.clone(), &mut got_attrs, null_mut(), buf.as_mut_ptr().cast()), Status::INVALID_PARAMETER);

        // Without firmware, Secure Boot is off and says so, read-only.
        let mut secure_boot = ucs2("SecureBoot");
        let mut one = [9u8];
        let mut size = 1usize;
        assert_eq!((rt.get_variable)(secure_boot.as_mut_ptr(), &mut efi::GLOBAL_VARIABLE.clone(), null_mut(), &mut size, one.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(one, [0]);
        assert_eq!((rt.set_variable)(secure_boot.as_mut_ptr(), &mut efi::GLOBAL_VARIABLE.clone(), attrs, 1, [1u8].as_ptr() as *mut c_void), Status::WRITE_PROTECTED);

        // GetNextVariableName: from the empty name, with the size probe; SecureBoot, SetupMode,
        // then ours.
        let mut next = [0u16; 16];
        let mut guid = G2;
        let mut size = 2usize;
        assert_eq!((rt.get_next_variable_name)(&mut size, next.as_mut_ptr(), &mut guid), Status::BUFFER_TOO_SMALL);
        assert_eq!(size, 22);
        size = 32;
        assert_eq!((rt.get_next_variable_name)(&mut size, next.as_mut_ptr(), &mut guid), Status::SUCCESS);
        assert_eq!((&next[..11], guid), (&secure_boot[..], efi::GLOBAL_VARIABLE));
        size = 32;
        assert_eq!((rt.get_next_variable_name)(&mut size, next.as_mut_ptr(), &mut guid), Status::SUCCESS);
        size = 32;
        assert_eq!((rt.get_next_variable_name)(&mut size, next.as_mut_ptr(), &mut guid), Status::SUCCESS);
        assert_eq!((&next[..4], guid), (&name[..], G1));
        assert_eq!((rt.get_next_variable_name)(&mut size, next.as_mut_ptr(), &mut guid), Status::NOT_FOUND, "the end");
        assert_eq!((rt.get_next_variable_name)(null_mut(), next.as_mut_ptr(), &mut guid), Status::INVALID_PARAMETER);

        let (mut max, mut remaining, mut largest) = (0u64, 0u64, 0u64);
        assert_eq!((rt.query_variable_info)(attrs, &mut max, &mut remaining, &mut largest), Status::SUCCESS);
        assert!(max > 0 && remaining < max && largest <= remaining);
        assert_eq!((rt.query_variable_info)(attrs, null_mut(), &mut remaining, &mut largest), Status::INVALID_PARAMETER);
        assert_eq!((rt.set_variable)(name.as_mut_ptr(), &mut G1.clone(), attrs, 0, null_mut()), Status::SUCCESS, "deleted");
        assert_eq!((rt.get_variable)(name.as_mut_ptr(), &mut G1.clone(), &mut got_attrs, &mut size, buf.as_mut_ptr().cast()), Status::NOT_FOUND);

        // Honest EFI_UNSUPPORTED for what needs hardware this machine does not have.
        let mut time = core::mem::zeroed::<efi::Time>();
        let (mut enabled, mut pending) = (efi::Boolean::FALSE, efi::Boolean::FALSE);
        let mut count = 0u32;
        let (mut cap_max, mut reset) = (0u64, 0 as efi::ResetType);
        assert_eq!((rt.get_time)(&mut time, null_mut()), Status::UNSUPPORTED);
        assert_eq!((rt.set_time)(&mut time), Status::UNSUPPORTED);
        assert_eq!((rt.get_wakeup_time)(&mut enabled, &mut pending, &mut time), Status::UNSUPPORTED);
        assert_eq!((rt.set_wakeup_time)(efi::Boolean::FALSE, null_mut()), Status::UNSUPPORTED);
        assert_eq!((rt.get_next_high_mono_count)(&mut count), Status::UNSUPPORTED);
        assert_eq!((rt.update_capsule)(null_mut(), 0, 0), Status::UNSUPPORTED);
        assert_eq!((rt.query_capsule_capabilities)(null_mut(), 0, &mut cap_max, &mut reset), Status::UNSUPPORTED);
        assert_eq!((rt.convert_pointer)(0, null_mut()), Status::UNSUPPORTED);

        // With a PL031: GetTime and SetTime on it; the zone SetTime was given comes back.
        host::state(|s| s.rtc = Some(1_796_083_199)); // 2026-11-30 23:59:59
        let mut caps = core::mem::zeroed::<efi::TimeCapabilities>();
        assert_eq!((rt.get_time)(null_mut(), &mut caps), Status::INVALID_PARAMETER);
        assert_eq!((rt.get_time)(&mut time, &mut caps), Status::SUCCESS);
        assert_eq!((time.year, time.month, time.day, time.hour, time.second, time.timezone), (2026, 11, 30, 23, 59, crate::efi::time::UNSPECIFIED_TIMEZONE));
        assert_eq!((caps.resolution, caps.accuracy), (1, 50_000_000));
        assert_eq!(runtime::supported_mask(None) & 3, 3, "GET_TIME | SET_TIME said supported");
        time.day = 31;
        assert_eq!((rt.set_time)(&mut time), Status::INVALID_PARAMETER, "30 November days");
        (time.year, time.month, time.day, time.timezone, time.daylight) = (2030, 1, 2, -60, 1);
        assert_eq!((rt.set_time)(&mut time), Status::SUCCESS);
        assert_eq!(host::state(|s| s.rtc), Some(1_893_628_799), "2030-01-02 23:59:59");
        assert_eq!((rt.get_time)(&mut time, null_mut()), Status::SUCCESS);
        assert_eq!((time.year, time.timezone, time.daylight), (2030, -60, 1));
        (time.year, time.timezone) = (2107, crate::efi::time::UNSPECIFIED_TIMEZONE);
        assert_eq!((rt.set_time)(&mut time), Status::DEVICE_ERROR, "past what 32 bits of seconds hold");
        host::state(|s| s.rtc = None);

        // SetVirtualAddressMap: only at runtime, once, and only the emulator's identity map.
        let d = efi::MemoryDescriptor {
            r#type: efi::RUNTIME_SERVICES_DATA,
            physical_start: 0x4000_0000,
            virtual_start: 0x4000_0000,
            number_of_pages: 1,
            attribute: efi::MEMORY_RUNTIME,
        };
        let mut one = [d];
        assert_eq!((rt.set_virtual_address_map)(40, 40, 1, one.as_mut_ptr()), Status::UNSUPPORTED, "not at runtime yet");
        assert_eq!((m.bs().exit_boot_services)(core::ptr::without_provenance_mut(1), map_key(m.bs())), Status::SUCCESS);
        assert_eq!((rt.set_virtual_address_map)(40, 8, 1, one.as_mut_ptr()), Status::INVALID_PARAMETER);
        assert_eq!((rt.set_virtual_address_map)(40, 40, 1, null_mut()), Status::INVALID_PARAMETER);
        one[0].virtual_start = 0xffff_0000_0000;
        assert_eq!((rt.set_virtual_address_map)(40, 40, 1, one.as_mut_ptr()), Status::UNSUPPORTED, "a move");
        one[0].virtual_start = 0x4000_0000;
        assert_eq!((rt.set_virtual_address_map)(40, 40, 1, one.as_mut_ptr()), Status::SUCCESS);
        assert_eq!((rt.set_virtual_address_map)(40, 40, 1, one.as_mut_ptr()), Status::UNSUPPORTED, "once only");
    }
}

#[test]
fn the_watchdog_resets_a_payload_that_waits_too_long() {
    let (m, _) = machine();
    let bs = m.bs() as *const efi::BootServices as usize;
    host::state(|s| s.power = None);
    // A payload that arms a 1 s watchdog and then stalls 2 s: it never returns, so it runs on
    // a thread of its own, which the reset parks.
    std::thread::spawn(move || {
        // SAFETY: the boot services table of the machine, which outlives the test's wait.
        let bs = unsafe { &*(bs as *const efi::BootServices) };
        // SAFETY: see the module comment.
        unsafe {
            assert_eq!((bs.set_watchdog_timer)(1, 0x10000, 0, null_mut()), Status::SUCCESS);
            (bs.stall)(2_000_000);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host::state(|s| s.power.is_none()) && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(host::state(|s| s.power), Some(PowerAction::Reset));
}

/// Notify functions that keep queueing each other (a NOTIFY_WAIT function that checks its own
/// event) run inside services, with the tick masked: CheckEvent serves the watchdog, so the
/// loop ends in a reset.
#[test]
fn the_watchdog_ends_notify_functions_that_queue_each_other() {
    let (m, _) = machine();
    let bs = m.bs() as *const efi::BootServices as usize;
    host::state(|s| s.power = None);
    extern "efiapi" fn checks_itself(event: efi::Event, context: *mut c_void) {
        // SAFETY: the test passes the boot services table as the context.
        unsafe { ((*(context as *const efi::BootServices)).check_event)(event) };
    }
    std::thread::spawn(move || {
        // SAFETY: the boot services table of the machine, which outlives the test's wait.
        let bs = unsafe { &*(bs as *const efi::BootServices) };
        let mut e = null_mut();
        // SAFETY: see the module comment.
        unsafe {
            assert_eq!((bs.set_watchdog_timer)(1, 0x10000, 0, null_mut()), Status::SUCCESS);
            assert_eq!((bs.create_event)(efi::EVT_NOTIFY_WAIT, efi::TPL_CALLBACK, Some(checks_itself), bs as *const _ as *mut c_void, &mut e), Status::SUCCESS);
            (bs.check_event)(e);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while host::state(|s| s.power.is_none()) && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(host::state(|s| s.power), Some(PowerAction::Reset));
}

#[test]
fn reset_system_powers_off_through_the_machine() {
    let (m, _) = machine();
    let reset = m.rt().reset_system;
    // Reset notifications run first.
    extern "efiapi" fn before_reset(kind: efi::ResetType, _: Status, _: usize, _: *mut c_void) {
        NOTIFIED.store(100 + kind as usize, std::sync::atomic::Ordering::SeqCst);
    }
    NOTIFIED.store(0, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut reset_notification::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let rn = p as *mut reset_notification::Protocol;
        assert_eq!(((*rn).register_reset_notify)(rn, None), Status::INVALID_PARAMETER);
        assert_eq!(((*rn).register_reset_notify)(rn, Some(before_reset)), Status::SUCCESS);
        assert_eq!(((*rn).register_reset_notify)(rn, Some(before_reset)), Status::ALREADY_STARTED);
        assert_eq!(((*rn).unregister_reset_notify)(rn, Some(before_reset)), Status::SUCCESS);
        assert_eq!(((*rn).unregister_reset_notify)(rn, Some(before_reset)), Status::INVALID_PARAMETER);
        assert_eq!(((*rn).register_reset_notify)(rn, Some(before_reset)), Status::SUCCESS);
    }
    for (kind, expected) in [(efi::RESET_SHUTDOWN, PowerAction::Off), (efi::RESET_COLD, PowerAction::Reset)] {
        host::state(|s| s.power = None);
        // ResetSystem never returns: it runs on a thread of its own, which parks for good.
        // SAFETY: see the module comment.
        std::thread::spawn(move || unsafe { reset(kind, Status::SUCCESS, 0, null_mut()) });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while host::state(|s| s.power.is_none()) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(host::state(|s| s.power), Some(expected));
        assert_eq!(NOTIFIED.load(std::sync::atomic::Ordering::SeqCst), 100 + kind as usize, "the registered function ran before");
    }
}

#[test]
fn decompress_protocol() {
    let (m, _) = machine();
    let packed: &[u8] = include_bytes!("../../tests/data/decompress/text.efi");
    let text: &[u8] = include_bytes!("../../tests/data/decompress/text.txt");
    // SAFETY: see the module comment.
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!((m.bs().locate_protocol)(&mut efi::protocols::decompress::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let d = p as *mut efi::protocols::decompress::Protocol;
        let src = packed.as_ptr() as *mut c_void;
        let (mut size, mut scratch_size) = (0u32, 0u32);
        assert_eq!(((*d).get_info)(d, src, packed.len() as u32, &mut size, &mut scratch_size), Status::SUCCESS);
        assert_eq!((size as usize, scratch_size), (text.len(), decompress::SCRATCH_SIZE));
        assert_eq!(((*d).get_info)(d, src, 7, &mut size, &mut scratch_size), Status::INVALID_PARAMETER, "shorter than the header");
        assert_eq!(((*d).get_info)(d, src, packed.len() as u32 - 1, &mut size, &mut scratch_size), Status::INVALID_PARAMETER, "shorter than the header says");
        let mut out = vec![0u8; text.len()];
        let mut scratch = vec![0u8; scratch_size as usize];
        let (dst, scr) = (out.as_mut_ptr() as *mut c_void, scratch.as_mut_ptr() as *mut c_void);
        assert_eq!(((*d).decompress)(d, src, packed.len() as u32, dst, size - 1, scr, scratch_size), Status::INVALID_PARAMETER, "destination too small");
        assert_eq!(((*d).decompress)(d, src, packed.len() as u32, dst, size, scr, scratch_size - 1), Status::INVALID_PARAMETER, "scratch too small");
        assert_eq!(((*d).decompress)(d, src, packed.len() as u32, dst, size, scr, scratch_size), Status::SUCCESS);
        assert_eq!(out, text);
        let mut bad = packed.to_vec();
        bad[8..40].fill(0xff);
        assert_eq!(((*d).decompress)(d, bad.as_mut_ptr().cast(), bad.len() as u32, dst, size, scr, scratch_size), Status::INVALID_PARAMETER, "damaged tables");
    }
}

#[test]
fn a_gpt_esp_gets_a_partition_child_handle() {
    let (m, _) = machine();
    let bs = m.bs();
    let fs = esp_image();
    // A GPT disk: header at LBA 1, entries at LBA 2, the ESP (entry 1) at LBA 34.
    let mut disk = vec![0u8; 34 * 512 + fs.len() + 33 * 512];
    disk[512..520].copy_from_slice(b"EFI PART");
    disk[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
    disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
    disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
    let esp_type = [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
    disk[1024..1040].copy_from_slice(&esp_type);
    disk[1040..1056].copy_from_slice(&[0x42; 16]);
    disk[1056..1064].copy_from_slice(&34u64.to_le_bytes());
    disk[1064..1072].copy_from_slice(&(34 + fs.len() as u64 / 512 - 1).to_le_bytes());
    disk[34 * 512..34 * 512 + fs.len()].copy_from_slice(&fs);
    let start = disk.as_ptr() as u64;
    let volume = with_core(|c| esp::install(c, start, disk.len() as u64)).unwrap();
    // SAFETY: see the module comment.
    unsafe {
        // The volume's handle is the partition: RamDisk/HD(1,GPT,..)/End, with SimpleFileSystem.
        let mut p: *mut c_void = null_mut();
        assert_eq!((bs.handle_protocol)(volume as efi::Handle, &mut efi::protocols::device_path::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let text = crate::efi::device_path::path_text(crate::efi::device_path::read(p as *const u8).unwrap());
        assert_eq!(text, format!("VirtualDisk(0x{start:X},0x{:X},0)/HD(1,GPT,42424242-4242-4242-4242-424242424242,0x22,0x{:X})", start + disk.len() as u64 - 1, fs.len() / 512));
        assert_eq!((bs.handle_protocol)(volume as efi::Handle, &mut efi::protocols::simple_file_system::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        // Its BlockIo starts at the partition: block 0 is the FAT boot sector.
        assert_eq!((bs.handle_protocol)(volume as efi::Handle, &mut efi::protocols::block_io::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let bio = p as *mut efi::protocols::block_io::Protocol;
        assert!((*(*bio).media).logical_partition);
        assert_eq!((*(*bio).media).last_block, fs.len() as u64 / 512 - 1);
        let mut sector = [0u8; 512];
        assert_eq!(((*bio).read_blocks)(bio, 1, 0, 512, sector.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!((&sector[..3], &sector[510..]), (&fs[..3], &[0x55, 0xaa][..]));
        let last = fs.len() as u64 / 512;
        assert_eq!(((*bio).read_blocks)(bio, 1, last, 512, sector.as_mut_ptr().cast()), Status::INVALID_PARAMETER, "past the partition");
        // The whole disk is a handle of its own, whose block 1 is the GPT header.
        let mut n = 0usize;
        let mut handles: *mut efi::Handle = null_mut();
        assert_eq!((bs.locate_handle_buffer)(efi::BY_PROTOCOL, &mut efi::protocols::block_io::PROTOCOL_GUID.clone(), null_mut(), &mut n, &mut handles), Status::SUCCESS);
        assert_eq!(n, 2);
        let whole = (0..n).map(|i| *handles.add(i)).find(|&h| h as usize != volume).unwrap();
        assert_eq!((bs.handle_protocol)(whole, &mut efi::protocols::block_io::PROTOCOL_GUID.clone(), &mut p), Status::SUCCESS);
        let bio = p as *mut efi::protocols::block_io::Protocol;
        assert!(!(*(*bio).media).logical_partition);
        assert_eq!(((*bio).read_blocks)(bio, 1, 1, 512, sector.as_mut_ptr().cast()), Status::SUCCESS);
        assert_eq!(&sector[..8], b"EFI PART");
    }
}

fn sha256_list(hashes: &[&[u8]]) -> Vec<u8> {
    use crate::efi::secure_boot::signature_list::CERT_SHA256;
    use efi_emulator_loader::signature_list::list;
    list(&CERT_SHA256, hashes)
}

#[test]
fn the_policy_follows_the_platform() {
    use security::Policy;
    let db = sha256_list(&[&[1; 32], &[2; 32]]);
    let vars = |secure_boot: Option<u8>, dbx_error: bool| {
        let db = db.clone();
        move |name: &str, _: &Guid| -> Result<Option<Vec<u8>>, Status> {
            match name {
                "SecureBoot" => Ok(secure_boot.map(|v| vec![v])),
                "db" => Ok(Some(db.clone())),
                "dbx" if dbx_error => Err(Status::DEVICE_ERROR),
                _ => Ok(None),
            }
        }
    };
    assert!(!Policy::from_platform(None).enforcing, "no firmware");
    assert!(!Policy::from_platform(Some(&mut vars(None, false))).enforcing, "no SecureBoot variable");
    assert!(!Policy::from_platform(Some(&mut vars(Some(0), false))).enforcing, "SecureBoot = 0");
    let on = Policy::from_platform(Some(&mut vars(Some(1), false)));
    assert!(on.enforcing && on.db == db && on.dbx.is_empty() && on.mok.is_empty());
    // An unreadable dbx revokes everything, even what db lists.
    let broken = Policy::from_platform(Some(&mut vars(Some(1), true)));
    assert!(broken.enforcing);
    let pe = crate::efi::pe::test_image();
    let hash = crate::efi::secure_boot::authenticode::digest_with(crate::efi::secure_boot::hash::HashAlg::Sha256, &crate::efi::pe::PeImage::parse(&pe).unwrap()).unwrap();
    let allowing = Policy { db: sha256_list(&[hash.as_bytes()]), ..broken };
    assert_eq!(allowing.check(&pe, &"test"), Status::ACCESS_DENIED);
    assert_eq!(Policy { dbx: Vec::new(), ..allowing }.check(&pe, &"test"), Status::SUCCESS);
    assert_eq!(Policy::default().check(b"not even a PE", &"test"), Status::SUCCESS, "not enforced");
}

#[test]
fn secure_boot_gates_load_image_through_the_security2_protocol() {
    let (m, kernel) = machine();
    let bs = m.bs();
    let allowed = crate::efi::pe::test_image();
    let hash = crate::efi::secure_boot::authenticode::digest_with(crate::efi::secure_boot::hash::HashAlg::Sha256, &crate::efi::pe::PeImage::parse(&allowed).unwrap()).unwrap();
    let mut unknown = allowed.clone();
    unknown[0x250] ^= 1; // .text
    with_core(|c| security::install(c, security::Policy { enforcing: true, db: sha256_list(&[hash.as_bytes()]), ..Default::default() })).unwrap();
    // SAFETY: see the module comment.
    unsafe {
        let load = |file: &[u8], h: &mut efi::Handle| (bs.load_image)(efi::Boolean::FALSE, kernel as efi::Handle, null_mut(), file.as_ptr() as *mut c_void, file.len(), h);
        let mut h: efi::Handle = null_mut();
        assert_eq!(load(&allowed, &mut h), Status::SUCCESS, "its hash is in db");
        assert_eq!((bs.unload_image)(h), Status::SUCCESS);
        // Refused: nothing loaded, the handle NULL, as EDK2 does.
        h = 0x55 as efi::Handle;
        assert_eq!(load(&unknown, &mut h), Status::ACCESS_DENIED);
        assert!(h.is_null());
        // The protocol a payload finds is the one LoadImage asks: systemd-stub and shim replace
        // its function to approve what they verified themselves (or to refuse).
        let mut iface: *mut c_void = null_mut();
        assert_eq!((bs.locate_protocol)(&mut security::SECURITY2_GUID.clone(), null_mut(), &mut iface), Status::SUCCESS);
        let proto = iface as *mut security::Security2Protocol;
        let original = (*proto).file_authentication;
        extern "efiapi" fn approve(_: *mut security::Security2Protocol, _: *const efi::protocols::device_path::Protocol, _: *mut c_void, _: usize, _: efi::Boolean) -> Status {
            Status::SUCCESS
        }
        extern "efiapi" fn defer(_: *mut security::Security2Protocol, _: *const efi::protocols::device_path::Protocol, _: *mut c_void, _: usize, _: efi::Boolean) -> Status {
            Status::SECURITY_VIOLATION
        }
        (*proto).file_authentication = approve;
        assert_eq!(load(&unknown, &mut h), Status::SUCCESS, "the replacement approved it");
        assert_eq!((bs.unload_image)(h), Status::SUCCESS);
        // SECURITY_VIOLATION: loaded, with a handle, but StartImage says no; UnloadImage frees it.
        (*proto).file_authentication = defer;
        h = null_mut();
        assert_eq!(load(&allowed, &mut h), Status::SECURITY_VIOLATION);
        assert!(!h.is_null());
        assert_eq!((bs.start_image)(h, null_mut(), null_mut()), Status::SECURITY_VIOLATION);
        assert_eq!((bs.unload_image)(h), Status::SUCCESS);
        (*proto).file_authentication = original;
        assert_eq!(original(proto, null(), unknown.as_ptr() as *mut c_void, unknown.len(), efi::Boolean::FALSE), Status::ACCESS_DENIED, "called directly");
        assert_eq!(original(proto, null(), null_mut(), 0, efi::Boolean::FALSE), Status::ACCESS_DENIED, "nothing to verify");
        let mut v1: *mut c_void = null_mut();
        assert_eq!((bs.locate_protocol)(&mut security::SECURITY_GUID.clone(), null_mut(), &mut v1), Status::SUCCESS, "Security beside Security2");
    }
}

/// With firmware, GetNextVariableName lists the firmware's names, then the emulator's: a name
/// both have is listed once (the emulator's shadows it), the caller's buffer is not touched
/// when the list ends, and a name without a NUL within VariableNameSize is refused unread.
#[test]
fn passed_through_variable_names_are_listed_once() {
    let (m, _) = machine();
    const FIRMWARE_NAMES: [&str; 2] = ["Alpha", "Shadow"];
    extern "efiapi" fn firmware_next(size: *mut usize, name: *mut u16, guid: *mut Guid) -> Status {
        // SAFETY: the test's own arguments, as the emulator passes them on.
        unsafe {
            let current = ucs2_arg(name).unwrap();
            let at = FIRMWARE_NAMES.iter().position(|n| n.encode_utf16().eq(current.iter().copied())).map_or(0, |i| i + 1);
            let Some(next) = (!current.is_empty()).then_some(at).or(Some(0)).and_then(|i| FIRMWARE_NAMES.get(i)) else { return Status::NOT_FOUND };
            let units: Vec<u16> = next.encode_utf16().chain([0]).collect();
            if *size < units.len() * 2 {
                *size = units.len() * 2;
                return Status::BUFFER_TOO_SMALL;
            }
            core::ptr::copy_nonoverlapping(units.as_ptr(), name, units.len());
            *guid = G1;
            Status::SUCCESS
        }
    }
    let mut firmware = runtime::table(None);
    firmware.get_next_variable_name = firmware_next;
    // The emulator's own store has "Shadow" too, and "Own": volatile, so kept here.
    with_variables(|s| {
        s.set(&ucs2("Shadow")[..6], &G1, efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS, b"s")?;
        s.set(&ucs2("Own")[..3], &G1, efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS, b"o")
    })
    .unwrap();
    runtime::set_firmware_for_test(&firmware);
    // SAFETY: see the module comment.
    unsafe {
        let mut buf = [0u16; 64];
        let mut g = G2;
        let mut seen = Vec::new();
        loop {
            let mut size = buf.len() * 2;
            match (m.rt().get_next_variable_name)(&mut size, buf.as_mut_ptr(), &mut g) {
                Status::SUCCESS => seen.push(String::from_utf16(ucs2_arg(buf.as_ptr()).unwrap()).unwrap()),
                Status::NOT_FOUND => break,
                other => panic!("{other:?}"),
            }
        }
        for name in ["Alpha", "Own", "Shadow"] {
            assert_eq!(seen.iter().filter(|s| *s == name).count(), 1, "{name} once in {seen:?}");
        }
        assert_eq!(String::from_utf16(ucs2_arg(buf.as_ptr()).unwrap()).unwrap(), *seen.last().unwrap(), "the last name is still in the buffer after NOT_FOUND");
        // No NUL within the size given: refused, not read past.
        let mut unterminated = [b'x' as u16; 4];
        let mut size = 8;
        assert_eq!((m.rt().get_next_variable_name)(&mut size, unterminated.as_mut_ptr(), &mut g), Status::INVALID_PARAMETER);
    }
    runtime::reset_for_test();
}

/// With firmware at runtime, QueryVariableInfo about what the emulator keeps itself (no
/// RUNTIME_ACCESS, or volatile) is answered by the emulator, as SetVariable stores it here: shim
/// asks about NV|BS first and, under Secure Boot, gives up when refused.
#[test]
fn query_variable_info_answers_for_the_variables_kept_here() {
    let (m, _) = machine();
    extern "efiapi" fn firmware_at_runtime(attributes: u32, max: *mut u64, remaining: *mut u64, largest: *mut u64) -> Status {
        if attributes & efi::VARIABLE_RUNTIME_ACCESS == 0 {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: the test's own out-arguments.
        unsafe { (max.write(1234), remaining.write(567), largest.write(89)) };
        Status::SUCCESS
    }
    let mut firmware = runtime::table(None);
    firmware.query_variable_info = firmware_at_runtime;
    runtime::set_firmware_for_test(&firmware);
    let (mut max, mut remaining, mut largest) = (0u64, 0u64, 0u64);
    let (nv, bs, rt) = (efi::VARIABLE_NON_VOLATILE, efi::VARIABLE_BOOTSERVICE_ACCESS, efi::VARIABLE_RUNTIME_ACCESS);
    // SAFETY: see the module comment.
    unsafe {
        assert_eq!((m.rt().query_variable_info)(nv | bs, &mut max, &mut remaining, &mut largest), Status::SUCCESS, "NV|BS: kept here");
        assert_ne!(max, 1234);
        assert_eq!((m.rt().query_variable_info)(bs | rt, &mut max, &mut remaining, &mut largest), Status::SUCCESS, "volatile: kept here");
        assert_eq!((m.rt().query_variable_info)(nv | bs | rt, &mut max, &mut remaining, &mut largest), Status::SUCCESS);
        assert_eq!((max, remaining, largest), (1234, 567, 89), "NV|BS|RT: the firmware's");
    }
    runtime::reset_for_test();
}

/// The driver model with two drivers a payload installs: a bus driver that manages G1
/// controllers and makes one G2 child each, and a driver for G2 devices. What Connect and
/// DisconnectController, OpenProtocol(EXCLUSIVE) and UninstallProtocolInterface do with them
/// (before: ConnectController never called a driver, DisconnectController ignored its
/// arguments, EXCLUSIVE and Uninstall refused instead of disconnecting).
mod driver_model {
    use super::*;
    use efi::protocols::driver_binding::{Protocol as Binding, PROTOCOL_GUID as BINDING};
    use std::string::{String, ToString};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Mutex;

    static BS: AtomicUsize = AtomicUsize::new(0);
    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static STOP_FAILS: AtomicBool = AtomicBool::new(false);
    const CHILD_INTERFACE: usize = 0xc41d;

    fn bs() -> &'static efi::BootServices {
        // SAFETY: the test stores the machine's boot services table, which outlives the calls.
        unsafe { &*(BS.load(SeqCst) as *const efi::BootServices) }
    }
    fn log(s: String) {
        LOG.lock().unwrap().push(s);
    }
    fn taken() -> Vec<String> {
        core::mem::take(&mut *LOG.lock().unwrap())
    }

    /// Opens `guid` on `controller` BY_DRIVER for the binding's handle.
    unsafe fn take(this: *mut Binding, controller: efi::Handle, guid: Guid) -> Status {
        let mut i = null_mut();
        // SAFETY: see the module comment; `this` is the test's binding.
        unsafe { (bs().open_protocol)(controller, &mut guid.clone(), &mut i, (*this).driver_binding_handle, controller, efi::OPEN_PROTOCOL_BY_DRIVER) }
    }

    extern "efiapi" fn bus_supported(this: *mut Binding, controller: efi::Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        // SAFETY: see the module comment.
        unsafe {
            let s = take(this, controller, G1);
            if s == Status::SUCCESS {
                (bs().close_protocol)(controller, &mut G1.clone(), (*this).driver_binding_handle, controller);
            }
            log(format!("bus supported {:#x}", s.as_usize()));
            s
        }
    }

    extern "efiapi" fn bus_start(this: *mut Binding, controller: efi::Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        // SAFETY: see the module comment.
        unsafe {
            assert_eq!(take(this, controller, G1), Status::SUCCESS);
            let mut child: efi::Handle = null_mut();
            assert_eq!((bs().install_protocol_interface)(&mut child, &mut G2.clone(), efi::NATIVE_INTERFACE, CHILD_INTERFACE as *mut c_void), Status::SUCCESS);
            let mut i = null_mut();
            assert_eq!((bs().open_protocol)(controller, &mut G1.clone(), &mut i, (*this).driver_binding_handle, child, efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER), Status::SUCCESS);
        }
        log("bus start".to_string());
        Status::SUCCESS
    }

    extern "efiapi" fn bus_stop(this: *mut Binding, controller: efi::Handle, n: usize, children: *mut efi::Handle) -> Status {
        log(format!("bus stop {n}"));
        if STOP_FAILS.load(SeqCst) {
            return Status::DEVICE_ERROR;
        }
        // SAFETY: see the module comment; `children` holds `n` handles.
        unsafe {
            let me = (*this).driver_binding_handle;
            for k in 0..n {
                let child = *children.add(k);
                assert_eq!((bs().close_protocol)(controller, &mut G1.clone(), me, child), Status::SUCCESS);
                assert_eq!((bs().uninstall_protocol_interface)(child, &mut G2.clone(), CHILD_INTERFACE as *mut c_void), Status::SUCCESS, "its own driver is disconnected first");
            }
            if n == 0 {
                assert_eq!((bs().close_protocol)(controller, &mut G1.clone(), me, controller), Status::SUCCESS);
            }
        }
        Status::SUCCESS
    }

    extern "efiapi" fn device_supported(this: *mut Binding, controller: efi::Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        // SAFETY: see the module comment.
        unsafe {
            let s = take(this, controller, G2);
            if s == Status::SUCCESS {
                (bs().close_protocol)(controller, &mut G2.clone(), (*this).driver_binding_handle, controller);
            }
            s
        }
    }

    extern "efiapi" fn device_start(this: *mut Binding, controller: efi::Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        // SAFETY: see the module comment.
        assert_eq!(unsafe { take(this, controller, G2) }, Status::SUCCESS);
        log("device start".to_string());
        Status::SUCCESS
    }

    extern "efiapi" fn device_stop(this: *mut Binding, controller: efi::Handle, n: usize, _: *mut efi::Handle) -> Status {
        // SAFETY: see the module comment.
        unsafe { assert_eq!((bs().close_protocol)(controller, &mut G2.clone(), (*this).driver_binding_handle, controller), Status::SUCCESS) };
        log(format!("device stop {n}"));
        Status::SUCCESS
    }

    /// Installs a Driver Binding on a handle of its own.
    fn install(supported: driver_binding::ProtocolSupported, start: driver_binding::ProtocolStart, stop: driver_binding::ProtocolStop, version: u32) -> efi::Handle {
        let binding = Box::leak(Box::new(Binding { supported, start, stop, version, image_handle: null_mut(), driver_binding_handle: null_mut() }));
        let mut h: efi::Handle = null_mut();
        // SAFETY: see the module comment.
        assert_eq!(unsafe { (bs().install_protocol_interface)(&mut h, &mut BINDING.clone(), efi::NATIVE_INTERFACE, (binding as *mut Binding).cast()) }, Status::SUCCESS);
        binding.driver_binding_handle = h;
        h
    }
    use efi::protocols::driver_binding;

    #[test]
    fn drivers_connect_disconnect_and_give_way() {
        let (m, _) = machine();
        BS.store(m.bs() as *const efi::BootServices as usize, SeqCst);
        STOP_FAILS.store(false, SeqCst);
        taken();
        let bs = bs();
        let opens =
            |h: efi::Handle, g: Guid| with_core(|c| c.handles.open_information(h as usize, &g).map(|v| v.iter().map(|o| o.attributes).collect::<Vec<_>>()).unwrap_or_default());
        // SAFETY: see the module comment.
        unsafe {
            let mut controller: efi::Handle = null_mut();
            assert_eq!((bs.install_protocol_interface)(&mut controller, &mut G1.clone(), efi::NATIVE_INTERFACE, 0x1000 as *mut c_void), Status::SUCCESS);
            assert_eq!((bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::NOT_FOUND, "no driver yet");

            let device = install(device_supported, device_start, device_stop, 0x5);
            let bus = install(bus_supported, bus_start, bus_stop, 0x10);
            assert_eq!((bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::SUCCESS);
            assert_eq!(taken(), ["bus supported 0x0", "bus start"], "the higher version first; the device driver does not apply");
            assert_eq!(opens(controller, G1), [efi::OPEN_PROTOCOL_BY_DRIVER, efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER]);
            let child = with_core(|c| c.handles.children_of(controller as usize, Some(bus as usize)))[0] as efi::Handle;
            assert_eq!((bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::NOT_FOUND, "started already");
            assert_eq!(taken(), [format!("bus supported {:#x}", Status::ALREADY_STARTED.as_usize())]);
            let _ = (bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::TRUE);
            assert!(taken().contains(&"device start".to_string()), "recursive: the child is connected");
            assert_eq!(opens(child, G2), [efi::OPEN_PROTOCOL_BY_DRIVER]);

            // DisconnectController: the child first (its own driver let go as the bus
            // uninstalls it), then the controller.
            let mut named = [device, null_mut()];
            assert_eq!((bs.disconnect_controller)(controller, 0x55 as efi::Handle, null_mut()), Status::INVALID_PARAMETER);
            assert_eq!((bs.disconnect_controller)(controller, device, null_mut()), Status::SUCCESS, "the device driver does not manage it: nothing to do");
            assert_eq!(taken(), Vec::<String>::new());
            assert_eq!((bs.disconnect_controller)(controller, null_mut(), null_mut()), Status::SUCCESS);
            assert_eq!(taken(), ["bus stop 1", "device stop 0", "bus stop 0"]);
            assert!(opens(controller, G1).is_empty());
            assert!(!with_core(|c| c.handles.is_handle(child as usize)), "the child is gone");

            // ConnectController with the device driver named first: it does not apply, the bus
            // driver still starts.
            assert_eq!((bs.connect_controller)(controller, named.as_mut_ptr(), null_mut(), efi::Boolean::FALSE), Status::SUCCESS);
            taken();

            // An EXCLUSIVE open disconnects the driver holding the protocol.
            let mut i = null_mut();
            assert_eq!((bs.open_protocol)(controller, &mut G1.clone(), &mut i, device, null_mut(), efi::OPEN_PROTOCOL_EXCLUSIVE), Status::SUCCESS);
            assert_eq!(taken(), ["bus stop 1", "bus stop 0"]);
            assert_eq!(opens(controller, G1), [efi::OPEN_PROTOCOL_EXCLUSIVE]);
            assert_eq!((bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::NOT_FOUND, "held exclusively");
            assert_eq!(taken(), [format!("bus supported {:#x}", Status::ACCESS_DENIED.as_usize())]);
            assert_eq!((bs.close_protocol)(controller, &mut G1.clone(), device, null_mut()), Status::SUCCESS);

            // A driver that will not stop: DisconnectController fails, the uninstall is refused
            // and the protocol stays.
            assert_eq!((bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::SUCCESS);
            STOP_FAILS.store(true, SeqCst);
            taken();
            assert_eq!((bs.disconnect_controller)(controller, null_mut(), null_mut()), Status::DEVICE_ERROR);
            assert_eq!((bs.uninstall_protocol_interface)(controller, &mut G1.clone(), 0x1000 as *mut c_void), Status::ACCESS_DENIED);
            assert_eq!(with_core(|c| c.handles.get(controller as usize, &G1)), Ok(0x1000));

            assert_eq!(
                opens(with_core(|c| c.handles.children_of(controller as usize, Some(bus as usize)))[0] as efi::Handle, G2),
                [efi::OPEN_PROTOCOL_BY_DRIVER],
                "the refused uninstall connected again, recursively"
            );

            // Uninstall disconnects the drivers holding the protocol, then takes it.
            STOP_FAILS.store(false, SeqCst);
            taken();
            assert_eq!((bs.uninstall_protocol_interface)(controller, &mut G1.clone(), 0x1000 as *mut c_void), Status::SUCCESS);
            assert_eq!(taken(), ["bus stop 1", "device stop 0", "bus stop 0"]);
            assert!(!with_core(|c| c.handles.is_handle(controller as usize)));

            // Two handles that each name the other as a child: a recursive connect ends (it
            // recursed until the stack ran out before).
            let (mut a, mut b): (efi::Handle, efi::Handle) = (null_mut(), null_mut());
            assert_eq!((bs.install_protocol_interface)(&mut a, &mut G2.clone(), efi::NATIVE_INTERFACE, null_mut()), Status::SUCCESS);
            assert_eq!((bs.install_protocol_interface)(&mut b, &mut G2.clone(), efi::NATIVE_INTERFACE, null_mut()), Status::SUCCESS);
            let mut i = null_mut();
            assert_eq!((bs.open_protocol)(a, &mut G2.clone(), &mut i, bus, b, efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER), Status::SUCCESS);
            assert_eq!((bs.open_protocol)(b, &mut G2.clone(), &mut i, bus, a, efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER), Status::SUCCESS);
            taken();
            let _ = (bs.connect_controller)(a, null_mut(), null_mut(), efi::Boolean::TRUE);
            assert_eq!(taken().iter().filter(|l| *l == "device start").count(), 2, "each handle started once");
        }
        drop(m);
    }
}

/// EFI_TCG2_PROTOCOL through its table, on a software TPM: the capability structure's layout
/// (natural alignment: systemd reads TPMPresentFlag at byte 16), the event header checks, PE
/// images by their Authenticode digest, the log handed out and the final-events table after it.
#[test]
fn tcg2_through_its_table() {
    use crate::efi::secure_boot::hash::HashAlg;
    use crate::efi::tcg2::soft_tpm;
    use tcg2::Protocol;
    let (m, _) = machine();
    let (tpm, _) = soft_tpm::tpm(&[(HashAlg::Sha256, true), (HashAlg::Sha384, false)], false);
    assert_eq!(with_core(|c| tcg2::install(c, tpm, None, "efi-emulator test")), Ok(true));
    let final_table = with_core(|c| c.config.iter().find(|(g, _)| *g == crate::efi::guids::LINUX_EFI_TPM_FINAL_LOG).map(|(_, t)| *t)).expect("the final-events table installed");
    // SAFETY: see the module comment.
    unsafe {
        let bs = &*(*m.systab).boot_services;
        let mut p: *mut c_void = null_mut();
        assert_eq!((bs.locate_protocol)(&mut tcg2::PROTOCOL_GUID.clone(), null_mut(), &mut p), Status::SUCCESS);
        let t = p as *mut Protocol;
        let proto = &*t;

        let mut cap = [0u8; 40];
        cap[0] = 36;
        assert_eq!((proto.get_capability)(t, cap.as_mut_ptr()), Status::SUCCESS);
        assert_eq!(&cap[..5], &[36, 1, 1, 1, 1], "Size, StructureVersion 1.1, ProtocolVersion 1.1");
        assert_eq!(u32::from_le_bytes(cap[8..12].try_into().unwrap()), 0b110, "HashAlgorithmBitmap: SHA-256, SHA-384");
        assert_eq!(u32::from_le_bytes(cap[12..16].try_into().unwrap()), 2, "SupportedEventLogs: TCG_2");
        assert_eq!(cap[16], 1, "TPMPresentFlag at byte 16");
        assert_eq!(u16::from_le_bytes([cap[18], cap[19]]), 4096, "MaxCommandSize at byte 18");
        assert_eq!(u32::from_le_bytes(cap[28..32].try_into().unwrap()), 2, "NumberOfPcrBanks");
        assert_eq!(u32::from_le_bytes(cap[32..36].try_into().unwrap()), 0b10, "ActivePcrBanks: SHA-256");
        let mut old = [0u8; 28];
        old[0] = 28;
        assert_eq!((proto.get_capability)(t, old.as_mut_ptr()), Status::SUCCESS);
        assert_eq!(&old[..5], &[28, 1, 0, 1, 0], "a 1.0 caller gets the 1.0 structure");
        let mut small = [10u8; 10];
        assert_eq!((proto.get_capability)(t, small.as_mut_ptr()), Status::BUFFER_TOO_SMALL);
        assert_eq!(small[0], 36, "the size it takes");
        assert_eq!((proto.get_capability)(t, null_mut()), Status::INVALID_PARAMETER);

        // EFI_TCG2_EVENT: Size, HeaderSize 14, HeaderVersion 1, PCRIndex, EventType, data.
        let event = |pcr: u32, header_size: u32, version: u16, data: &[u8]| {
            let mut e = Vec::new();
            e.extend_from_slice(&((18 + data.len()) as u32).to_le_bytes());
            e.extend_from_slice(&header_size.to_le_bytes());
            e.extend_from_slice(&version.to_le_bytes());
            e.extend_from_slice(&pcr.to_le_bytes());
            e.extend_from_slice(&0xdu32.to_le_bytes());
            e.extend_from_slice(data);
            e
        };
        let text = b"measured";
        let data = text.as_ptr() as u64;
        let mut good = event(8, 14, 1, b"desc");
        assert_eq!((proto.hash_log_extend_event)(t, 0, data, 8, good.as_mut_ptr()), Status::SUCCESS);
        for mut bad in [event(24, 14, 1, b""), event(8, 12, 1, b""), event(8, 14, 2, b"")] {
            assert_eq!((proto.hash_log_extend_event)(t, 0, data, 8, bad.as_mut_ptr()), Status::INVALID_PARAMETER);
        }
        assert_eq!((proto.hash_log_extend_event)(t, 0, 0, 8, good.as_mut_ptr()), Status::INVALID_PARAMETER, "no data, a length");
        assert_eq!((proto.hash_log_extend_event)(t, crate::efi::tcg2::PE_COFF_IMAGE, data, 8, good.as_mut_ptr()), Status::UNSUPPORTED, "not a PE image");
        let pe = crate::efi::pe::test_image();
        assert_eq!((proto.hash_log_extend_event)(t, crate::efi::tcg2::PE_COFF_IMAGE, pe.as_ptr() as u64, pe.len() as u64, good.as_mut_ptr()), Status::SUCCESS);

        let (mut at, mut last, mut cut) = (0u64, 0u64, 9u8);
        assert_eq!((proto.get_event_log)(t, 1, &mut at, &mut last, &mut cut), Status::INVALID_PARAMETER, "TCG 1.2 format");
        assert_eq!((proto.get_event_log)(t, 2, &mut at, &mut last, &mut cut), Status::SUCCESS);
        assert_eq!(cut, 0);
        let log = core::slice::from_raw_parts(at as *const u8, (last - at) as usize + 200);
        let (_, events) = crate::efi::event_log::parse(log).unwrap();
        assert_eq!(events.last().unwrap().data, b"desc", "the last entry is the PE image's");
        assert_eq!(events.iter().filter(|e| e.pcr == 8).count(), 2);
        // Logged after GetEventLog: in the final-events table too.
        assert_eq!((proto.hash_log_extend_event)(t, 0, data, 8, good.as_mut_ptr()), Status::SUCCESS);
        assert_eq!(*((final_table + 8) as *const u64), 1, "NumberOfEvents");

        let mut banks = 0u32;
        assert_eq!((proto.get_active_pcr_banks)(t, &mut banks), Status::SUCCESS);
        assert_eq!(banks, 0b10);
        assert_eq!((proto.set_active_pcr_banks)(t, 0b10), Status::SUCCESS, "already active");
        assert_eq!((proto.set_active_pcr_banks)(t, 0b1000), Status::INVALID_PARAMETER, "SHA-512: not implemented by this TPM");
        let (mut present, mut response) = (9u32, 9u32);
        assert_eq!((proto.get_result_of_set_active_pcr_banks)(t, &mut present, &mut response), Status::SUCCESS);
        assert_eq!((present, response), (0, 0));
        assert_eq!((proto.submit_command)(t, 0, null_mut(), 10, null_mut()), Status::INVALID_PARAMETER);
    }
}
