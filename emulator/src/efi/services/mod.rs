//! The `extern "efiapi"` side of the UEFI core: the tables a payload sees, the shims it calls,
//! and the one global core they reach.
//!
//! Every function a payload can call is defined with [`efiapi!`], which generates a naked entry
//! that saves x18 (and the link register) around the Rust body: the precompiled `core` may use
//! x18 as a scratch register, and payloads (Linux) require it preserved. The Rust bodies check
//! the pointers they are given, call the portable core, and turn its `Result` into a `Status`.

pub mod boot;
pub mod console;
pub mod image;
pub mod integrity;
pub mod memory_attribute;
pub mod rng;
pub mod runtime;
pub mod setup;

use super::events::{Events, Notify};
use super::handles::HandleDb;
use super::memory::{MemoryMap, Region};
use super::pool::Pool;
use super::variables::VariableStore;
use super::EfiError;
use crate::abi::validate::{desc_extent, Validated};
use crate::abi::PAGE_SIZE;
use crate::fatal;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use r_efi::efi::{self, Guid, Status};

/// Defines payload-callable functions: `fn name(args) -> ret { body }` becomes a module `name`
/// with `inner` (the body) and `entry` (the naked x18-preserving shim to put in tables).
/// No function here takes more than eight arguments, so none is passed on the stack, which the
/// shim's 16-byte push would shift.
macro_rules! efiapi {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    )*) => {$(
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$meta])*
            pub(super) extern "efiapi" fn inner($($arg: $ty),*) $(-> $ret)? $body

            /// The entry a payload calls: x18 and x30 saved across the body.
            #[unsafe(naked)]
            #[allow(unused_variables)]
            pub unsafe extern "efiapi" fn entry($($arg: $ty),*) $(-> $ret)? {
                core::arch::naked_asm!(
                    "stp x18, x30, [sp, #-16]!",
                    "bl {inner}",
                    "ldp x18, x30, [sp], #16",
                    "ret",
                    inner = sym inner,
                )
            }
        }
    )*};
}
pub(crate) use efiapi;

/// Where the tables live.
pub struct Tables {
    pub systab: *mut efi::SystemTable,
    pub boot: *mut efi::BootServices,
    pub runtime: *mut efi::RuntimeServices,
    pub config: *mut efi::ConfigurationTable,
    pub config_capacity: usize,
}

/// One image the core loaded.
pub struct Image {
    pub handle: usize,
    pub loaded_image: *mut efi::protocols::loaded_image::Protocol,
    pub base: u64,
    pub pages: u64,
    pub entry: u64,
    pub started: bool,
    /// While the image runs: where `Exit` unwinds to.
    pub exit_context: Option<*mut image::ExitContext>,
    pub exit_data: Option<(usize, *mut u16)>,
    /// Pool allocations owned by the image record (device path copies, load options).
    pub owned: Vec<*mut u8>,
}

/// Everything boot services know.
pub struct Core {
    pub memory: MemoryMap,
    pub pool: Pool,
    pub handles: HandleDb,
    pub events: Events,
    pub config: Vec<(Guid, usize)>,
    pub tables: Tables,
    pub images: Vec<Image>,
    pub monotonic: u64,
    /// ExitBootServices failed once: from then on only GetMemoryMap and ExitBootServices work.
    pub ebs_failed: bool,
    /// The initrd from `/chosen` (start, end), served through LoadFile2.
    pub initrd: Option<(u64, u64)>,
}

// SAFETY: the core is only reached from the one CPU that runs boot services.
unsafe impl Send for Core {}

struct Global(RefCell<Option<Core>>);
// SAFETY: one CPU, no interrupts taken while boot services run: no concurrent access. The
// RefCell turns a re-entrant access (a notify function calling back in while we hold the
// core) into a loud failure instead of a silent corruption or a dead-lock.
unsafe impl Sync for Global {}
static CORE: Global = Global(RefCell::new(None));

