//! Runtime services. Without firmware (`noefi_boot`): variables on the volatile store (in
//! runtime memory, so the OS keeps them: efivarfs), GetTime/SetTime on the PL031 RTC when the
//! device tree has one, ResetSystem through PSCI, everything else `EFI_UNSUPPORTED`, and the RT
//! properties table says exactly that. With firmware: every call is passed to the
//! firmware's own table (SetVirtualAddressMap only when it would change nothing).
//!
//! Everything reachable after ExitBootServices lives in the blob (published as runtime code and
//! data), runs on the caller's stack, and touches no boot-services memory.

use super::*;
use crate::cell::BootCell;
use crate::efi::events::Notify;
use crate::efi::guids::rt_supported::*;
use crate::efi::platform::{Power, PowerAction};
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// A firmware runtime range and the virtual address it runs at.
#[derive(Clone, Copy, Default)]
pub struct FirmwareRange {
    pub phys: u64,
    pub virt: u64,
    pub size: u64,
}

impl FirmwareRange {
    fn contains(&self, addr: u64) -> bool {
        addr >= self.phys && addr - self.phys < self.size
    }
}

/// How many firmware runtime ranges SetVirtualAddressMap can check (EDK2 has about 20).
const MAX_FIRMWARE_RANGES: usize = 64;

/// How many VIRTUAL_ADDRESS_CHANGE notify functions ExitBootServices keeps for
/// SetVirtualAddressMap (one per runtime driver; a payload has a few at most).
const MAX_ADDRESS_CHANGE_NOTIFIES: usize = 32;

/// The map SetVirtualAddressMap was given, while its VIRTUAL_ADDRESS_CHANGE notify functions
/// run: ConvertPointer translates with it.
#[derive(Clone, Copy)]
struct VirtualMap {
    at: usize,
    size: usize,
    desc_size: usize,
}

impl VirtualMap {
    /// Its descriptors.
    ///
    /// # Safety
    /// The caller's map must still hold `size` readable bytes at `at` (true while
    /// SetVirtualAddressMap, its receiver, has not returned).
    unsafe fn descriptors(self) -> impl Iterator<Item = efi::MemoryDescriptor> {
        // SAFETY: per the contract; `desc_size` is at least a descriptor (checked on entry).
        (0..self.size / self.desc_size).map(move |i| unsafe { (self.at as *const u8).add(i * self.desc_size).cast::<efi::MemoryDescriptor>().read_unaligned() })
    }
}

/// What the runtime side knows of the firmware and of itself, in the blob's data (runtime
/// memory). Atomics, beside the one cell written once at setup: runtime services are called by
/// the OS, from any CPU, also while another call is in flight (a reset from a panic).
struct RuntimeState {
    /// The firmware's runtime services table (physical address), when there is firmware.
    firmware: AtomicU64,
    /// The firmware's table while it is hidden: it runs at the first kernel's virtual
    /// addresses, and the payload has not (yet) kept them with SetVirtualAddressMap, so a call
    /// from the payload's own mapping (Linux maps runtime services 1:1) would fault in it.
    hidden_firmware: AtomicU64,
    /// The firmware's runtime ranges, and whether there were more than fit (SetVirtualAddressMap
    /// then refuses every map).
    ranges: BootCell<([FirmwareRange; MAX_FIRMWARE_RANGES], usize)>,
    too_many_ranges: AtomicBool,
    /// Where EFI_RT_PROPERTIES_TABLE's `supported` field lives, and the firmware's own mask, to
    /// say the truth when the firmware is hidden or reachable again.
    rt_properties: AtomicU64,
    firmware_mask: AtomicU32,
    /// The time zone and daylight flags SetTime was given (the RTC counts seconds only), packed
    /// as `ZONE_SET | timezone << 8 | daylight`; 0 until then. (All of this struct starts
    /// zero, so it costs the blob no bytes.)
    time_zone: AtomicU32,
    /// A SetVirtualAddressMap succeeded: the next one is refused.
    virtual_mode: AtomicBool,
    /// The VIRTUAL_ADDRESS_CHANGE notify functions (kept at ExitBootServices: the events went
    /// with the core), and the map while they run.
    address_change: BootCell<([Option<Notify>; MAX_ADDRESS_CHANGE_NOTIFIES], usize)>,
    converting: BootCell<VirtualMap>,
}

