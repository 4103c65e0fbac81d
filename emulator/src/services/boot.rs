//! The boot services table: every entry points at a shim of its service area.

use super::drivers::*;
use super::events::*;
use super::handles::*;
use super::image::*;
use super::memory::*;
use super::misc::*;
use super::*;

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
        load_image: load_image::entry,
        start_image: start_image::entry,
        exit: exit::entry,
        unload_image: unload_image::entry,
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
    let p = publish(c, efi::BOOT_SERVICES_DATA, t)?;
    // SAFETY: the table just published, which nothing else references yet.
    unsafe { seal(&raw mut (*p).hdr) };
    Ok(p)
}