struct Variables(RefCell<Option<VariableStore>>);
// SAFETY: as for `Global`: one CPU, and runtime services are not re-entered by the OS.
unsafe impl Sync for Variables {}
/// The variable store, in runtime memory: reachable before and after ExitBootServices.
static VARIABLES: Variables = Variables(RefCell::new(None));

/// Runs `f` with the variable store (`Unsupported` before one was set up).
pub fn with_variables<R>(f: impl FnOnce(&mut VariableStore) -> Result<R, EfiError>) -> Result<R, EfiError> {
    let mut slot = VARIABLES.0.try_borrow_mut().map_err(|_| EfiError::AccessDenied)?;
    f(slot.as_mut().ok_or(EfiError::Unsupported)?)
}

pub fn install_variables(store: VariableStore) {
    *VARIABLES.0.borrow_mut() = Some(store);
}

/// Set after ExitBootServices: boot services refuse, runtime services keep out of boot memory.
pub static EXITED: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the core. A re-entrant call is a bug in the emulator: reported, then fatal.
pub fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    let mut slot = CORE.0.try_borrow_mut().unwrap_or_else(|_| fatal!("boot service entered while another one runs (re-entrant call)"));
    let core = slot.as_mut().unwrap_or_else(|| fatal!("boot service called before the core was set up"));
    f(core)
}

/// `Err(status)` once boot services are gone.
pub fn boot_services_available() -> Result<(), Status> {
    if EXITED.load(Ordering::Relaxed) {
        Err(Status::UNSUPPORTED)
    } else {
        Ok(())
    }
}

/// Calls notify functions, outside the core: they may call boot services.
pub fn dispatch(notifies: Vec<Notify>) {
    for n in notifies {
        // SAFETY: the payload registered this function with CreateEvent as an EFI_EVENT_NOTIFY.
        let f: efi::EventNotify = unsafe { core::mem::transmute::<usize, efi::EventNotify>(n.function) };
        // SAFETY: calling payload code as the spec prescribes.
        unsafe { f(n.event as *mut c_void, n.context as *mut c_void) };
    }
}

/// Converts a core result to a status.
pub fn status(r: Result<(), EfiError>) -> Status {
    super::status_of(r)
}

/// Reads a GUID argument; NULL is `InvalidParameter`.
pub fn guid_arg(g: *const Guid) -> Result<Guid, EfiError> {
    if g.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL pointer from the payload to a GUID (4-byte aligned or not: read_unaligned).
    Ok(unsafe { core::ptr::read_unaligned(g) })
}