/// `RuntimeState::time_zone` holds what SetTime was given.
const ZONE_SET: u32 = 1 << 31;

static STATE: RuntimeState = RuntimeState {
    firmware: AtomicU64::new(0),
    hidden_firmware: AtomicU64::new(0),
    ranges: BootCell::empty(),
    too_many_ranges: AtomicBool::new(false),
    rt_properties: AtomicU64::new(0),
    firmware_mask: AtomicU32::new(0),
    time_zone: AtomicU32::new(0),
    virtual_mode: AtomicBool::new(false),
    address_change: BootCell::empty(),
    converting: BootCell::empty(),
};

/// Records the firmware's runtime ranges (those the first kernel moved); false when there are
/// more than can be recorded (SetVirtualAddressMap then refuses every move of them).
pub fn record_firmware_ranges(ranges: impl Iterator<Item = FirmwareRange>) -> bool {
    let mut table = ([FirmwareRange::default(); MAX_FIRMWARE_RANGES], 0);
    let mut all = true;
    for r in ranges {
        if table.1 == MAX_FIRMWARE_RANGES {
            STATE.too_many_ranges.store(true, Ordering::Relaxed);
            all = false;
            break;
        }
        table.0[table.1] = r;
        table.1 += 1;
    }
    STATE.ranges.set(table);
    all
}

/// ConvertPointer's DebugDisposition bit: a NULL pointer is fine and stays NULL.
const OPTIONAL_PTR: usize = 0x1;

/// Where `addr` lies in `map` (UEFI 2.10 section 8.4.2): in a runtime range, at its virtual
/// address; NULL stays NULL when `optional`; anything else EFI_INVALID_PARAMETER (NULL) or
/// EFI_NOT_FOUND.
pub fn convert_address(map: impl Iterator<Item = efi::MemoryDescriptor>, addr: u64, optional: bool) -> Result<u64, EfiError> {
    if addr == 0 {
        return if optional { Ok(0) } else { Err(EfiError::InvalidParameter) };
    }
    map.filter(|d| d.attribute & efi::MEMORY_RUNTIME != 0)
        .find(|d| addr >= d.physical_start && addr - d.physical_start < d.number_of_pages.saturating_mul(PAGE_SIZE))
        .map(|d| d.virtual_start.wrapping_add(addr - d.physical_start))
        .ok_or(EfiError::NotFound)
}

/// Calls the VIRTUAL_ADDRESS_CHANGE notify functions ExitBootServices kept, with `map` for
/// ConvertPointer, as EDK2's SetVirtualAddressMap does before it converts its own pointers.
fn notify_address_change(map: VirtualMap) {
    let Some((notifies, n)) = STATE.address_change.with(|kept| *kept) else { return };
    STATE.converting.set(map);
    for notify in notifies[..n].iter().flatten() {
        // SAFETY: the payload registered this function for VIRTUAL_ADDRESS_CHANGE, to be called
        // with its event and context during SetVirtualAddressMap; a runtime driver keeps it in
        // runtime memory.
        unsafe { (notify.function)(notify.event as efi::Event, notify.context as *mut c_void) };
    }
    STATE.converting.clear();
}

/// Where the firmware range holding `addr` runs, if one does.
fn firmware_virt(addr: u64) -> Option<u64> {
    STATE.ranges.with(|(table, n)| table[..*n].iter().find(|r| r.contains(addr)).map(|r| r.virt + (addr - r.phys))).flatten()
}

fn has_firmware_ranges() -> bool {
    STATE.ranges.with(|(_, n)| *n > 0).unwrap_or(false)
}

/// Whether variables of `attributes` are the emulator's own when there is firmware: it has been at
/// runtime since the first kernel's ExitBootServices and refuses what only boot services may
/// create (volatile variables, ones without runtime access), although the payload is in boot
/// services here.
fn kept_here(attributes: u32) -> bool {
    let runtime_nv = efi::VARIABLE_NON_VOLATILE | efi::VARIABLE_RUNTIME_ACCESS;
    attributes & runtime_nv != runtime_nv
}

