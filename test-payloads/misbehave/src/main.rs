//! A misbehaving payload: calls boot and runtime services with bad arguments, checks each
//! returned status against the UEFI specification (one line per check, then
//! `misbehave: N passed, N failed`), calls ExitBootServices with a stale key and then a good one,
//! tries boot services afterwards, and finally faults on purpose so the emulator's dump can be
//! checked to name this image and the offset.
#![cfg_attr(target_os = "uefi", no_std)]
#![cfg_attr(target_os = "uefi", no_main)]

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("misbehave is a UEFI application: cargo xtask builds it for aarch64-unknown-uefi");
}

#[cfg(target_os = "uefi")]
#[macro_use]
#[path = "../../common/console.rs"]
mod console;

#[cfg(target_os = "uefi")]
mod app {
    use core::ffi::c_void;
    use core::ptr::{null, null_mut};
    use r_efi::efi::{self, Guid, Handle, Status};

    use crate::console::{print, CON_OUT};

    struct Tally {
        passed: u32,
        failed: u32,
    }
    impl Tally {
        fn check(&mut self, name: &str, got: Status, want: Status) {
            if got == want {
                self.passed += 1;
                say!("misbehave: ok   {name}: {:#x}", got.as_usize());
            } else {
                self.failed += 1;
                say!("misbehave: FAIL {name}: got {:#x}, want {:#x}", got.as_usize(), want.as_usize());
            }
        }
    }

    const UNKNOWN: Guid = Guid::from_fields(0x0bad_0bad, 0x1234, 0x5678, 0x9a, 0xbc, &[1, 2, 3, 4, 5, 6]);
    const LOADED_IMAGE: Guid = efi::protocols::loaded_image::PROTOCOL_GUID;

    unsafe extern "efiapi" fn notify(_e: efi::Event, _c: *mut c_void) {}

    /// Notifications counted, by the notify function below.
    static NOTIFIED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    unsafe extern "efiapi" fn count(_e: efi::Event, _c: *mut c_void) {
        NOTIFIED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// The tables, for the driver and the address-change notify functions below.
    static BS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    static RT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    const DRIVEN: Guid = Guid::from_fields(0x0bad_0bad, 0x1234, 0x5678, 0x9a, 0xbc, &[7, 7, 7, 7, 7, 7]);

    unsafe fn bs() -> &'static efi::BootServices {
        // SAFETY: stored at entry; boot services outlive every call of the driver below.
        unsafe { &*(BS.load(core::sync::atomic::Ordering::Relaxed) as *const efi::BootServices) }
    }

    /// A driver for DRIVEN controllers: Start opens it BY_DRIVER, Stop closes it; each counts.
    static STARTS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    static STOPS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    unsafe extern "efiapi" fn drv_supported(this: *mut efi::protocols::driver_binding::Protocol, controller: Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        let mut i = null_mut();
        // SAFETY: our binding; the test protocol on the controller.
        unsafe { ((bs()).open_protocol)(controller, &DRIVEN as *const Guid as *mut Guid, &mut i, (*this).driver_binding_handle, controller, efi::OPEN_PROTOCOL_TEST_PROTOCOL) }
    }
    unsafe extern "efiapi" fn drv_start(this: *mut efi::protocols::driver_binding::Protocol, controller: Handle, _: *mut efi::protocols::device_path::Protocol) -> Status {
        STARTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let mut i = null_mut();
        // SAFETY: as above.
        unsafe { ((bs()).open_protocol)(controller, &DRIVEN as *const Guid as *mut Guid, &mut i, (*this).driver_binding_handle, controller, efi::OPEN_PROTOCOL_BY_DRIVER) }
    }
    unsafe extern "efiapi" fn drv_stop(this: *mut efi::protocols::driver_binding::Protocol, controller: Handle, _: usize, _: *mut Handle) -> Status {
        STOPS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { ((bs()).close_protocol)(controller, &DRIVEN as *const Guid as *mut Guid, (*this).driver_binding_handle, controller) }
    }

    /// What the VIRTUAL_ADDRESS_CHANGE notify function saw: calls, ConvertPointer's status and result.
    static VA_CALLS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    static VA_STATUS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(usize::MAX);
    static VA_POINTER: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    unsafe extern "efiapi" fn address_change(_e: efi::Event, _c: *mut c_void) {
        use core::sync::atomic::Ordering::Relaxed;
        VA_CALLS.fetch_add(1, Relaxed);
        let rt = RT.load(Relaxed) as *const efi::RuntimeServices;
        let mut p = rt as *mut c_void;
        // SAFETY: the runtime services table, converted as a runtime driver converts its pointers.
        VA_STATUS.store(unsafe { ((*rt).convert_pointer)(0, &mut p) }.as_usize(), Relaxed);
        VA_POINTER.store(p as usize, Relaxed);
    }

