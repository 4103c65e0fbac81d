//! The handle database: protocols installed on handles, and who opened them.

use super::EfiError;
use alloc::vec::Vec;
use r_efi::efi::Guid;

/// A handle as payloads see it: an opaque, non-NULL value.
pub type Handle = usize;

/// First handle value; handles step by 0x10 so that none is NULL or looks like a small integer.
const FIRST_HANDLE: Handle = 0xe1f0_0010;

use r_efi::efi::{
    OPEN_PROTOCOL_BY_CHILD_CONTROLLER as OPEN_BY_CHILD_CONTROLLER, OPEN_PROTOCOL_BY_DRIVER as OPEN_BY_DRIVER, OPEN_PROTOCOL_BY_HANDLE_PROTOCOL as OPEN_BY_HANDLE_PROTOCOL,
    OPEN_PROTOCOL_EXCLUSIVE as OPEN_EXCLUSIVE, OPEN_PROTOCOL_GET_PROTOCOL as OPEN_GET_PROTOCOL, OPEN_PROTOCOL_TEST_PROTOCOL as OPEN_TEST_PROTOCOL,
};

/// `EFI_OPEN_PROTOCOL_INFORMATION_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenInfo {
    pub agent: Handle,
    pub controller: Handle,
    pub attributes: u32,
    pub open_count: u32,
}

#[derive(Debug)]
struct Installed {
    guid: Guid,
    interface: usize,
    opens: Vec<OpenInfo>,
}

#[derive(Debug)]
struct Entry {
    handle: Handle,
    protocols: Vec<Installed>,
}

/// A RegisterProtocolNotify registration: the handles that got `guid` since, not yet handed out.
#[derive(Debug)]
struct Registration {
    key: usize,
    guid: Guid,
    event: usize,
    pending: Vec<Handle>,
}

#[derive(Debug)]
pub struct HandleDb {
    entries: Vec<Entry>,
    next: Handle,
    registrations: Vec<Registration>,
    next_key: usize,
    /// Events of registrations whose protocol was just installed: the caller signals them.
    to_signal: Vec<usize>,
}

impl Default for HandleDb {
    fn default() -> Self {
        HandleDb { entries: Vec::new(), next: FIRST_HANDLE, registrations: Vec::new(), next_key: FIRST_REGISTRATION, to_signal: Vec::new() }
    }
}

/// First registration key; like handles, opaque and never NULL.
const FIRST_REGISTRATION: usize = 0xe2e0_0010;

/// LocateHandle's search.
#[derive(Clone, Copy, Debug)]
pub enum Search<'a> {
    AllHandles,
    ByProtocol(&'a Guid),
}

impl HandleDb {
    fn entry(&self, h: Handle) -> Result<&Entry, EfiError> {
        self.entries.iter().find(|e| e.handle == h).ok_or(EfiError::InvalidParameter)
    }
    fn entry_mut(&mut self, h: Handle) -> Result<&mut Entry, EfiError> {
        self.entries.iter_mut().find(|e| e.handle == h).ok_or(EfiError::InvalidParameter)
    }

    pub fn is_handle(&self, h: Handle) -> bool {
        self.entries.iter().any(|e| e.handle == h)
    }

    /// InstallProtocolInterface: onto `handle`, or a new handle when `None`.
    pub fn install(&mut self, handle: Option<Handle>, guid: &Guid, interface: usize) -> Result<Handle, EfiError> {
        let h = match handle {
            Some(h) => {
                let e = self.entry_mut(h)?;
                if e.protocols.iter().any(|p| p.guid == *guid) {
                    return Err(EfiError::InvalidParameter);
                }
                e.protocols.try_reserve(1).map_err(|_| EfiError::OutOfResources)?;
                e.protocols.push(Installed { guid: *guid, interface, opens: Vec::new() });
                h
            }
            None => {
                self.entries.try_reserve(1).map_err(|_| EfiError::OutOfResources)?;
                let h = self.next;
                self.next += 0x10;
                self.entries.push(Entry { handle: h, protocols: alloc::vec![Installed { guid: *guid, interface, opens: Vec::new() }] });
                h
            }
        };
        self.installed(h, guid);
        Ok(h)
    }

    /// Tells the registrations for `guid` that `handle` has it now.
    fn installed(&mut self, handle: Handle, guid: &Guid) {
        for r in self.registrations.iter_mut().filter(|r| r.guid == *guid) {
            if !r.pending.contains(&handle) {
                r.pending.push(handle);
            }
            self.to_signal.push(r.event);
        }
    }