/// A firmware variable's data (`None`: it does not exist), read for the emulator itself.
pub fn read_firmware_variable(name: &str, guid: &Guid) -> Result<Option<Vec<u8>>, Status> {
    let f = firmware().ok_or(Status::UNSUPPORTED)?;
    let mut name: Vec<u16> = name.encode_utf16().chain(core::iter::once(0)).collect();
    let mut guid = *guid;
    let mut data: Vec<u8> = Vec::new();
    loop {
        let mut size = data.len();
        let mut attributes = 0u32;
        // SAFETY: the firmware's GetVariable with our own name, GUID and `size` bytes of buffer.
        let s = unsafe { (f.get_variable)(name.as_mut_ptr(), &mut guid, &mut attributes, &mut size, data.as_mut_ptr() as *mut c_void) };
        match s {
            Status::SUCCESS => {
                data.truncate(size);
                return Ok(Some(data));
            }
            Status::NOT_FOUND => return Ok(None),
            Status::BUFFER_TOO_SMALL if size > data.len() => data.resize(size, 0),
            s => return Err(s),
        }
    }
}

/// The firmware's next high monotonic count (it steps its non-volatile copy), when there is
/// firmware and it answers.
pub fn firmware_high_monotonic() -> Option<u32> {
    let f = firmware()?;
    let mut high = 0u32;
    // SAFETY: the firmware's own service with a local out-argument.
    (unsafe { (f.get_next_high_mono_count)(&mut high) } == Status::SUCCESS).then_some(high)
}

fn firmware() -> Option<&'static efi::RuntimeServices> {
    let p = STATE.firmware.load(Ordering::Relaxed);
    // SAFETY: the validated rt_info.runtime, translated to its physical address; firmware
    // runtime memory is mapped (identity, and at its virtual address).
    (p != 0).then(|| unsafe { &*(p as *const efi::RuntimeServices) })
}