/// Writes an out-parameter; NULL is `InvalidParameter`.
pub fn out<T>(p: *mut T, v: T) -> Result<(), EfiError> {
    if p.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL out-pointer from the payload.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// The size-probe convention of GetMemoryMap, LocateHandle, GetVariable, LoadFile, GetInfo:
/// `*size` is the caller's buffer size; it is set to `needed`, and a smaller buffer is
/// `BufferTooSmall`. Returns the caller's size.
pub fn sized_buffer(size: *mut usize, needed: usize) -> Result<usize, EfiError> {
    if size.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL in/out size from the payload.
    let have = unsafe { size.read_unaligned() };
    out(size, needed)?;
    if have < needed {
        Err(EfiError::BufferTooSmall)
    } else {
        Ok(have)
    }
}

/// A NUL-terminated UCS-2 string from the payload, without its NUL (at most 32 Ki units).
pub fn ucs2_arg<'a>(p: *const u16) -> Result<&'a [u16], EfiError> {
    if p.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    let mut n = 0;
    // SAFETY: the payload passes a NUL-terminated string; the length is bounded.
    while unsafe { p.add(n).read_unaligned() } != 0 {
        n += 1;
        if n > 32 * 1024 {
            return Err(EfiError::InvalidParameter);
        }
    }
    // SAFETY: `n` units were just read.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

/// A table header at revision 2.10 for a table of type `T`; the CRC is filled in by `seal`.
pub fn table_header<T>(signature: u64) -> efi::TableHeader {
    efi::TableHeader { signature, revision: super::guids::REVISION_2_10, header_size: core::mem::size_of::<T>() as u32, crc32: 0, reserved: 0 }
}

impl Core {
    /// Recomputes a table header's CRC32 over `HeaderSize` bytes with the CRC field zeroed.
    ///
    /// # Safety
    /// `hdr` must point to a table of at least `header_size` bytes.
    pub unsafe fn seal(hdr: *mut efi::TableHeader) {
        // SAFETY: per the contract.
        unsafe {
            (*hdr).crc32 = 0;
            let bytes = core::slice::from_raw_parts(hdr as *const u8, (*hdr).header_size as usize);
            (*hdr).crc32 = super::crc32::crc32(bytes);
        }
    }

    /// Writes the configuration table array the system table points to.
    pub fn publish_config(&mut self) -> Result<(), EfiError> {
        if self.config.len() > self.tables.config_capacity {
            let capacity = self.config.len() * 2;
            let bytes = (capacity * core::mem::size_of::<efi::ConfigurationTable>()) as u64;
            let at = self.memory.allocate(super::memory::AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, bytes.div_ceil(PAGE_SIZE), PAGE_SIZE)?;
            self.tables.config = at as *mut efi::ConfigurationTable;
            self.tables.config_capacity = capacity;
        }
        for (i, (guid, table)) in self.config.iter().enumerate() {
            // SAFETY: the array has `config_capacity` entries in runtime data we own.
            unsafe { self.tables.config.add(i).write(efi::ConfigurationTable { vendor_guid: *guid, vendor_table: *table as *mut c_void }) };
        }
        // SAFETY: the system table lives in runtime data we own.
        unsafe {
            (*self.tables.systab).number_of_table_entries = self.config.len();
            (*self.tables.systab).configuration_table = self.tables.config;
            Self::seal(&mut (*self.tables.systab).hdr);
        }
        Ok(())
    }

    /// InstallConfigurationTable: add, replace, or (NULL) delete.
    pub fn install_config(&mut self, guid: Guid, table: usize) -> Result<(), EfiError> {
        let at = self.config.iter().position(|(g, _)| *g == guid);
        match (at, table) {
            (Some(i), 0) => {
                self.config.remove(i);
            }
            (None, 0) => return Err(EfiError::NotFound),
            (Some(i), t) => self.config[i].1 = t,
            (None, t) => self.config.push((guid, t)),
        }
        self.publish_config()
    }

    pub fn image(&mut self, handle: usize) -> Result<&mut Image, EfiError> {
        self.images.iter_mut().find(|i| i.handle == handle).ok_or(EfiError::InvalidParameter)
    }
}

/// The map boot services start from: the loader's descriptors, page-rounded (free memory
/// inward, occupied memory outward, as validation promised), and overlaps clipped.
pub fn initial_map(v: &Validated) -> MemoryMap {
    let mut regions: Vec<Region> = Vec::new();
    let mut descs: Vec<_> = v.map.iter().collect();
    descs.sort_unstable_by_key(|d| d.physical_start);
    for d in descs {
        let e = desc_extent(&d);
        let (mut start, end) = if d.r#type == efi::CONVENTIONAL_MEMORY {
            (e.start.next_multiple_of(PAGE_SIZE), e.end() & !(PAGE_SIZE - 1))
        } else {
            (e.start & !(PAGE_SIZE - 1), e.end().next_multiple_of(PAGE_SIZE))
        };
        if let Some(last) = regions.last() {
            start = start.max(last.end());
        }
        if end > start {
            regions.push(Region { ty: d.r#type, start, pages: (end - start) / PAGE_SIZE, attr: d.attribute, virt: d.virtual_start, allocated: false });
        }
    }
    MemoryMap::new(regions)
}

/// Installs the core. Called once, before any payload runs.
pub fn install(core: Core) {
    *CORE.0.borrow_mut() = Some(core);
}

/// The system table, for starting payloads.
pub fn system_table() -> *mut efi::SystemTable {
    with_core(|c| c.tables.systab)
}

/// Makes a fresh [`Events`] clocked by the generic timer.
pub fn new_events() -> Events {
    Events::new(crate::arch::aarch64::cpu::ticks_per_second())
}