    /// EFI_SERIAL_IO_PROTOCOL, as much of it as the checks use.
    const SERIAL_IO: Guid = Guid::from_fields(0xbb25cf6f, 0xf1d4, 0x11d2, 0x9a, 0x0c, &[0x00, 0x90, 0x27, 0x3f, 0xc1, 0xfd]);
    #[repr(C)]
    struct SerialIo {
        revision: u32,
        reset: usize,
        set_attributes: unsafe extern "efiapi" fn(*mut SerialIo, u64, u32, u32, u32, u8, u32) -> Status,
        set_control: usize,
        get_control: usize,
        write: usize,
        read: unsafe extern "efiapi" fn(*mut SerialIo, *mut usize, *mut c_void) -> Status,
        mode: *mut c_void,
    }

    /// The counter and its frequency (for the SerialIo wait).
    fn counter() -> (u64, u64) {
        let (now, freq): (u64, u64);
        // SAFETY: reads of the architected counter, allowed at EL1 and EL2.
        unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) now, out(reg) freq) };
        (now, freq)
    }

    fn ucs2<const N: usize>(s: &str) -> [u16; N] {
        let mut out = [0u16; N];
        for (o, u) in out.iter_mut().zip(s.encode_utf16()) {
            *o = u;
        }
        out
    }

    fn notified() -> Status {
        Status::from_usize(NOTIFIED.load(core::sync::atomic::Ordering::Relaxed))
    }

    #[unsafe(no_mangle)]
    extern "efiapi" fn efi_main(image: Handle, st: *mut efi::SystemTable) -> Status {
        // SAFETY: the firmware passes a valid system table; every call below follows the
        // services' signatures, only with deliberately bad values.
        unsafe {
            CON_OUT = (*st).con_out;
            let bs = &*(*st).boot_services;
            let rt = &*(*st).runtime_services;
            BS.store(bs as *const efi::BootServices as usize, core::sync::atomic::Ordering::Relaxed);
            RT.store(rt as *const efi::RuntimeServices as usize, core::sync::atomic::Ordering::Relaxed);
            let mut t = Tally { passed: 0, failed: 0 };
            say!("misbehave: starting, image handle {:#x}", image as usize);

            // LoadOptions "exit": leave through Exit with ExitData, from deep in the stack, to
            // check that Exit unwinds to StartImage and the data arrives.
            let mut li: *mut c_void = null_mut();
            (bs.handle_protocol)(image, &LOADED_IMAGE as *const Guid as *mut Guid, &mut li);
            let li = li as *mut efi::protocols::loaded_image::Protocol;
            let opts = (*li).load_options as *const u16;
            if !opts.is_null() && (*li).load_options_size >= 8 && *opts == b'e' as u16 && *opts.add(1) == b'x' as u16 {
                let text = "misbehave exit data";
                let mut data: *mut c_void = null_mut();
                (bs.allocate_pool)(efi::BOOT_SERVICES_DATA, (text.len() + 1) * 2, &mut data);
                let d = data as *mut u16;
                for (i, u) in text.encode_utf16().chain(core::iter::once(0)).enumerate() {
                    *d.add(i) = u;
                }
                say!("misbehave: calling Exit with EFI_ABORTED");
                (bs.exit)(image, Status::ABORTED, (text.len() + 1) * 2, d);
                say!("misbehave: FAIL Exit returned");
                return Status::LOAD_ERROR;
            }

            // Pages.
            t.check("AllocatePages with a NULL address pointer", (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 1, null_mut()), Status::INVALID_PARAMETER);
            let mut addr: u64 = 0x4000_1001;
            t.check("AllocatePages at an unaligned address", (bs.allocate_pages)(efi::ALLOCATE_ADDRESS, efi::LOADER_DATA, 1, &mut addr), Status::INVALID_PARAMETER);
            let mut bad_type: u64 = 0;
            t.check("AllocatePages of an invalid memory type", (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, 0x20, 1, &mut bad_type), Status::INVALID_PARAMETER);
            let mut mine: u64 = 0;
            t.check("AllocatePages anywhere", (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 2, &mut mine), Status::SUCCESS);
            let mut again = mine;
            t.check("AllocatePages at an address already allocated", (bs.allocate_pages)(efi::ALLOCATE_ADDRESS, efi::LOADER_DATA, 1, &mut again), Status::NOT_FOUND);
            let mut low: u64 = 0xfff;
            t.check("AllocatePages below a maximum nothing fits under", (bs.allocate_pages)(efi::ALLOCATE_MAX_ADDRESS, efi::LOADER_DATA, 1, &mut low), Status::NOT_FOUND);
            t.check("FreePages of memory never allocated", (bs.free_pages)(0x4000_0000, 1), Status::NOT_FOUND);
            t.check("FreePages at an unaligned address", (bs.free_pages)(mine + 8, 1), Status::INVALID_PARAMETER);
            t.check("FreePages of a sub-range", (bs.free_pages)(mine + 4096, 1), Status::SUCCESS);
            t.check("FreePages of the same range twice", (bs.free_pages)(mine + 4096, 1), Status::NOT_FOUND);
            t.check("FreePages of the rest", (bs.free_pages)(mine, 1), Status::SUCCESS);

            // Pool.
            t.check("AllocatePool with a NULL buffer pointer", (bs.allocate_pool)(efi::LOADER_DATA, 16, null_mut()), Status::INVALID_PARAMETER);
            let mut p: *mut c_void = null_mut();
            t.check("AllocatePool of an invalid memory type", (bs.allocate_pool)(0x20, 16, &mut p), Status::INVALID_PARAMETER);
            t.check("AllocatePool", (bs.allocate_pool)(efi::LOADER_DATA, 100, &mut p), Status::SUCCESS);
            t.check("FreePool", (bs.free_pool)(p), Status::SUCCESS);
            t.check("FreePool twice (double free)", (bs.free_pool)(p), Status::INVALID_PARAMETER);
            t.check("FreePool of NULL", (bs.free_pool)(null_mut()), Status::INVALID_PARAMETER);
            t.check("FreePool of a pointer never allocated", (bs.free_pool)(st as *mut c_void), Status::INVALID_PARAMETER);

            // Memory map.
            t.check("GetMemoryMap with a NULL size", (bs.get_memory_map)(null_mut(), null_mut(), null_mut(), null_mut(), null_mut()), Status::INVALID_PARAMETER);
            let (mut size, mut key, mut dsize, mut dver) = (0usize, 0usize, 0usize, 0u32);
            t.check("GetMemoryMap size probe", (bs.get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut dver), Status::BUFFER_TOO_SMALL);
            let needed = size;
            let mut small = needed - dsize;
            let mut buf = [0u8; 16384];
            t.check(
                "GetMemoryMap one descriptor short",
                (bs.get_memory_map)(&mut small, buf.as_mut_ptr() as *mut efi::MemoryDescriptor, &mut key, &mut dsize, &mut dver),
                Status::BUFFER_TOO_SMALL,
            );

            // Handles and protocols.
            let mut iface: *mut c_void = null_mut();
            t.check(
                "HandleProtocol on an unknown handle",
                (bs.handle_protocol)(0x1234 as Handle, &LOADED_IMAGE as *const Guid as *mut Guid, &mut iface),
                Status::INVALID_PARAMETER,
            );
            t.check("HandleProtocol for an unknown GUID", (bs.handle_protocol)(image, &UNKNOWN as *const Guid as *mut Guid, &mut iface), Status::UNSUPPORTED);
            t.check("HandleProtocol with a NULL interface pointer", (bs.handle_protocol)(image, &LOADED_IMAGE as *const Guid as *mut Guid, null_mut()), Status::INVALID_PARAMETER);
            t.check("HandleProtocol with a NULL GUID", (bs.handle_protocol)(image, null_mut(), &mut iface), Status::INVALID_PARAMETER);
            t.check("LocateProtocol of an unknown GUID", (bs.locate_protocol)(&UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut iface), Status::NOT_FOUND);
            let mut hsize = 0usize;
            t.check(
                "LocateHandle by an unknown protocol",
                (bs.locate_handle)(efi::BY_PROTOCOL, &UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut hsize, null_mut()),
                Status::NOT_FOUND,
            );
            t.check(
                "LocateHandle size probe",
                (bs.locate_handle)(efi::BY_PROTOCOL, &LOADED_IMAGE as *const Guid as *mut Guid, null_mut(), &mut hsize, null_mut()),
                Status::BUFFER_TOO_SMALL,
            );
            let mut dp = [0x7fu8, 0xff, 4, 0];
            let mut dpp = dp.as_mut_ptr() as *mut efi::protocols::device_path::Protocol;
            let mut dev: Handle = null_mut();
            t.check("LocateDevicePath for an unknown protocol", (bs.locate_device_path)(&UNKNOWN as *const Guid as *mut Guid, &mut dpp, &mut dev), Status::NOT_FOUND);
            t.check("OpenProtocol of an unknown GUID", (bs.open_protocol)(image, &UNKNOWN as *const Guid as *mut Guid, &mut iface, image, null_mut(), 0x02), Status::UNSUPPORTED);
            t.check(
                "UninstallProtocolInterface of a protocol never installed",
                (bs.uninstall_protocol_interface)(image, &UNKNOWN as *const Guid as *mut Guid, null_mut()),
                Status::NOT_FOUND,
            );

            // Configuration tables.
            t.check("InstallConfigurationTable delete of a missing table", (bs.install_configuration_table)(&UNKNOWN as *const Guid as *mut Guid, null_mut()), Status::NOT_FOUND);
            t.check("InstallConfigurationTable with a NULL GUID", (bs.install_configuration_table)(null_mut(), 0x1000 as *mut c_void), Status::INVALID_PARAMETER);

            // Events.
            let mut ev: efi::Event = null_mut();
            t.check(
                "CreateEvent NOTIFY_SIGNAL without a function",
                (bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, None, null_mut(), &mut ev),
                Status::INVALID_PARAMETER,
            );
            t.check("CloseEvent of an unknown event", (bs.close_event)(0x5678 as efi::Event), Status::INVALID_PARAMETER);
            t.check("CreateEvent NOTIFY_SIGNAL", (bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(notify), null_mut(), &mut ev), Status::SUCCESS);
            t.check("CheckEvent on a NOTIFY_SIGNAL event", (bs.check_event)(ev), Status::INVALID_PARAMETER);
            t.check("SetTimer on an event that is not a timer", (bs.set_timer)(ev, efi::TIMER_RELATIVE, 10), Status::INVALID_PARAMETER);
            t.check("CloseEvent", (bs.close_event)(ev), Status::SUCCESS);
            // A plain timer event: WaitForEvent waits for it (it has no notify function to ask).
            let mut timer: efi::Event = null_mut();
            t.check("CreateEvent TIMER", (bs.create_event)(efi::EVT_TIMER, efi::TPL_CALLBACK, None, null_mut(), &mut timer), Status::SUCCESS);
            (bs.set_timer)(timer, efi::TIMER_RELATIVE, 10_000);
            let mut which = 99usize;
            let mut list = [timer];
            t.check("WaitForEvent on a 1 ms timer", (bs.wait_for_event)(1, list.as_mut_ptr(), &mut which), Status::SUCCESS);
            (bs.close_event)(timer);

            // Notifications (the counts travel as statuses so that Tally prints them).
            t.check(
                "CreateEvent with NotifyTpl TPL_APPLICATION",
                (bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_APPLICATION, Some(count), null_mut(), &mut ev),
                Status::INVALID_PARAMETER,
            );
            (bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count), null_mut(), &mut ev);
            (bs.signal_event)(ev);
            (bs.signal_event)(ev);
            t.check("SignalEvent twice notifies twice", notified(), Status::from_usize(2));
            (bs.raise_tpl)(efi::TPL_NOTIFY);
            (bs.signal_event)(ev);
            t.check("SignalEvent at TPL_NOTIFY waits", notified(), Status::from_usize(2));
            (bs.restore_tpl)(efi::TPL_APPLICATION);
            t.check("RestoreTPL runs the notification", notified(), Status::from_usize(3));
            let mut list = [ev];
            t.check("WaitForEvent on a NOTIFY_SIGNAL event", (bs.wait_for_event)(1, list.as_mut_ptr(), &mut which), Status::INVALID_PARAMETER);
            t.check("WaitForEvent names the refused event in Index", Status::from_usize(which), Status::from_usize(0));
            (bs.close_event)(ev);
            (bs.create_event)(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count), null_mut(), &mut timer);
            (bs.set_timer)(timer, efi::TIMER_PERIODIC, 2_000); // 200 us
            for _ in 0..4 {
                (bs.stall)(1_000);
            }
            (bs.close_event)(timer);
            let periodic = NOTIFIED.load(core::sync::atomic::Ordering::Relaxed) - 3;
            t.check("a periodic timer notifies every period", Status::from_usize((periodic >= 4) as usize), Status::from_usize(1));

            // Idling with `wfi`, calling no service (as iPXE does): the tick interrupt wakes
            // the CPU and the timer's notifications run. Without a tick, wfi never returns.
            let daif = || {
                let v: u64;
                // Reads PSTATE.DAIF (inside the payload's unsafe block).
                core::arch::asm!("mrs {}, daif", out(reg) v);
                v
            };
            t.check("IRQs unmasked at TPL_APPLICATION", Status::from_usize((daif() >> 7 & 1) as usize), Status::from_usize(0));
            let old = (bs.raise_tpl)(efi::TPL_HIGH_LEVEL);
            t.check("RaiseTPL(TPL_HIGH_LEVEL) masks IRQs", Status::from_usize((daif() >> 7 & 1) as usize), Status::from_usize(1));
            (bs.restore_tpl)(old);
            (bs.create_event)(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count), null_mut(), &mut timer);
            let before = NOTIFIED.load(core::sync::atomic::Ordering::Relaxed);
            (bs.set_timer)(timer, efi::TIMER_PERIODIC, 100_000); // 10 ms
            let mut wakeups = 0usize;
            while NOTIFIED.load(core::sync::atomic::Ordering::Relaxed) - before < 3 && wakeups < 10_000 {
                // Waits for an interrupt; no memory effects (inside the payload's unsafe block).
                core::arch::asm!("wfi");
                wakeups += 1;
            }
            (bs.close_event)(timer);
            t.check(
                "a periodic timer notifies while the payload idles in wfi",
                Status::from_usize((NOTIFIED.load(core::sync::atomic::Ordering::Relaxed) - before >= 3) as usize),
                Status::from_usize(1),
            );

            // RegisterProtocolNotify fires when the protocol is installed.
            let mut reg: *mut c_void = null_mut();
            (bs.create_event)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count), null_mut(), &mut ev);
            t.check("RegisterProtocolNotify", (bs.register_protocol_notify)(&UNKNOWN as *const Guid as *mut Guid, ev, &mut reg), Status::SUCCESS);
            let before = NOTIFIED.load(core::sync::atomic::Ordering::Relaxed);
            let mut h: Handle = null_mut();
            (bs.install_protocol_interface)(&mut h, &UNKNOWN as *const Guid as *mut Guid, efi::NATIVE_INTERFACE, 0x1234 as *mut c_void);
            t.check("the registration's event fired", Status::from_usize(NOTIFIED.load(core::sync::atomic::Ordering::Relaxed) - before), Status::from_usize(1));
            let mut found: *mut c_void = null_mut();
            t.check("LocateProtocol with the registration", (bs.locate_protocol)(&UNKNOWN as *const Guid as *mut Guid, reg, &mut found), Status::SUCCESS);
            (bs.uninstall_protocol_interface)(h, &UNKNOWN as *const Guid as *mut Guid, 0x1234 as *mut c_void);
            (bs.close_event)(ev);

            // Memory attributes: clearing RP (never set here) succeeds, as shim needs.
            let ma_guid = efi::protocols::memory_attribute::PROTOCOL_GUID;
            let mut ma: *mut c_void = null_mut();
            if (bs.locate_protocol)(&ma_guid as *const Guid as *mut Guid, null_mut(), &mut ma) == Status::SUCCESS {
                let ma = ma as *mut efi::protocols::memory_attribute::Protocol;
                let mut page = 0u64;
                (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_CODE, 1, &mut page);
                t.check("ClearMemoryAttributes RP|XP", ((*ma).clear_memory_attributes)(ma, page, 4096, efi::MEMORY_RP | efi::MEMORY_XP), Status::SUCCESS);
                t.check("SetMemoryAttributes RP", ((*ma).set_memory_attributes)(ma, page, 4096, efi::MEMORY_RP), Status::UNSUPPORTED);
                (bs.free_pages)(page, 1);
            }

            // Memory types EDK2 allocates, and one it does not.
            let mut page = 0u64;
            t.check("AllocatePages EfiReservedMemoryType", (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::RESERVED_MEMORY_TYPE, 1, &mut page), Status::SUCCESS);
            t.check("FreePages of it", (bs.free_pages)(page, 1), Status::SUCCESS);
            t.check("AllocatePages EfiPersistentMemory", (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::PERSISTENT_MEMORY, 1, &mut page), Status::INVALID_PARAMETER);

            // Variables.
            let mut name = [b'N' as u16, b'o' as u16, 0];
            let mut vsize = 0usize;
            t.check(
                "GetVariable of a missing variable",
                (rt.get_variable)(name.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut vsize, null_mut()),
                Status::NOT_FOUND,
            );
            let mut data = [1u8];
            t.check(
                "SetVariable runtime access without boot-services access",
                (rt.set_variable)(name.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, efi::VARIABLE_RUNTIME_ACCESS, 1, data.as_mut_ptr() as *mut c_void),
                Status::INVALID_PARAMETER,
            );
            t.check(
                "SetVariable",
                (rt.set_variable)(name.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, efi::VARIABLE_BOOTSERVICE_ACCESS, 1, data.as_mut_ptr() as *mut c_void),
                Status::SUCCESS,
            );
            vsize = 0;
            t.check(
                "GetVariable size probe with NULL data",
                (rt.get_variable)(name.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut vsize, null_mut()),
                Status::BUFFER_TOO_SMALL,
            );
            let mut kept = [b'K' as u16, 0];
            let bs_rt = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;
            t.check(
                "SetVariable with runtime access",
                (rt.set_variable)(kept.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, bs_rt, 1, data.as_mut_ptr() as *mut c_void),
                Status::SUCCESS,
            );
            let global = efi::GLOBAL_VARIABLE;
            let mut secure_boot = [0u16; 11];
            for (i, u) in "SecureBoot".encode_utf16().enumerate() {
                secure_boot[i] = u;
            }
            let mut sb = [9u8];
            vsize = 1;
            t.check(
                "GetVariable SecureBoot",
                (rt.get_variable)(secure_boot.as_mut_ptr(), &global as *const Guid as *mut Guid, null_mut(), &mut vsize, sb.as_mut_ptr() as *mut c_void),
                Status::SUCCESS,
            );
            t.check("SecureBoot is 0", Status::from_usize(sb[0] as usize), Status::from_usize(0));
            sb[0] = 1;
            t.check(
                "SetVariable SecureBoot",
                (rt.set_variable)(secure_boot.as_mut_ptr(), &global as *const Guid as *mut Guid, bs_rt, 1, sb.as_mut_ptr() as *mut c_void),
                Status::WRITE_PROTECTED,
            );

            // The spec's edges a payload sees (issue 23).
            use core::sync::atomic::Ordering::Relaxed;
            let mut group = efi::EVENT_GROUP_MEMORY_MAP_CHANGE;
            let mut mmc: efi::Event = null_mut();
            (bs.create_event_ex)(efi::EVT_NOTIFY_SIGNAL, efi::TPL_CALLBACK, Some(count), null(), &mut group, &mut mmc);
            let before = NOTIFIED.load(Relaxed);
            let mut page = 0u64;
            (bs.allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, 1, &mut page);
            t.check("MEMORY_MAP_CHANGE notified by AllocatePages", Status::from_usize(NOTIFIED.load(Relaxed) - before), Status::from_usize(1));
            (bs.free_pages)(page, 1);
            (bs.close_event)(mmc);
            let mut size = buf.len();
            t.check(
                "GetMemoryMap with a NULL MapKey",
                (bs.get_memory_map)(&mut size, buf.as_mut_ptr() as *mut efi::MemoryDescriptor, null_mut(), &mut dsize, &mut dver),
                Status::SUCCESS,
            );
            let mut attributes = 0u32;
            vsize = 0;
            t.check(
                "GetVariable size probe",
                (rt.get_variable)(kept.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, &mut attributes, &mut vsize, null_mut()),
                Status::BUFFER_TOO_SMALL,
            );
            t.check("GetVariable says the attributes with EFI_BUFFER_TOO_SMALL", Status::from_usize(attributes as usize), Status::from_usize(bs_rt as usize));
            t.check(
                "SetVariable delete naming other attributes",
                (rt.set_variable)(kept.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, efi::VARIABLE_BOOTSERVICE_ACCESS, 0, null_mut()),
                Status::INVALID_PARAMETER,
            );
            let mut count_now = 0u64;
            (bs.get_next_monotonic_count)(&mut count_now);
            t.check("GetNextMonotonicCount's high half carries the boot (the RTC here)", Status::from_usize((count_now >> 32 != 0) as usize), Status::from_usize(1));

            // OpenProtocol: the interface with ALREADY_STARTED; a child is not its own parent; an
            // uninstall disconnects what holds the protocol, and a holder that is no driver
            // keeps it.
            let mut controller: Handle = null_mut();
            (bs.install_protocol_interface)(&mut controller, &DRIVEN as *const Guid as *mut Guid, efi::NATIVE_INTERFACE, 0x5678 as *mut c_void);
            let driven = &DRIVEN as *const Guid as *mut Guid;
            let mut i: *mut c_void = null_mut();
            t.check("OpenProtocol BY_DRIVER", (bs.open_protocol)(controller, driven, &mut i, image, controller, efi::OPEN_PROTOCOL_BY_DRIVER), Status::SUCCESS);
            i = null_mut();
            t.check("OpenProtocol BY_DRIVER again", (bs.open_protocol)(controller, driven, &mut i, image, controller, efi::OPEN_PROTOCOL_BY_DRIVER), Status::ALREADY_STARTED);
            t.check("... with the interface", Status::from_usize(i as usize), Status::from_usize(0x5678));
            t.check(
                "OpenProtocol BY_CHILD_CONTROLLER of itself",
                (bs.open_protocol)(controller, driven, &mut i, image, controller, efi::OPEN_PROTOCOL_BY_CHILD_CONTROLLER),
                Status::INVALID_PARAMETER,
            );
            t.check(
                "UninstallProtocolInterface held by an image that is no driver",
                (bs.uninstall_protocol_interface)(controller, driven, 0x5678 as *mut c_void),
                Status::ACCESS_DENIED,
            );
            (bs.close_protocol)(controller, driven, image, controller);

            // The driver model: a Driver Binding the payload installs.
            let mut binding_value = efi::protocols::driver_binding::Protocol {
                supported: drv_supported,
                start: drv_start,
                stop: drv_stop,
                version: 0x10,
                image_handle: image,
                driver_binding_handle: null_mut(),
            };
            let binding = &mut binding_value as *mut efi::protocols::driver_binding::Protocol;
            let mut driver: Handle = null_mut();
            (bs.install_protocol_interface)(&mut driver, &efi::protocols::driver_binding::PROTOCOL_GUID as *const Guid as *mut Guid, efi::NATIVE_INTERFACE, binding.cast());
            (*binding).driver_binding_handle = driver;
            t.check("ConnectController starts the payload's driver", (bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE), Status::SUCCESS);
            t.check("... once", Status::from_usize(STARTS.load(Relaxed)), Status::from_usize(1));
            t.check("OpenProtocol EXCLUSIVE disconnects it", (bs.open_protocol)(controller, driven, &mut i, image, null_mut(), efi::OPEN_PROTOCOL_EXCLUSIVE), Status::SUCCESS);
            t.check("... through its Stop", Status::from_usize(STOPS.load(Relaxed)), Status::from_usize(1));
            (bs.close_protocol)(controller, driven, image, null_mut());
            (bs.connect_controller)(controller, null_mut(), null_mut(), efi::Boolean::FALSE);
            t.check(
                "UninstallProtocolInterface stops the driver and takes the protocol",
                (bs.uninstall_protocol_interface)(controller, driven, 0x5678 as *mut c_void),
                Status::SUCCESS,
            );
            t.check("... after its Stop", Status::from_usize(STOPS.load(Relaxed)), Status::from_usize(2));
            (bs.uninstall_protocol_interface)(driver, &efi::protocols::driver_binding::PROTOCOL_GUID as *const Guid as *mut Guid, binding.cast());

            // SerialIo waits Mode.Timeout (20 ms here) for a byte that does not come.
            let mut sio: *mut c_void = null_mut();
            if (bs.locate_protocol)(&SERIAL_IO as *const Guid as *mut Guid, null_mut(), &mut sio) == Status::SUCCESS {
                let sio = sio as *mut SerialIo;
                ((*sio).set_attributes)(sio, 0, 0, 20_000, 0, 0, 0);
                let (start, freq) = counter();
                let (mut n, mut byte) = (1usize, 0u8);
                t.check("SerialIo.Read of a byte that does not come", ((*sio).read)(sio, &mut n, (&mut byte as *mut u8).cast()), Status::TIMEOUT);
                let waited_ms = (counter().0 - start) * 1000 / freq;
                t.check("... after waiting the timeout", Status::from_usize((waited_ms >= 20) as usize), Status::from_usize(1));
                ((*sio).set_attributes)(sio, 0, 0, 0, 0, 0, 0);
            }

            // DevicePathFromText and ToText know every node type of UEFI 2.10.
            let (mut from, mut to): (*mut c_void, *mut c_void) = (null_mut(), null_mut());
            (bs.locate_protocol)(&efi::protocols::device_path_from_text::PROTOCOL_GUID as *const Guid as *mut Guid, null_mut(), &mut from);
            (bs.locate_protocol)(&efi::protocols::device_path_to_text::PROTOCOL_GUID as *const Guid as *mut Guid, null_mut(), &mut to);
            if !from.is_null() && !to.is_null() {
                let from = from as *const efi::protocols::device_path_from_text::Protocol;
                let to = to as *const efi::protocols::device_path_to_text::Protocol;
                let text: [u16; 64] = ucs2("PciRoot(0x0)/Pci(0x1,0x0)/Ata(Primary,Master,0x1)");
                let path = ((*from).convert_text_to_device_path)(text.as_ptr());
                t.check("DevicePathFromText of an ATA path", Status::from_usize(!path.is_null() as usize), Status::from_usize(1));
                if !path.is_null() {
                    let back = ((*to).convert_device_path_to_text)(path, efi::Boolean::FALSE, efi::Boolean::FALSE);
                    let len = text.iter().position(|&u| u == 0).unwrap_or(0);
                    let same = !back.is_null() && (0..=len).all(|k| *back.add(k) == text[k]);
                    t.check("... and back to the same text", Status::from_usize(same as usize), Status::from_usize(1));
                }
            }

            // A runtime driver's VIRTUAL_ADDRESS_CHANGE notify function, for after ExitBootServices.
            let mut va_event: efi::Event = null_mut();
            t.check(
                "CreateEvent SIGNAL_VIRTUAL_ADDRESS_CHANGE",
                (bs.create_event)(efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE, efi::TPL_NOTIFY, Some(address_change), null_mut(), &mut va_event),
                Status::SUCCESS,
            );

            // ExitBootServices: a stale key, then the right one.
            let mut size = buf.len();
            let r = (bs.get_memory_map)(&mut size, buf.as_mut_ptr() as *mut efi::MemoryDescriptor, &mut key, &mut dsize, &mut dver);
            t.check("GetMemoryMap", r, Status::SUCCESS);
            t.check("ExitBootServices with a stale map key", (bs.exit_boot_services)(image, key.wrapping_add(1)), Status::INVALID_PARAMETER);
            size = buf.len();
            (bs.get_memory_map)(&mut size, buf.as_mut_ptr() as *mut efi::MemoryDescriptor, &mut key, &mut dsize, &mut dver);
            t.check("ExitBootServices with the current key", (bs.exit_boot_services)(image, key), Status::SUCCESS);
            t.check("AllocatePool after ExitBootServices", (bs.allocate_pool)(efi::LOADER_DATA, 16, &mut p), Status::UNSUPPORTED);
            t.check("the system table's BootServices is gone at runtime", Status::from_usize((*st).boot_services as usize), Status::from_usize(0));
            // SetVirtualAddressMap with the map kept where it runs: the notify function runs
            // inside it and ConvertPointer answers there.
            for k in 0..size / dsize {
                let d = buf.as_mut_ptr().add(k * dsize) as *mut efi::MemoryDescriptor;
                let mut desc = d.read_unaligned();
                if desc.attribute & efi::MEMORY_RUNTIME != 0 && desc.virtual_start == 0 {
                    desc.virtual_start = desc.physical_start;
                    d.write_unaligned(desc);
                }
            }
            t.check("SetVirtualAddressMap, 1:1", (rt.set_virtual_address_map)(size, dsize, dver, buf.as_mut_ptr() as *mut efi::MemoryDescriptor), Status::SUCCESS);
            t.check("... called the VIRTUAL_ADDRESS_CHANGE notify function", Status::from_usize(VA_CALLS.load(Relaxed)), Status::from_usize(1));
            t.check("... where ConvertPointer converted", Status::from_usize(VA_STATUS.load(Relaxed)), Status::SUCCESS);
            t.check("... to the same address", Status::from_usize(VA_POINTER.load(Relaxed)), Status::from_usize(rt as *const efi::RuntimeServices as usize));
            let mut p = rt as *const efi::RuntimeServices as *mut c_void;
            t.check("ConvertPointer after SetVirtualAddressMap", (rt.convert_pointer)(0, &mut p), Status::UNSUPPORTED);

            t.check("GetMemoryMap after ExitBootServices", (bs.get_memory_map)(&mut size, null_mut(), &mut key, &mut dsize, &mut dver), Status::UNSUPPORTED);
            vsize = 1;
            t.check(
                "GetVariable at runtime",
                (rt.get_variable)(kept.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut vsize, data.as_mut_ptr() as *mut c_void),
                Status::SUCCESS,
            );
            t.check(
                "GetVariable of a boot-services-only variable at runtime",
                (rt.get_variable)(name.as_mut_ptr(), &UNKNOWN as *const Guid as *mut Guid, null_mut(), &mut vsize, data.as_mut_ptr() as *mut c_void),
                Status::NOT_FOUND,
            );

            say!("misbehave: {} passed, {} failed", t.passed, t.failed);
            say!("misbehave: now reading unmapped memory on purpose");
            let _ = core::ptr::read_volatile(null::<u64>().wrapping_add(0x0000_dead_0000_0000 / 8));
            say!("misbehave: FAIL the read did not fault");
            Status::ABORTED
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        print("misbehave: panic");
        loop {}
    }
}