efiapi! {
    fn get_time(time: *mut efi::Time, caps: *mut efi::TimeCapabilities) -> Status {
        match firmware() {
            // SAFETY: forwarding to the firmware's own service with the caller's arguments.
            Some(f) => unsafe { (f.get_time)(time, caps) },
            None => run(|| own_get_time(time, caps)),
        }
    }

    fn set_time(time: *mut efi::Time) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.set_time)(time) },
            None => run(|| own_set_time(time)),
        }
    }

    fn get_wakeup_time(enabled: *mut efi::Boolean, pending: *mut efi::Boolean, time: *mut efi::Time) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.get_wakeup_time)(enabled, pending, time) },
            None => Status::UNSUPPORTED,
        }
    }

    fn set_wakeup_time(enable: efi::Boolean, time: *mut efi::Time) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.set_wakeup_time)(enable, time) },
            None => Status::UNSUPPORTED,
        }
    }

    fn set_virtual_address_map(size: usize, desc_size: usize, version: u32, map: *mut efi::MemoryDescriptor) -> Status {
        // Nothing here can move: the emulator runs where it was loaded, and the firmware runs
        // at the virtual addresses the first kernel gave it and must never be relocated twice.
        // A map that keeps every runtime range where it runs changes nothing and succeeds; any
        // other is refused with EFI_UNSUPPORTED ("already in virtual address mode"), and Linux
        // then boots with runtime services disabled.
        // Only at runtime, and once (UEFI 2.10: EFI_UNSUPPORTED "not at runtime, or already in
        // virtual address mapped mode"; EDK2 checks this first).
        if !exited() || STATE.virtual_mode.load(Ordering::Relaxed) {
            return Status::UNSUPPORTED;
        }
        if map.is_null() || desc_size < 40 || version != efi::MEMORY_DESCRIPTOR_VERSION {
            return Status::INVALID_PARAMETER;
        }
        if STATE.too_many_ranges.load(Ordering::Relaxed) {
            log::warn!("SetVirtualAddressMap refused: the firmware has more runtime ranges than the emulator recorded");
            return Status::UNSUPPORTED;
        }
        for i in 0..size / desc_size {
            // SAFETY: the caller's map holds `size` bytes of descriptors.
            let d = unsafe { (map as *const u8).add(i * desc_size).cast::<efi::MemoryDescriptor>().read_unaligned() };
            if d.attribute & efi::MEMORY_RUNTIME == 0 {
                continue;
            }
            let runs_at = firmware_virt(d.physical_start).unwrap_or(d.physical_start);
            if d.virtual_start != runs_at {
                // The payload's map would move what cannot move: an unchanged-map request is
                // the only one we can honour.
                log::warn!(
                    "SetVirtualAddressMap refused: the runtime range at {:#x} runs at {runs_at:#x} ({}) and cannot move to {:#x}; runtime services stay unavailable to the payload",
                    d.physical_start,
                    if runs_at == d.physical_start { "the emulator, identity-mapped" } else { "the firmware, where the first kernel moved it" },
                    d.virtual_start
                );
                return Status::UNSUPPORTED;
            }
        }
        STATE.virtual_mode.store(true, Ordering::Relaxed);
        notify_address_change(VirtualMap { at: map as usize, size, desc_size });
        // Everything stays where it runs: a firmware hidden at ExitBootServices is reachable.
        let hidden = STATE.hidden_firmware.swap(0, Ordering::Relaxed);
        if hidden != 0 {
            STATE.firmware.store(hidden, Ordering::Relaxed);
            publish_mask(supported_mask(Some(STATE.firmware_mask.load(Ordering::Relaxed))));
        }
        Status::SUCCESS
    }

    fn convert_pointer(debug: usize, address: *mut *mut c_void) -> Status {
        // Only while SetVirtualAddressMap notifies (EDK2's rule): the map is gone afterwards.
        let Some(map) = STATE.converting.with(|m| *m) else { return Status::UNSUPPORTED };
        if address.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: the caller's in/out pointer, checked non-NULL; the map is SetVirtualAddressMap's,
        // which has not returned.
        unsafe {
            match convert_address(map.descriptors(), *address as u64, debug & OPTIONAL_PTR != 0) {
                Ok(virt) => {
                    *address = virt as *mut c_void;
                    Status::SUCCESS
                }
                Err(e) => crate::efi::status_of(Err(e)),
            }
        }
    }

    fn get_variable(name: *mut u16, guid: *mut Guid, attributes: *mut u32, size: *mut usize, data: *mut c_void) -> Status {
        let own = own_get_variable(name, guid, attributes, size, data);
        match firmware() {
            // The emulator's own variables shadow the firmware's (see `set_variable`).
            // SAFETY: forwarding to the firmware's own service with the caller's arguments.
            Some(f) if own == Status::NOT_FOUND => unsafe { (f.get_variable)(name, guid, attributes, size, data) },
            _ => own,
        }
    }

    fn get_next_variable_name(size: *mut usize, name: *mut u16, guid: *mut Guid) -> Status {
        let Some(f) = firmware() else { return own_get_next_variable_name(size, name, guid) };
        // The firmware's names (but those the emulator's own shadow), then the emulator's own.
        if size.is_null() || name.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: the payload's in/out size argument, and a name no longer than its buffer.
        let current = unsafe { ucs2_arg_within(name, size.read() / 2) };
        let Ok(current) = current else { return Status::INVALID_PARAMETER };
        if !current.is_empty() && own_has(current, guid) {
            return own_get_next_variable_name(size, name, guid);
        }
        loop {
            // SAFETY: as above.
            let st = unsafe { (f.get_next_variable_name)(size, name, guid) };
            match st {
                // SAFETY: the firmware wrote a NUL-terminated name into the buffer.
                Status::SUCCESS if unsafe { ucs2_arg_within(name, size.read() / 2) }.is_ok_and(|n| own_has(n, guid)) => continue,
                Status::NOT_FOUND => break,
                st => return st,
            }
        }
        // The firmware's list ended: the emulator's, from its first name; the caller's buffer
        // is left as it was when there is none.
        run(|| {
            // SAFETY: the payload's GUID argument.
            let g = unsafe { guid_arg(guid)? };
            with_variables(|s| {
                let v = s.next(&[], &g)?;
                // SAFETY: as in `own_get_next_variable_name`.
                unsafe { write_name(size, name, guid, v.name, v.guid) }
            })
        })
    }

    fn set_variable(name: *mut u16, guid: *mut Guid, attributes: u32, size: usize, data: *mut c_void) -> Status {
        let Some(f) = firmware() else { return own_set_variable(name, guid, attributes, size, data) };
        // The emulator keeps what the firmware, at runtime, would refuse (see `kept_here`), and
        // deletes its own; everything else goes to the firmware.
        let deleting = size == 0 || attributes == 0;
        let own = if deleting { own_has_arg(name, guid) } else { kept_here(attributes) };
        if own {
            return own_set_variable(name, guid, attributes, size, data);
        }
        // SAFETY: as above.
        unsafe { (f.set_variable)(name, guid, attributes, size, data) }
    }

    fn get_next_high_mono_count(count: *mut u32) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.get_next_high_mono_count)(count) },
            // Needs non-volatile storage to be monotonic across resets.
            None => Status::UNSUPPORTED,
        }
    }

    fn reset_system(kind: efi::ResetType, reset_status: Status, size: usize, data: *mut c_void) {
        // SAFETY: ResetSystem's own arguments.
        unsafe { super::protocols::reset_notification::notify(kind, reset_status, size, data) };
        if let Some(f) = firmware() {
            // SAFETY: as above.
            unsafe { (f.reset_system)(kind, reset_status, size, data) };
        }
        Machine::power(if kind == efi::RESET_SHUTDOWN { PowerAction::Off } else { PowerAction::Reset })
    }

    fn update_capsule(capsules: *mut *mut efi::CapsuleHeader, count: usize, scatter: efi::PhysicalAddress) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.update_capsule)(capsules, count, scatter) },
            None => Status::UNSUPPORTED,
        }
    }

    fn query_capsule_capabilities(capsules: *mut *mut efi::CapsuleHeader, count: usize, max: *mut u64, kind: *mut efi::ResetType) -> Status {
        match firmware() {
            // SAFETY: as above.
            Some(f) => unsafe { (f.query_capsule_capabilities)(capsules, count, max, kind) },
            None => Status::UNSUPPORTED,
        }
    }

    fn query_variable_info(attributes: u32, max: *mut u64, remaining: *mut u64, largest: *mut u64) -> Status {
        // Storage for what SetVariable keeps here is the emulator's to report (shim asks about
        // NV|BS before it writes its MOK state, and gives up under Secure Boot if refused).
        if let Some(f) = firmware().filter(|_| !kept_here(attributes)) {
            // SAFETY: as above.
            return unsafe { (f.query_variable_info)(attributes, max, remaining, largest) };
        }
        run(|| {
            if max.is_null() || remaining.is_null() || largest.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let (m, r, l) = with_variables(|s| s.query(attributes))?;
            // SAFETY: the payload's out-arguments.
            unsafe {
                out(max, m)?;
                out(remaining, r)?;
                out(largest, l)
            }
        })
    }
}

