//! The state boot services share: the core, the variable store, and whether boot services
//! have ended, in [`BootCell`]s.

use super::image::Image;
use super::misc::MiscState;
use super::protocols::console::ConsoleState;
use super::protocols::esp::EspState;
use super::protocols::initrd::InitrdState;
use super::protocols::reset_notification::ResetNotifications;
use super::protocols::security::Policy;
use super::{Machine, PAGE_SIZE};
use crate::abi::validate::Validated;
use crate::cell::BootCell;
use crate::efi::events::Events;
use crate::efi::handles::HandleDb;
use crate::efi::memory::{MemoryMap, Region};
use crate::efi::platform::{Clock, Power};
use crate::efi::pool::Pool;
use crate::efi::variables::VariableStore;
use crate::efi::EfiError;
use crate::mem::desc_extent;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use r_efi::efi::{self, Guid};

/// Where the tables live.
pub struct Tables {
    pub systab: *mut efi::SystemTable,
    pub boot: *mut efi::BootServices,
    pub runtime: *mut efi::RuntimeServices,
    pub config: *mut efi::ConfigurationTable,
    pub config_capacity: usize,
}

/// Everything boot services know: the structures every service area shares, then each area's
/// own state, defined in its file.
pub struct Core {
    pub memory: MemoryMap,
    pub pool: Pool,
    pub handles: HandleDb,
    pub events: Events,
    pub config: Vec<(Guid, usize)>,
    pub tables: Tables,
    /// The images loaded ([`super::image`]), and those running now, innermost last (an image
    /// may start another; Exit and the watchdog name the current one).
    pub images: Vec<Image>,
    pub running: Vec<usize>,
    pub misc: MiscState,
    pub console: ConsoleState,
    pub initrd: InitrdState,
    pub esp: EspState,
    pub reset_notifications: ResetNotifications,
    pub security: Policy,
    /// Measured boot, when the machine has a TPM that answered (`protocols::tcg2`).
    pub measurements: Option<crate::efi::tcg2::Measurements>,
}

static CORE: BootCell<Core> = BootCell::empty();
/// The variable store, in runtime memory: reachable before and after ExitBootServices.
static VARIABLES: BootCell<VariableStore> = BootCell::empty();
/// Set after ExitBootServices: boot services refuse, runtime services keep out of boot memory.
static EXITED: AtomicBool = AtomicBool::new(false);

/// Installs the core. Called once, before any payload runs.
pub fn install(core: Core) {
    CORE.set(core);
}

pub fn install_variables(store: VariableStore) {
    VARIABLES.set(store);
}

/// Runs `f` with the core. A re-entrant call is a bug in the emulator: reported, then fatal.
pub fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    if !CORE.is_free() {
        Machine::fatal(format_args!("boot service entered while another one runs, or before the core was set up"));
    }
    CORE.with(f).unwrap_or_else(|| Machine::fatal(format_args!("the core vanished")))
}

/// Runs `f` with the variable store (`Unsupported` before one was set up, `AccessDenied` when
/// re-entered).
pub fn with_variables<R>(f: impl FnOnce(&mut VariableStore) -> Result<R, EfiError>) -> Result<R, EfiError> {
    if !VARIABLES.is_free() {
        return Err(if VARIABLES.is_borrowed() { EfiError::AccessDenied } else { EfiError::Unsupported });
    }
    VARIABLES.with(f).unwrap_or(Err(EfiError::AccessDenied))
}

/// Whether ExitBootServices has succeeded.
pub fn exited() -> bool {
    EXITED.load(Ordering::Relaxed)
}

/// Ends boot services (ExitBootServices succeeded).
pub fn set_exited() {
    EXITED.store(true, Ordering::Relaxed);
}

/// Host tests: a fresh start for the next test (the core and store are installed anew).
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn reset_for_test() {
    EXITED.store(false, Ordering::Relaxed);
    CORE.clear();
    VARIABLES.clear();
}

/// Calls the notify functions that are due at the current TPL, outside the core (they may call
/// boot services), each with the TPL raised to its own NotifyTpl.
pub fn dispatch() {
    while let Some(n) = with_core(|c| c.events.next_due()) {
        let old = with_core(|c| c.events.raise_tpl(n.tpl));
        // SAFETY: the payload registered this function with CreateEvent as an EFI_EVENT_NOTIFY,
        // to be called with its event and context.
        unsafe { (n.function)(n.event as efi::Event, n.context as *mut c_void) };
        with_core(|c| c.events.restore_tpl(old));
    }
}

impl Core {
    /// Writes the configuration table array the system table points to.
    pub fn publish_config(&mut self) -> Result<(), EfiError> {
        if self.config.len() > self.tables.config_capacity {
            let capacity = self.config.len() * 2;
            let bytes = (capacity * core::mem::size_of::<efi::ConfigurationTable>()) as u64;
            let at = self.memory.allocate(crate::efi::memory::AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, bytes.div_ceil(PAGE_SIZE), PAGE_SIZE)?;
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
            super::seal(&raw mut (*self.tables.systab).hdr);
        }
        Ok(())
    }

    /// InstallConfigurationTable: add, replace, or (NULL) delete.
    pub fn install_config(&mut self, guid: Guid, table: usize) -> Result<(), EfiError> {
        let at = self.config.iter().position(|(g, _)| *g == guid);
        if let (Some(i), true, true) = (at, guid == crate::efi::guids::LINUX_EFI_MEMRESERVE, table != 0) {
            chain_memreserve(table, self.config[i].1);
        }
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

/// Linux's EFI stub installs a fresh, empty memreserve root, replacing the one the previous
/// kernel's reservations hang from (passed on from the firmware); under firmware its kexec'd
/// successor would still see the old one. So the old chain goes on behind the new root, unless
/// the payload linked it itself: `struct linux_efi_memreserve { int size; int count; u64 next;
/// ... }`, `next` at offset 8.
fn chain_memreserve(new_root: usize, old_root: usize) {
    if new_root == old_root || old_root == 0 {
        return;
    }
    let next = (new_root + 8) as *mut u64;
    // SAFETY: the payload installed `new_root` as a linux_efi_memreserve, in its own memory, at
    // least 16 bytes; it has not returned from InstallConfigurationTable, so nothing else
    // writes it now.
    unsafe {
        if next.read_unaligned() == 0 {
            next.write_unaligned(old_root as u64);
            log::info!("the payload's memreserve table at {new_root:#x} continues with the previous kernel's at {old_root:#x}");
        }
    }
}

/// The map boot services start from: the loader's descriptors, page-rounded (free memory
/// inward, occupied memory outward, as validation promised), and overlaps clipped.
pub fn initial_map(v: &Validated) -> MemoryMap {
    let mut regions: Vec<Region> = Vec::new();
    let mut descs: Vec<_> = v.map.iter().collect();
    crate::mem::sort_by_key(&mut descs, |d| d.physical_start);
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

/// The system table, for starting payloads.
pub fn system_table() -> *mut efi::SystemTable {
    with_core(|c| c.tables.systab)
}

/// Makes a fresh [`Events`] clocked by the machine's counter.
pub fn new_events() -> Events {
    Events::new(Machine::ticks_per_second())
}
