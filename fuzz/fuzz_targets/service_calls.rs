//! The boot and runtime service tables, called as a payload calls them, on the simulated machine
//! the host tests use (`efi-emulator`'s `host-machine` feature): each input is a sequence of up
//! to 96 calls with hostile sizes, types, handles, attributes, GUIDs, names, device paths and PE
//! images. Pointers are NULL or point at buffers this target owns: a wild pointer is a payload's
//! own fault under UEFI, which no firmware survives. No call may panic (the emulator's fatal
//! path panics on the host), hang, or break what earlier calls were told.
#![no_main]
use efi_emulator::services::host::{self, machine_with_ram};
use libfuzzer_sys::fuzz_target;
use r_efi::efi::{self, Guid, Status};
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads the input a field at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    /// One of `items`, or (when the choice byte says so) a raw value instead.
    fn pick<T: Copy>(&mut self, items: &[T], raw: impl FnOnce(&mut Self) -> T) -> T {
        let i = self.u8() as usize;
        match items.get(i % (items.len() + 1)) {
            Some(t) => *t,
            None => raw(self),
        }
    }
}

const G1: Guid = Guid::from_fields(0x1111_1111, 0x2222, 0x3333, 0x44, 0x55, &[1, 2, 3, 4, 5, 6]);
const G2: Guid = Guid::from_fields(0x5555_5555, 0x2222, 0x3333, 0x44, 0x55, &[1, 2, 3, 4, 5, 6]);
const GUIDS: [Guid; 8] = [
    G1,
    G2,
    efi::protocols::loaded_image::PROTOCOL_GUID,
    efi::protocols::device_path::PROTOCOL_GUID,
    efi::protocols::driver_binding::PROTOCOL_GUID,
    efi::protocols::simple_file_system::PROTOCOL_GUID,
    efi::GLOBAL_VARIABLE,
    efi::EVENT_GROUP_MEMORY_MAP_CHANGE,
];
const MEMORY_TYPES: [u32; 6] = [efi::LOADER_DATA, efi::LOADER_CODE, efi::BOOT_SERVICES_DATA, efi::RUNTIME_SERVICES_DATA, efi::ACPI_RECLAIM_MEMORY, efi::RESERVED_MEMORY_TYPE];
const EVENT_TYPES: [u32; 6] = [0, efi::EVT_TIMER, efi::EVT_NOTIFY_SIGNAL, efi::EVT_NOTIFY_WAIT, efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, efi::EVT_SIGNAL_EXIT_BOOT_SERVICES];
const ATTRIBUTES: [u32; 7] = [
    efi::OPEN_PROTOCOL_BY_HANDLE_PROTOCOL,
    efi::OPEN_PROTOCOL_GET_PROTOCOL,
    efi::OPEN_PROTOCOL_TEST_PROTOCOL,
    efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER,
    efi::OPEN_PROTOCOL_BY_DRIVER,
    efi::OPEN_PROTOCOL_EXCLUSIVE,
    efi::OPEN_PROTOCOL_BY_DRIVER | efi::OPEN_PROTOCOL_EXCLUSIVE,
];

/// The boot services table, for the notify function.
static BS: AtomicUsize = AtomicUsize::new(0);
static NOTIFIED: AtomicUsize = AtomicUsize::new(0);

/// A notify function that calls back into boot services, as real ones do. (Not CheckEvent on its
/// own event: a NOTIFY_WAIT function doing that queues itself for ever, a payload's own loop
/// that only the watchdog ends; the host tests show that.)
extern "efiapi" fn notify(_: efi::Event, _: *mut c_void) {
    NOTIFIED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the machine's boot services table, alive while the run lasts.
    let bs = unsafe { &*(BS.load(Ordering::Relaxed) as *const efi::BootServices) };
    let mut p = null_mut();
    // SAFETY: valid arguments; a notify function may allocate and free pool.
    unsafe {
        if (bs.allocate_pool)(efi::BOOT_SERVICES_DATA, 24, &mut p) == Status::SUCCESS {
            (bs.free_pool)(p);
        }
    }
}

/// A device path instance: End only.
static END_PATH: [u8; 4] = [0x7f, 0xff, 4, 0];