    /// RegisterProtocolNotify: a key for LocateHandle(ByRegisterNotify) and LocateProtocol.
    pub fn register_notify(&mut self, guid: &Guid, event: usize) -> usize {
        let key = self.next_key;
        self.next_key += 0x10;
        self.registrations.push(Registration { key, guid: *guid, event, pending: Vec::new() });
        key
    }

    /// CloseEvent: its registrations go too.
    pub fn unregister_event(&mut self, event: usize) {
        self.registrations.retain(|r| r.event != event);
    }

    /// The events to signal for installs since the last call.
    pub fn take_signals(&mut self) -> Vec<usize> {
        core::mem::take(&mut self.to_signal)
    }

    /// The next handle that got the registration's protocol (LocateHandle ByRegisterNotify):
    /// one a call, `NotFound` when there is none, `InvalidParameter` for an unknown key.
    pub fn next_registered(&mut self, key: usize) -> Result<Handle, EfiError> {
        let r = self.registrations.iter_mut().find(|r| r.key == key).ok_or(EfiError::InvalidParameter)?;
        // Handles that lost the protocol since are skipped.
        while !r.pending.is_empty() {
            let h = r.pending.remove(0);
            let still = self.entries.iter().any(|e| e.handle == h && e.protocols.iter().any(|p| p.guid == r.guid));
            if still {
                return Ok(h);
            }
        }
        Err(EfiError::NotFound)
    }

    /// The GUID a registration watches.
    pub fn registered_guid(&self, key: usize) -> Option<Guid> {
        self.registrations.iter().find(|r| r.key == key).map(|r| r.guid)
    }

    /// UninstallProtocolInterface. A handle left without protocols disappears.
    pub fn uninstall(&mut self, handle: Handle, guid: &Guid, interface: usize) -> Result<(), EfiError> {
        let e = self.entry_mut(handle).map_err(|_| EfiError::NotFound)?;
        let i = e.protocols.iter().position(|p| p.guid == *guid && p.interface == interface).ok_or(EfiError::NotFound)?;
        // Still held (the caller disconnected what it could): EDK2 refuses too. Passive opens
        // go with the protocol.
        if e.protocols[i].opens.iter().any(|o| o.attributes & (OPEN_BY_DRIVER | OPEN_EXCLUSIVE | OPEN_BY_CHILD_CONTROLLER) != 0) {
            return Err(EfiError::AccessDenied);
        }
        e.protocols.remove(i);
        if e.protocols.is_empty() {
            self.entries.retain(|e| e.handle != handle);
        }
        Ok(())
    }

    /// ReinstallProtocolInterface.
    pub fn reinstall(&mut self, handle: Handle, guid: &Guid, old: usize, new: usize) -> Result<(), EfiError> {
        let e = self.entry_mut(handle).map_err(|_| EfiError::NotFound)?;
        let p = e.protocols.iter_mut().find(|p| p.guid == *guid && p.interface == old).ok_or(EfiError::NotFound)?;
        p.interface = new;
        self.installed(handle, guid);
        Ok(())
    }

    /// HandleProtocol: the interface, or `Unsupported` when the handle lacks the protocol.
    pub fn get(&self, handle: Handle, guid: &Guid) -> Result<usize, EfiError> {
        let e = self.entry(handle)?;
        e.protocols.iter().find(|p| p.guid == *guid).map(|p| p.interface).ok_or(EfiError::Unsupported)
    }

    /// LocateHandle: matching handles, in installation order (`NotFound` when none).
    pub fn locate(&self, search: Search) -> Result<Vec<Handle>, EfiError> {
        let v: Vec<Handle> = self
            .entries
            .iter()
            .filter(|e| match search {
                Search::AllHandles => true,
                Search::ByProtocol(g) => e.protocols.iter().any(|p| p.guid == *g),
            })
            .map(|e| e.handle)
            .collect();
        if v.is_empty() {
            Err(EfiError::NotFound)
        } else {
            Ok(v)
        }
    }

    /// LocateProtocol: the first interface of `guid` (`NotFound` when none).
    pub fn locate_protocol(&self, guid: &Guid) -> Result<usize, EfiError> {
        self.entries.iter().find_map(|e| e.protocols.iter().find(|p| p.guid == *guid)).map(|p| p.interface).ok_or(EfiError::NotFound)
    }

    /// ProtocolsPerHandle.
    pub fn protocols(&self, handle: Handle) -> Result<Vec<Guid>, EfiError> {
        Ok(self.entry(handle)?.protocols.iter().map(|p| p.guid).collect())
    }

