//! The tables the OS keeps after ExitBootServices (system table, runtime services, RT
//! properties, configuration tables), in one runtime-data block, and the core built around
//! them. Portable: the blob's setup and the host tests both start here.

use super::protocols::{console, decompress, device_path_from_text, device_path_to_text, device_path_utilities, reset_notification, serial_io, unicode_collation};
use super::*;
use crate::efi::guids;
use crate::efi::handles::HandleDb;
use crate::efi::memory::{AllocateType, MemoryMap};
use crate::efi::pool::Pool;
use crate::efi::variables::VariableStore;
use core::mem::size_of;

/// `EFI_RT_PROPERTIES_TABLE`.
#[repr(C)]
struct RtProperties {
    version: u16,
    length: u16,
    supported: u32,
}

/// Offsets inside the runtime-data block that holds the tables the OS reads after
/// ExitBootServices.
const RT_BLOCK: u64 = 64 * 1024;
const AT_SYSTAB: usize = 0;
const AT_RUNTIME: usize = 0x200;
const AT_VENDOR: usize = 0x400;
const AT_RT_PROPERTIES: usize = 0x500;
const AT_CONFIG: usize = 0x800;

/// Bytes of runtime memory for the variable store.
const VARIABLE_STORE: u64 = 64 * 1024;

fn firmware_revision() -> u32 {
    let mut parts = crate::VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0) << 16) | (parts.next().unwrap_or(0) & 0xffff)
}

fn runtime_pages(memory: &mut MemoryMap, bytes: u64) -> Result<u64, EfiError> {
    let at = memory.allocate(AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, bytes / PAGE_SIZE, PAGE_SIZE)?;
    // Not pool-able: the OS keeps these pages for good.
    memory.retype(at, bytes / PAGE_SIZE, efi::RUNTIME_SERVICES_DATA, false)?;
    // SAFETY: freshly allocated pages, identity-mapped (host tests: host memory), ours alone.
    unsafe { core::ptr::write_bytes(at as *mut u8, 0, bytes as usize) };
    Ok(at)
}

/// The core over `memory`, with the system table, boot and runtime services tables, the
/// variable store and the console; `firmware` is the firmware's runtime services table (its
/// physical address), whose services are passed through.
pub fn new_core(mut memory: MemoryMap, firmware: Option<u64>) -> Result<Core, EfiError> {
    let block = runtime_pages(&mut memory, RT_BLOCK)?;
    let at = |off: usize| (block as usize + off) as *mut u8;
    let systab = at(AT_SYSTAB) as *mut efi::SystemTable;
    let runtime = at(AT_RUNTIME) as *mut efi::RuntimeServices;
    let tables = Tables {
        systab,
        boot: core::ptr::null_mut(),
        runtime,
        config: at(AT_CONFIG) as *mut efi::ConfigurationTable,
        config_capacity: (RT_BLOCK as usize - AT_CONFIG) / size_of::<efi::ConfigurationTable>(),
    };
    let mut c = Core {
        memory,
        pool: Pool::default(),
        handles: HandleDb::default(),
        events: new_events(),
        config: Vec::new(),
        tables,
        images: Vec::new(),
        running: Vec::new(),
        misc: Default::default(),
        console: Default::default(),
        initrd: Default::default(),
        esp: Default::default(),
        reset_notifications: Default::default(),
        security: Default::default(),
        measurements: None,
    };
    c.tables.boot = boot::table(&mut c)?;
    let store = runtime_pages(&mut c.memory, VARIABLE_STORE)?;
    // SAFETY: fresh runtime data, 64 KiB; the store owns it for good.
    let buf = unsafe { core::slice::from_raw_parts_mut(store as *mut u8, VARIABLE_STORE as usize) };
    let mut variables = VariableStore::new(buf);
    if firmware.is_none() {
        // No keys anywhere: Secure Boot is off and the platform in setup mode, and says so.
        variables.define_read_only("SecureBoot", &efi::GLOBAL_VARIABLE, &[0])?;
        variables.define_read_only("SetupMode", &efi::GLOBAL_VARIABLE, &[1])?;
    }
    install_variables(variables);
    // SAFETY: the runtime table slot of the zeroed runtime block, ours alone.
    unsafe {
        runtime.write(runtime::table(firmware));
        seal(&raw mut (*runtime).hdr);
    }

    let vendor = at(AT_VENDOR) as *mut u16;
    for (i, u) in guids::FIRMWARE_VENDOR.encode_utf16().chain(core::iter::once(0)).enumerate() {
        // SAFETY: inside the zeroed runtime block, 0x100 bytes reserved for the string.
        unsafe { vendor.add(i).write(u) };
    }
    let (console, con_out, con_in) = console::install(&mut c)?;
    serial_io::install(&mut c, console)?;
    let device_paths = device_path_utilities::install(&mut c)?;
    device_path_to_text::install(&mut c, device_paths)?;
    device_path_from_text::install(&mut c, device_paths)?;
    decompress::install(&mut c)?;
    reset_notification::install(&mut c)?;
    unicode_collation::install(&mut c)?;
    // SAFETY: the system table slot of the runtime block.
    unsafe {
        systab.write(efi::SystemTable {
            hdr: table_header::<efi::SystemTable>(guids::SYSTEM_TABLE_SIGNATURE),
            firmware_vendor: vendor,
            firmware_revision: firmware_revision(),
            console_in_handle: console as efi::Handle,
            con_in,
            console_out_handle: console as efi::Handle,
            con_out,
            standard_error_handle: console as efi::Handle,
            std_err: con_out,
            runtime_services: runtime,
            boot_services: c.tables.boot,
            number_of_table_entries: 0,
            configuration_table: c.tables.config,
        });
    }
    Ok(c)
}

/// Publishes EFI_RT_PROPERTIES_TABLE (and every configuration table so far); returns the mask
/// of runtime services that work after ExitBootServices.
pub fn publish_rt_properties(c: &mut Core, firmware_mask: Option<u32>) -> Result<u32, EfiError> {
    let props = (c.tables.systab as usize + AT_RT_PROPERTIES) as *mut RtProperties;
    let supported = runtime::supported_mask(firmware_mask);
    // SAFETY: the RT properties slot of the runtime block.
    unsafe { props.write(RtProperties { version: 1, length: size_of::<RtProperties>() as u16, supported }) };
    // SAFETY: the field of the table just written.
    runtime::set_properties(unsafe { &raw mut (*props).supported }, firmware_mask);
    c.config.push((guids::RT_PROPERTIES_TABLE, props as usize));
    c.publish_config()?;
    Ok(supported)
}