fn own_get_time(time: *mut efi::Time, caps: *mut efi::TimeCapabilities) -> Result<(), EfiError> {
    let seconds = Machine::rtc_seconds().ok_or(EfiError::Unsupported)?;
    let mut t = crate::efi::time::from_unix(seconds);
    let zone = match STATE.time_zone.load(Ordering::Relaxed) {
        0 => (crate::efi::time::UNSPECIFIED_TIMEZONE as u16 as u32) << 8,
        set => set & !ZONE_SET,
    };
    (t.timezone, t.daylight) = ((zone >> 8) as u16 as i16, zone as u8);
    // SAFETY: the payload's out-argument, and its optional capabilities out-argument.
    unsafe {
        out(time, t)?;
        if !caps.is_null() {
            // One-second resolution; PL031 crystals are good to about 50 ppm.
            out(caps, efi::TimeCapabilities { resolution: 1, accuracy: 50_000_000, sets_to_zero: efi::Boolean::FALSE })?;
        }
    }
    Ok(())
}

fn own_set_time(time: *mut efi::Time) -> Result<(), EfiError> {
    if Machine::rtc_seconds().is_none() {
        return Err(EfiError::Unsupported);
    }
    // SAFETY: the payload's in-argument.
    let t = unsafe { read(time)? };
    let seconds = crate::efi::time::to_unix(&t)?;
    Machine::set_rtc_seconds(seconds).map_err(|_| EfiError::DeviceError)?;
    STATE.time_zone.store(ZONE_SET | ((t.timezone as u16 as u32) << 8) | t.daylight as u32, Ordering::Relaxed);
    Ok(())
}

/// True when the emulator's own store holds `name`/`guid` (invalid arguments hold nothing).
fn own_has(name: &[u16], guid: *mut Guid) -> bool {
    // SAFETY: the payload's GUID argument.
    let Ok(guid) = (unsafe { guid_arg(guid) }) else { return false };
    !name.is_empty() && with_variables(|s| s.get(name, &guid).map(|_| ())).is_ok()
}