    /// OpenProtocol: the interface (NULL for TEST_PROTOCOL), recording the open.
    pub fn open(&mut self, handle: Handle, guid: &Guid, agent: Handle, controller: Handle, attributes: u32) -> Result<usize, EfiError> {
        let valid = matches!(attributes, OPEN_BY_HANDLE_PROTOCOL | OPEN_GET_PROTOCOL | OPEN_TEST_PROTOCOL | OPEN_BY_CHILD_CONTROLLER | OPEN_BY_DRIVER | OPEN_EXCLUSIVE)
            || attributes == OPEN_BY_DRIVER | OPEN_EXCLUSIVE;
        if !valid {
            return Err(EfiError::InvalidParameter);
        }
        let needs_agent = attributes & (OPEN_BY_CHILD_CONTROLLER | OPEN_BY_DRIVER | OPEN_EXCLUSIVE) != 0;
        if needs_agent && !self.is_handle(agent) {
            return Err(EfiError::InvalidParameter);
        }
        if attributes & (OPEN_BY_CHILD_CONTROLLER | OPEN_BY_DRIVER) != 0 && !self.is_handle(controller) {
            return Err(EfiError::InvalidParameter);
        }
        // UEFI 2.10: a child controller is another handle than its parent.
        if attributes == OPEN_BY_CHILD_CONTROLLER && handle == controller {
            return Err(EfiError::InvalidParameter);
        }
        let e = self.entry_mut(handle)?;
        let p = e.protocols.iter_mut().find(|p| p.guid == *guid).ok_or(EfiError::Unsupported)?;
        // Held BY_DRIVER or EXCLUSIVE: the same driver asking again is told ALREADY_STARTED;
        // anyone else is refused. (An EXCLUSIVE request first has the BY_DRIVER holders
        // disconnected, by the caller: `drivers_holding`.) EXCLUSIVE alone never restarts.
        if attributes & (OPEN_BY_DRIVER | OPEN_EXCLUSIVE) != 0 {
            if let Some(o) = p.opens.iter().find(|o| o.attributes & (OPEN_BY_DRIVER | OPEN_EXCLUSIVE) != 0) {
                let restart = o.agent == agent && attributes & OPEN_BY_DRIVER != 0 && o.attributes & OPEN_BY_DRIVER != 0;
                return Err(if restart { EfiError::AlreadyStarted } else { EfiError::AccessDenied });
            }
        }
        if attributes != OPEN_TEST_PROTOCOL || needs_agent {
            match p.opens.iter_mut().find(|o| o.agent == agent && o.controller == controller && o.attributes == attributes) {
                Some(o) => o.open_count += 1,
                None => p.opens.push(OpenInfo { agent, controller, attributes, open_count: 1 }),
            }
        }
        Ok(if attributes == OPEN_TEST_PROTOCOL { 0 } else { p.interface })
    }