/// A driver that supports nothing, and one call that starts it counted.
extern "efiapi" fn unsupported(_: *mut efi::protocols::driver_binding::Protocol, _: efi::Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
    Status::UNSUPPORTED
}
extern "efiapi" fn stop(_: *mut efi::protocols::driver_binding::Protocol, _: efi::Handle, _: usize, _: *mut efi::Handle) -> Status {
    Status::SUCCESS
}
struct Driver(efi::protocols::driver_binding::Protocol);
// SAFETY: never written; its NULL handles are plain values.
unsafe impl Sync for Driver {}
static DRIVER: Driver =
    Driver(efi::protocols::driver_binding::Protocol { supported: unsupported, start: unsupported, stop, version: 1, image_handle: null_mut(), driver_binding_handle: null_mut() });

/// `bytes` as a device path the services may read: zeros follow it for longer than any node
/// can jump, so a damaged path ends inside the buffer.
fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(bytes.len() + 0x1_0004, 0);
    v
}

fuzz_target!(|data: &[u8]| {
    // 2 MiB of RAM: room for what a sequence allocates, and runs out for who asks more.
    let (m, kernel) = machine_with_ram(2 << 20);
    let (bs, rt) = (m.bs(), m.rt());
    BS.store(bs as *const efi::BootServices as usize, Ordering::Relaxed);
    let mut input = Input(data);
    let mut pages: Vec<(u64, usize)> = Vec::new();
    let mut pools: Vec<*mut c_void> = Vec::new();
    let mut events: Vec<efi::Event> = Vec::new();
    let mut handles: Vec<efi::Handle> = vec![kernel as efi::Handle];
    let mut exited = false;
    // SAFETY: every call passes NULL or pointers to locals and vectors of this run, with the
    // sizes they have; the values are hostile, the memory is not.
    unsafe {
        for _ in 0..96 {
            if input.0.is_empty() {
                break;
            }
            let op = input.u8();
            let handle = input.pick(&handles, |i| i.u64() as efi::Handle);
            let mut guid = GUIDS[input.u8() as usize % GUIDS.len()];
            match op % 30 {
                0 => {
                    let how = input.u8() as u32 % 4;
                    let ty = input.pick(&MEMORY_TYPES, |i| i.u32());
                    let n = input.u16() as usize;
                    let mut at = input.u64();
                    if (bs.allocate_pages)(how, ty, n, &mut at) == Status::SUCCESS {
                        assert_eq!(at % 4096, 0);
                        pages.push((at, n));
                    }
                }
                1 => {
                    let (at, n) = input.pick(&pages, |i| (i.u64(), i.u8() as usize));
                    if (bs.free_pages)(at, n) == Status::SUCCESS {
                        pages.retain(|p| p.0 != at);
                    }
                }
                2 => {
                    let ty = input.pick(&MEMORY_TYPES, |i| i.u32());
                    let mut p = null_mut();
                    if (bs.allocate_pool)(ty, input.u32() as usize % (8 << 20), &mut p) == Status::SUCCESS {
                        pools.push(p);
                    }
                }
                3 => {
                    let p = input.pick(&pools, |i| if i.u8() % 2 == 0 { null_mut() } else { pools_or_null(&pools).wrapping_byte_add(8) });
                    if (bs.free_pool)(p) == Status::SUCCESS {
                        pools.retain(|q| *q != p);
                    }
                }
                4 => {
                    let mut buf = vec![0u8; input.u16() as usize];
                    let (mut size, mut key, mut dsize, mut ver) = (buf.len(), 0usize, 0usize, 0u32);
                    let key_ptr: *mut usize = if input.u8() % 4 == 0 { null_mut() } else { &mut key };
                    let map = if input.u8() % 4 == 0 { null_mut() } else { buf.as_mut_ptr().cast() };
                    let s = (bs.get_memory_map)(&mut size, map, key_ptr, &mut dsize, &mut ver);
                    if s == Status::SUCCESS {
                        assert!(size <= buf.len());
                        if input.u8() % 8 == 0 && (bs.exit_boot_services)(kernel as efi::Handle, key) == Status::SUCCESS {
                            exited = true;
                        }
                    }
                }
                5 => {
                    let ty = input.pick(&EVENT_TYPES, |i| i.u32());
                    let tpl = input.u8() as usize % 40;
                    let f = if input.u8() % 4 == 0 { None } else { Some(notify as efi::EventNotify) };
                    let mut e = null_mut();
                    let s = if input.u8() % 2 == 0 {
                        (bs.create_event)(ty, tpl, f, null_mut(), &mut e)
                    } else {
                        (bs.create_event_ex)(ty, tpl, f, null(), &guid, &mut e)
                    };
                    if s == Status::SUCCESS {
                        events.push(e);
                    }
                }
                6 => {
                    let e = input.pick(&events, |i| i.u64() as efi::Event);
                    if (bs.close_event)(e) == Status::SUCCESS {
                        events.retain(|x| *x != e);
                    }
                }
                7 => {
                    let e = input.pick(&events, |i| i.u64() as efi::Event);
                    match input.u8() % 3 {
                        0 => drop((bs.signal_event)(e)),
                        1 => drop((bs.check_event)(e)),
                        _ => drop((bs.set_timer)(e, input.u32() % 4, u64::from(input.u16()))),
                    }
                }
                8 => {
                    let old = (bs.raise_tpl)(input.u8() as usize % 40);
                    (bs.restore_tpl)(old);
                }
                9 => {
                    let mut h = if input.u8() % 2 == 0 { null_mut() } else { handle };
                    // The protocols the emulator reads get real instances; the others any value.
                    let interface = match guid {
                        g if g == efi::protocols::device_path::PROTOCOL_GUID => END_PATH.as_ptr() as *mut c_void,
                        g if g == efi::protocols::driver_binding::PROTOCOL_GUID => (&raw const DRIVER.0).cast_mut().cast(),
                        g if g == efi::protocols::loaded_image::PROTOCOL_GUID || g == efi::protocols::simple_file_system::PROTOCOL_GUID => {
                            guid = G2;
                            input.u64() as *mut c_void
                        }
                        _ => input.u64() as *mut c_void,
                    };
                    if (bs.install_protocol_interface)(&mut h, &mut guid, input.u32() % 2, interface) == Status::SUCCESS && !handles.contains(&h) {
                        handles.push(h);
                    }
                }
                10 => {
                    let iface = if input.u8() % 2 == 0 { input.u64() } else { 0 };
                    let _ = (bs.uninstall_protocol_interface)(handle, &mut guid, iface as *mut c_void);
                }
                11 => {
                    let agent = input.pick(&handles, |i| i.u64() as efi::Handle);
                    let controller = input.pick(&handles, |_| null_mut());
                    let attributes = input.pick(&ATTRIBUTES, |i| i.u32());
                    let mut i = null_mut();
                    let _ = (bs.open_protocol)(handle, &mut guid, &mut i, agent, controller, attributes);
                }
                12 => {
                    let agent = input.pick(&handles, |i| i.u64() as efi::Handle);
                    let controller = input.pick(&handles, |_| null_mut());
                    let _ = (bs.close_protocol)(handle, &mut guid, agent, controller);
                }
                13 => {
                    let (mut n, mut buf) = (0usize, null_mut());
                    if (bs.locate_handle_buffer)(input.u32() % 4, &mut guid, null_mut(), &mut n, &mut buf) == Status::SUCCESS {
                        assert!(n > 0);
                        (bs.free_pool)(buf.cast());
                    }
                    let mut size = input.u16() as usize;
                    let mut out = vec![null_mut::<c_void>(); size / 8 + 1];
                    let _ = (bs.locate_handle)(input.u32() % 4, &mut guid, null_mut(), &mut size, out.as_mut_ptr());
                }
                14 => {
                    let (mut list, mut n) = (null_mut(), 0usize);
                    if (bs.protocols_per_handle)(handle, &mut list, &mut n) == Status::SUCCESS {
                        (bs.free_pool)(list.cast());
                    }
                    let mut info = null_mut();
                    if (bs.open_protocol_information)(handle, &mut guid, &mut info, &mut n) == Status::SUCCESS {
                        (bs.free_pool)(info.cast());
                    }
                }
                15 => drop((bs.install_configuration_table)(&mut guid, input.u64() as *mut c_void)),
                16 | 17 | 18 => {
                    let len = input.u8() as usize % 40;
                    let mut name: Vec<u16> = (0..len).map(|_| input.u16() % 0x80 + 1).collect();
                    name.push(0);
                    let attributes = input.pick(&[0u32, 3, 7, 0x27, 0x47], |i| i.u32());
                    let mut value = input.bytes(input.0.first().copied().unwrap_or(0) as usize % 300).to_vec();
                    match op % 30 {
                        16 => drop((rt.set_variable)(name.as_mut_ptr(), &mut guid, attributes, value.len(), value.as_mut_ptr().cast())),
                        17 => {
                            let (mut a, mut size) = (0u32, input.u16() as usize % 1024);
                            let mut out = vec![0u8; size];
                            let _ = (rt.get_variable)(name.as_mut_ptr(), &mut guid, &mut a, &mut size, out.as_mut_ptr().cast());
                        }
                        _ => {
                            let mut buf = vec![0u16; 64];
                            let mut size = input.u8() as usize % 129;
                            buf[..name.len().min(64)].copy_from_slice(&name[..name.len().min(64)]);
                            let _ = (rt.get_next_variable_name)(&mut size, buf.as_mut_ptr(), &mut guid);
                        }
                    }
                }
                19 => {
                    let (mut a, mut b, mut c) = (0u64, 0u64, 0u64);
                    let _ = (rt.query_variable_info)(input.u32(), &mut a, &mut b, &mut c);
                }
                20 => {
                    let bytes = input.bytes(64).to_vec();
                    let mut crc = 0u32;
                    let _ = (bs.calculate_crc32)(bytes.as_ptr() as *mut c_void, bytes.len(), &mut crc);
                }
                21 => drop((bs.stall)(input.u8() as usize)),
                22 => {
                    let other = input.pick(&handles, |_| null_mut());
                    if input.u8() % 2 == 0 {
                        let mut list = [other, null_mut()];
                        let _ = (bs.connect_controller)(handle, list.as_mut_ptr(), null_mut(), efi::Boolean::TRUE);
                    } else {
                        let _ = (bs.disconnect_controller)(handle, other, null_mut());
                    }
                }
                23 => {
                    let mut n = 0u64;
                    let _ = (bs.get_next_monotonic_count)(&mut n);
                    let _ = (bs.set_watchdog_timer)(0, u64::from(input.u32()), 0, null_mut());
                }
                24 | 25 => {
                    let len = input.u8() as usize;
                    let path = padded(input.bytes(len));
                    if op % 30 == 24 {
                        let mut p = path.as_ptr() as *mut efi::protocols::device_path::Protocol;
                        let mut dev = null_mut();
                        let _ = (bs.locate_device_path)(&mut guid, &mut p, &mut dev);
                    } else {
                        let mut h = null_mut();
                        if (bs.load_image)(efi::Boolean::FALSE, handle, path.as_ptr() as *mut _, null_mut(), 0, &mut h) == Status::SUCCESS {
                            let _ = (bs.unload_image)(h);
                        }
                    }
                }
                26 => {
                    // A PE image from the input, loaded and unloaded (never started: its entry
                    // point would be host code).
                    let len = input.u16() as usize;
                    let image = input.bytes(len).to_vec();
                    let mut h = null_mut();
                    if (bs.load_image)(efi::Boolean::FALSE, handle, null_mut(), image.as_ptr() as *mut c_void, image.len(), &mut h) == Status::SUCCESS {
                        handles.push(h);
                        if input.u8() % 2 == 0 && (bs.unload_image)(h) == Status::SUCCESS {
                            handles.retain(|x| *x != h);
                        }
                    }
                }
                27 => {
                    // Runtime: SetVirtualAddressMap with descriptors from the input.
                    let n = input.u8() as usize % 8;
                    let mut map: Vec<efi::MemoryDescriptor> = (0..n)
                        .map(|_| efi::MemoryDescriptor { r#type: input.u32(), physical_start: input.u64(), virtual_start: input.u64(), number_of_pages: u64::from(input.u16()), attribute: input.u64() })
                        .collect();
                    let size = map.len() * size_of::<efi::MemoryDescriptor>();
                    let _ = (rt.set_virtual_address_map)(size, size_of::<efi::MemoryDescriptor>(), 1, map.as_mut_ptr());
                    let mut p = input.u64() as *mut c_void;
                    let _ = (rt.convert_pointer)(input.u8() as usize % 2, &mut p);
                }
                28 => host::state(|s| s.heap_free = Some(u64::from(input.u32()))),
                _ => {
                    let mut t = std::mem::zeroed::<efi::Time>();
                    let _ = (rt.get_time)(&mut t, null_mut());
                    let mut count = 0u32;
                    let _ = (rt.get_next_high_mono_count)(&mut count);
                }
            }
            if exited {
                let mut p = null_mut();
                assert_eq!((bs.allocate_pool)(efi::LOADER_DATA, 8, &mut p), Status::UNSUPPORTED, "boot services end at ExitBootServices");
            }
        }
    }
    drop(m);
});

/// A pointer that is not one AllocatePool gave (8 bytes into the first pool block, or NULL).
fn pools_or_null(pools: &[*mut c_void]) -> *mut c_void {
    pools.first().copied().unwrap_or(null_mut())
}