/// [`own_has`] for a name argument of the payload.
fn own_has_arg(name: *mut u16, guid: *mut Guid) -> bool {
    // SAFETY: the payload's name argument.
    unsafe { ucs2_arg(name) }.is_ok_and(|n| own_has(n, guid))
}

/// Writes a name and its GUID into GetNextVariableName's out-arguments.
///
/// # Safety
/// The payload's in/out size, name and GUID arguments.
unsafe fn write_name(size: *mut usize, name: *mut u16, guid: *mut Guid, found: &[u16], found_guid: Guid) -> Result<(), EfiError> {
    // SAFETY: per the contract; the buffer holds the name and its NUL once `sized_buffer`
    // accepted it.
    unsafe {
        sized_buffer(size, (found.len() + 1) * 2)?;
        core::ptr::copy_nonoverlapping(found.as_ptr(), name, found.len());
        name.add(found.len()).write(0);
        out(guid, found_guid)
    }
}

fn own_get_variable(name: *mut u16, guid: *mut Guid, attributes: *mut u32, size: *mut usize, data: *mut c_void) -> Status {
    run(|| {
        // SAFETY: the payload's name and GUID arguments.
        let (name, guid) = unsafe { (ucs2_arg(name)?, guid_arg(guid)?) };
        if size.is_null() {
            return Err(EfiError::InvalidParameter);
        }
        with_variables(|s| {
            let v = s.get(name, &guid)?;
            // UEFI 2.10: Attributes are returned with EFI_BUFFER_TOO_SMALL as with EFI_SUCCESS.
            if !attributes.is_null() {
                // SAFETY: the payload's optional out-argument.
                unsafe { out(attributes, v.attributes)? };
            }
            // SAFETY: the payload's in/out size argument.
            unsafe { sized_buffer(size, v.data.len())? };
            if data.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the caller's buffer holds at least `len` bytes (`sized_buffer`).
            unsafe { core::ptr::copy_nonoverlapping(v.data.as_ptr(), data as *mut u8, v.data.len()) };
            Ok(())
        })
    })
}

fn own_get_next_variable_name(size: *mut usize, name: *mut u16, guid: *mut Guid) -> Status {
    run(|| {
        if name.is_null() {
            return Err(EfiError::InvalidParameter);
        }
        // SAFETY: the payload's in/out size, GUID, and name within the size it gave: a name
        // without a NUL in its buffer is refused, never read past.
        let (have, g) = unsafe { (read(size)?, guid_arg(guid)?) };
        // SAFETY: as above.
        let current = unsafe { ucs2_arg_within(name, have / 2)? };
        with_variables(|s| {
            let v = s.next(current, &g)?;
            // SAFETY: as above.
            unsafe { write_name(size, name, guid, v.name, v.guid) }
        })
    })
}

fn own_set_variable(name: *mut u16, guid: *mut Guid, attributes: u32, size: usize, data: *mut c_void) -> Status {
    run(|| {
        // SAFETY: the payload's name, GUID and `size` bytes of data.
        let (name, guid, bytes) = unsafe { (ucs2_arg(name)?, guid_arg(guid)?, bytes_arg(data as *const u8, size)?) };
        with_variables(|s| s.set(name, &guid, attributes, bytes))
    })
}

/// What the runtime side really does after ExitBootServices, for EFI_RT_PROPERTIES_TABLE. With
/// firmware, SetVirtualAddressMap stays in: a payload must call it to learn whether the
/// firmware can be reached at the addresses it wants (it cannot be moved again), and Linux
/// disables runtime services when the call fails; without it (EFI_RT_PROPERTIES says no), Linux
/// would map the firmware 1:1 and call it there, where its relocated pointers do not work.
pub fn supported_mask(firmware_mask: Option<u32>) -> u32 {
    match firmware_mask {
        // ConvertPointer works while SetVirtualAddressMap notifies.
        Some(mask) => mask | SET_VIRTUAL_ADDRESS_MAP | CONVERT_POINTER,
        None => {
            let time = if Machine::rtc_seconds().is_some() { GET_TIME | SET_TIME } else { 0 };
            GET_VARIABLE | GET_NEXT_VARIABLE_NAME | SET_VARIABLE | QUERY_VARIABLE_INFO | RESET_SYSTEM | time
        }
    }
}