    /// CloseProtocol.
    pub fn close(&mut self, handle: Handle, guid: &Guid, agent: Handle, controller: Handle) -> Result<(), EfiError> {
        if !self.is_handle(agent) || (controller != 0 && !self.is_handle(controller)) {
            return Err(EfiError::InvalidParameter);
        }
        let e = self.entry_mut(handle)?;
        let p = e.protocols.iter_mut().find(|p| p.guid == *guid).ok_or(EfiError::NotFound)?;
        let before = p.opens.len();
        p.opens.retain(|o| !(o.agent == agent && o.controller == controller));
        if p.opens.len() == before {
            Err(EfiError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Distinct handles `pick` takes from the opens of `handle`'s protocols (of `guid` alone
    /// when given), in the order of the opens.
    fn handles_in_opens(&self, handle: Handle, guid: Option<&Guid>, pick: &dyn Fn(&OpenInfo) -> Option<Handle>) -> Vec<Handle> {
        let protocols = self.entry(handle).map(|e| e.protocols.as_slice()).unwrap_or(&[]);
        let mut out = Vec::new();
        for o in protocols.iter().filter(|p| guid.is_none_or(|g| p.guid == *g)).flat_map(|p| &p.opens) {
            match pick(o) {
                Some(h) if !out.contains(&h) => out.push(h),
                _ => {}
            }
        }
        out
    }

    /// The drivers managing `controller`: agents that opened one of its protocols BY_DRIVER.
    pub fn drivers_of(&self, controller: Handle) -> Vec<Handle> {
        self.handles_in_opens(controller, None, &|o| (o.attributes & OPEN_BY_DRIVER != 0).then_some(o.agent))
    }

    /// The agents holding `guid` on `handle` BY_DRIVER (what an EXCLUSIVE open or an uninstall
    /// must disconnect first).
    pub fn drivers_holding(&self, handle: Handle, guid: &Guid) -> Vec<Handle> {
        self.handles_in_opens(handle, Some(guid), &|o| (o.attributes & OPEN_BY_DRIVER != 0).then_some(o.agent))
    }

    /// The children `driver` (any driver, for `None`) made of `controller`: the handles named
    /// when the controller's protocols were opened BY_CHILD_CONTROLLER.
    pub fn children_of(&self, controller: Handle, driver: Option<Handle>) -> Vec<Handle> {
        self.handles_in_opens(controller, None, &|o| {
            (driver.is_none_or(|d| o.agent == d) && o.attributes & OPEN_BY_CHILD_CONTROLLER != 0 && self.is_handle(o.controller)).then_some(o.controller)
        })
    }

    /// Drops every open `agent` holds (an image that is unloaded, as EDK2 closes them).
    pub fn close_all_of(&mut self, agent: Handle) {
        for p in self.entries.iter_mut().flat_map(|e| e.protocols.iter_mut()) {
            p.opens.retain(|o| o.agent != agent);
        }
    }

    /// Drops the opens of `guid` on `handle` that do not hold it (GET_PROTOCOL,
    /// BY_HANDLE_PROTOCOL, TEST_PROTOCOL): an uninstall takes them along.
    pub fn close_passive_opens(&mut self, handle: Handle, guid: &Guid) {
        if let Ok(e) = self.entry_mut(handle) {
            for p in e.protocols.iter_mut().filter(|p| p.guid == *guid) {
                p.opens.retain(|o| o.attributes & (OPEN_BY_DRIVER | OPEN_EXCLUSIVE | OPEN_BY_CHILD_CONTROLLER) != 0);
            }
        }
    }

    /// OpenProtocolInformation.
    pub fn open_information(&self, handle: Handle, guid: &Guid) -> Result<Vec<OpenInfo>, EfiError> {
        let e = self.entry(handle).map_err(|_| EfiError::NotFound)?;
        let p = e.protocols.iter().find(|p| p.guid == *guid).ok_or(EfiError::NotFound)?;
        Ok(p.opens.clone())
    }

    /// Every (handle, interface) with `guid`.
    pub fn with_protocol<'a>(&'a self, guid: &'a Guid) -> impl Iterator<Item = (Handle, usize)> + 'a {
        self.entries.iter().filter_map(move |e| e.protocols.iter().find(|p| p.guid == *guid).map(|p| (e.handle, p.interface)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Guid = Guid::from_fields(1, 2, 3, 4, 5, &[6, 7, 8, 9, 10, 11]);
    const B: Guid = Guid::from_fields(2, 2, 3, 4, 5, &[6, 7, 8, 9, 10, 11]);

    #[test]
    fn install_lookup_uninstall() {
        let mut db = HandleDb::default();
        let h = db.install(None, &A, 0x1000).unwrap();
        assert_ne!(h, 0);
        assert_eq!(db.install(Some(h), &A, 0x2000), Err(EfiError::InvalidParameter), "twice on one handle");
        db.install(Some(h), &B, 0x3000).unwrap();
        assert_eq!(db.get(h, &B), Ok(0x3000));
        assert_eq!(db.protocols(h).unwrap(), [A, B]);
        let h2 = db.install(None, &B, 0x4000).unwrap();
        assert_eq!(db.locate(Search::ByProtocol(&B)).unwrap(), [h, h2]);
        assert_eq!(db.locate(Search::AllHandles).unwrap().len(), 2);
        assert_eq!(db.locate_protocol(&B), Ok(0x3000));
        assert_eq!(db.uninstall(h, &A, 0x9999), Err(EfiError::NotFound), "wrong interface");
        db.uninstall(h, &A, 0x1000).unwrap();
        assert_eq!(db.get(h, &A), Err(EfiError::Unsupported), "HandleProtocol's status for a missing protocol");
        db.uninstall(h, &B, 0x3000).unwrap();
        assert!(!db.is_handle(h), "an empty handle disappears");
        assert_eq!(db.get(h, &B), Err(EfiError::InvalidParameter));
        db.reinstall(h2, &B, 0x4000, 0x5000).unwrap();
        assert_eq!(db.get(h2, &B), Ok(0x5000));
        db.uninstall(h2, &B, 0x5000).unwrap();
        assert_eq!(db.locate(Search::ByProtocol(&B)), Err(EfiError::NotFound));
        assert_eq!(db.locate_protocol(&A), Err(EfiError::NotFound));
    }

    #[test]
    fn open_close_and_information() {
        let mut db = HandleDb::default();
        let image = db.install(None, &A, 0x1000).unwrap();
        let dev = db.install(None, &B, 0x2000).unwrap();
        assert_eq!(db.open(image, &A, image, 0, OPEN_GET_PROTOCOL), Ok(0x1000));
        assert_eq!(db.open(image, &A, image, 0, OPEN_GET_PROTOCOL), Ok(0x1000));
        assert_eq!(db.open_information(image, &A).unwrap(), [OpenInfo { agent: image, controller: 0, attributes: OPEN_GET_PROTOCOL, open_count: 2 }]);
        assert_eq!(db.open(image, &B, image, 0, OPEN_GET_PROTOCOL), Err(EfiError::Unsupported));
        assert_eq!(db.open(image, &A, image, 0, 0x40), Err(EfiError::InvalidParameter));
        assert_eq!(db.open(image, &A, 0, 0, OPEN_TEST_PROTOCOL), Ok(0));
        assert_eq!(db.open(dev, &B, image, dev, OPEN_BY_DRIVER), Ok(0x2000));
        assert_eq!(db.open(dev, &B, image, dev, OPEN_BY_DRIVER), Err(EfiError::AlreadyStarted));
        assert_eq!(db.open(dev, &B, dev, dev, OPEN_BY_DRIVER), Err(EfiError::AccessDenied));
        assert_eq!(db.open(dev, &B, image, dev, OPEN_BY_CHILD_CONTROLLER), Err(EfiError::InvalidParameter), "a child is not its own parent");
        assert_eq!(db.open(dev, &B, image, image, OPEN_BY_CHILD_CONTROLLER), Ok(0x2000));
        db.close(dev, &B, image, image).unwrap();
        assert_eq!(db.uninstall(dev, &B, 0x2000), Err(EfiError::AccessDenied), "opened by a driver");
        db.close(dev, &B, image, dev).unwrap();
        assert_eq!(db.close(dev, &B, image, dev), Err(EfiError::NotFound));
        db.close(image, &A, image, 0).unwrap();
        assert!(db.open_information(image, &A).unwrap().is_empty());
        assert_eq!(db.close(image, &A, 0x42, 0), Err(EfiError::InvalidParameter));
    }

    /// Who manages a controller, the children it made, what an EXCLUSIVE open or an uninstall
    /// must disconnect, and what an unload or uninstall closes.
    #[test]
    fn driver_model_queries() {
        let mut db = HandleDb::default();
        let (driver, other) = (db.install(None, &A, 1).unwrap(), db.install(None, &A, 2).unwrap());
        let controller = db.install(None, &B, 0x2000).unwrap();
        let child = db.install(None, &A, 3).unwrap();
        assert!(db.drivers_of(controller).is_empty());
        db.open(controller, &B, driver, controller, OPEN_BY_DRIVER).unwrap();
        db.open(controller, &B, driver, child, OPEN_BY_CHILD_CONTROLLER).unwrap();
        db.open(controller, &B, other, 0, OPEN_GET_PROTOCOL).unwrap();
        assert_eq!(db.drivers_of(controller), [driver]);
        assert_eq!(db.drivers_holding(controller, &B), [driver]);
        assert!(db.drivers_holding(controller, &A).is_empty());
        assert_eq!(db.children_of(controller, Some(driver)), [child]);
        assert!(db.children_of(controller, Some(other)).is_empty());
        assert_eq!(db.open(controller, &B, other, 0, OPEN_EXCLUSIVE), Err(EfiError::AccessDenied), "held BY_DRIVER: the caller disconnects first");
        assert_eq!(db.open(controller, &B, driver, 0, OPEN_EXCLUSIVE), Err(EfiError::AccessDenied), "EXCLUSIVE alone never restarts");
        db.close_passive_opens(controller, &B);
        assert_eq!(db.open_information(controller, &B).unwrap().len(), 2, "GET_PROTOCOL dropped, BY_DRIVER and BY_CHILD kept");
        db.close(controller, &B, driver, controller).unwrap();
        assert_eq!(db.uninstall(controller, &B, 0x2000), Err(EfiError::AccessDenied), "a child still holds it");
        db.close_all_of(driver);
        assert!(db.open_information(controller, &B).unwrap().is_empty());
        assert_eq!(db.uninstall(controller, &B, 0x2000), Ok(()));
    }
}