/// Remembers where EFI_RT_PROPERTIES_TABLE is and the firmware's own mask.
pub fn set_properties(props_supported: *mut u32, firmware_mask: Option<u32>) {
    STATE.rt_properties.store(props_supported as u64, Ordering::Relaxed);
    STATE.firmware_mask.store(firmware_mask.unwrap_or(0), Ordering::Relaxed);
}

fn publish_mask(mask: u32) {
    let at = STATE.rt_properties.load(Ordering::Relaxed);
    if at != 0 {
        // SAFETY: the `supported` field of the RT properties table in the runtime block.
        unsafe { (at as *mut u32).write_volatile(mask) };
    }
}

/// At ExitBootServices: a firmware the first kernel moved to other virtual addresses is hidden
/// (the payload gets the emulator's own runtime services, and the RT properties table says so)
/// until a SetVirtualAddressMap that keeps those addresses; Linux calls it only on machines that
/// need it, and otherwise maps runtime services 1:1, where the moved firmware would fault.
pub fn exit_boot_services(address_change: &[Notify]) {
    let mut kept = ([None; MAX_ADDRESS_CHANGE_NOTIFIES], 0);
    for (slot, notify) in kept.0.iter_mut().zip(address_change) {
        *slot = Some(*notify);
        kept.1 += 1;
    }
    if address_change.len() > MAX_ADDRESS_CHANGE_NOTIFIES {
        log::warn!("more than 32 VIRTUAL_ADDRESS_CHANGE events: the later ones will not be notified");
    }
    STATE.address_change.set(kept);
    let _ = with_variables(|s| {
        s.enter_runtime();
        Ok(())
    });
    if !has_firmware_ranges() && !STATE.too_many_ranges.load(Ordering::Relaxed) {
        return;
    }
    let table = STATE.firmware.swap(0, Ordering::Relaxed);
    if table != 0 {
        STATE.hidden_firmware.store(table, Ordering::Relaxed);
        publish_mask(supported_mask(None) | SET_VIRTUAL_ADDRESS_MAP | CONVERT_POINTER);
        log::warn!(
            "the firmware runs at the virtual addresses the first kernel gave it: its runtime services are hidden (the emulator serves its own) unless SetVirtualAddressMap keeps them there"
        );
    }
}

/// The runtime services table (its CRC still to seal); remembers the firmware's.
pub fn table(firmware_phys: Option<u64>) -> efi::RuntimeServices {
    if let Some(p) = firmware_phys {
        STATE.firmware.store(p, Ordering::Relaxed);
    }
    efi::RuntimeServices {
        hdr: table_header::<efi::RuntimeServices>(efi::RUNTIME_SERVICES_SIGNATURE),
        get_time: get_time::entry,
        set_time: set_time::entry,
        get_wakeup_time: get_wakeup_time::entry,
        set_wakeup_time: set_wakeup_time::entry,
        set_virtual_address_map: set_virtual_address_map::entry,
        convert_pointer: convert_pointer::entry,
        get_variable: get_variable::entry,
        get_next_variable_name: get_next_variable_name::entry,
        set_variable: set_variable::entry,
        get_next_high_mono_count: get_next_high_mono_count::entry,
        reset_system: reset_system::entry,
        update_capsule: update_capsule::entry,
        query_capsule_capabilities: query_capsule_capabilities::entry,
        query_variable_info: query_variable_info::entry,
    }
}

/// Host tests: a firmware runtime services table at `table`.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn set_firmware_for_test(table: *const efi::RuntimeServices) {
    STATE.firmware.store(table as u64, Ordering::Relaxed);
}

/// Host tests: no firmware, nothing hidden, nothing recorded.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn reset_for_test() {
    for a in [&STATE.firmware, &STATE.hidden_firmware, &STATE.rt_properties] {
        a.store(0, Ordering::Relaxed);
    }
    STATE.too_many_ranges.store(false, Ordering::Relaxed);
    STATE.virtual_mode.store(false, Ordering::Relaxed);
    STATE.address_change.clear();
    STATE.converting.clear();
    record_firmware_ranges(core::iter::empty());
}
