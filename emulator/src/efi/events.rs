//! Events, timers and task priority levels. Time comes from the caller (generic-timer ticks),
//! so this is polled: timers fire when a boot service looks at them.
//!
//! Notify functions are never called from here: operations return the notifications due, and
//! the service layer calls them once it has let go of the core (they may call back into it).

use super::EfiError;
use alloc::vec::Vec;
use r_efi::efi::{self, Guid};

pub type Event = usize;
const FIRST_EVENT: Event = 0xe7e0_0010;

use efi::{TPL_APPLICATION, TPL_CALLBACK, TPL_HIGH_LEVEL, TPL_NOTIFY};

/// A notify function and its context (the service layer calls them).
#[derive(Clone, Copy, Debug)]
pub struct Notify {
    pub event: Event,
    pub function: efi::EventNotify,
    pub context: usize,
}

impl PartialEq for Notify {
    fn eq(&self, o: &Self) -> bool {
        self.event == o.event && self.context == o.context && core::ptr::fn_addr_eq(self.function, o.function)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerDelay {
    Cancel,
    Periodic,
    Relative,
}

#[derive(Debug)]
struct EventData {
    ty: u32,
    notify: Option<(efi::EventNotify, usize)>,
    group: Option<Guid>,
    signaled: bool,
    /// (deadline, period) in ticks; period 0 is one-shot.
    timer: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Events {
    events: Vec<(Event, EventData)>,
    next: Event,
    tpl: usize,
    /// Ticks per second of the clock the caller passes in.
    freq: u64,
}

impl Events {
    pub fn new(freq: u64) -> Self {
        Events { events: Vec::new(), next: FIRST_EVENT, tpl: TPL_APPLICATION, freq: freq.max(1) }
    }

    fn data(&mut self, e: Event) -> Result<&mut EventData, EfiError> {
        self.events.iter_mut().find(|(id, _)| *id == e).map(|(_, d)| d).ok_or(EfiError::InvalidParameter)
    }

    pub fn exists(&self, e: Event) -> bool {
        self.events.iter().any(|(id, _)| *id == e)
    }

    /// CreateEvent(Ex). `notify` is (function, context).
    pub fn create(&mut self, ty: u32, tpl: usize, notify: Option<(efi::EventNotify, usize)>, group: Option<Guid>) -> Result<Event, EfiError> {
        const KNOWN: u32 = efi::EVT_TIMER | efi::EVT_RUNTIME | efi::EVT_NOTIFY_WAIT | efi::EVT_NOTIFY_SIGNAL | 0x0000_0001 | 0x2000_0002;
        if ty & !KNOWN != 0 {
            return Err(EfiError::InvalidParameter);
        }
        let wait = ty & efi::EVT_NOTIFY_WAIT != 0;
        let signal = ty & efi::EVT_NOTIFY_SIGNAL != 0;
        if wait && signal {
            return Err(EfiError::InvalidParameter);
        }
        if (wait || signal) && (notify.is_none() || !matches!(tpl, TPL_APPLICATION | TPL_CALLBACK | TPL_NOTIFY)) {
            return Err(EfiError::InvalidParameter);
        }
        let group = match ty {
            efi::EVT_SIGNAL_EXIT_BOOT_SERVICES => Some(efi::EVENT_GROUP_EXIT_BOOT_SERVICES),
            efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE => Some(efi::EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
            _ => group,
        };
        if group.is_some() && ty & efi::EVT_NOTIFY_WAIT != 0 {
            return Err(EfiError::InvalidParameter);
        }
        let id = self.next;
        self.next += 0x10;
        let notify = if wait || signal { notify } else { None };
        self.events.push((id, EventData { ty, notify, group, signaled: false, timer: None }));
        Ok(id)
    }

    /// CloseEvent.
    pub fn close(&mut self, e: Event) -> Result<(), EfiError> {
        let before = self.events.len();
        self.events.retain(|(id, _)| *id != e);
        if self.events.len() == before {
            Err(EfiError::InvalidParameter)
        } else {
            Ok(())
        }
    }

    /// SignalEvent: the event, or every event of its group. Returns the notifications due.
    pub fn signal(&mut self, e: Event) -> Result<Vec<Notify>, EfiError> {
        let group = self.data(e)?.group;
        let mut due = Vec::new();
        for (id, d) in self.events.iter_mut() {
            let member = *id == e || (group.is_some() && d.group == group);
            if member && !d.signaled {
                d.signaled = true;
                if d.ty & efi::EVT_NOTIFY_SIGNAL != 0 {
                    if let Some((function, context)) = d.notify {
                        due.push(Notify { event: *id, function, context });
                    }
                }
            }
        }
        Ok(due)
    }

    /// Signals every event of `group` (ExitBootServices), even if no member was named.
    pub fn signal_group(&mut self, group: &Guid) -> Vec<Notify> {
        let first = self.events.iter().find(|(_, d)| d.group.as_ref() == Some(group)).map(|(id, _)| *id);
        first.map(|e| self.signal(e).unwrap_or_default()).unwrap_or_default()
    }

    /// CheckEvent: `Ok` (and the event reset) when signaled; `NotReady` otherwise, in which case
    /// a NOTIFY_WAIT event's notify function is due so it can signal.
    pub fn check(&mut self, e: Event) -> Result<Option<Notify>, EfiError> {
        let d = self.data(e)?;
        if d.ty & efi::EVT_NOTIFY_SIGNAL != 0 {
            return Err(EfiError::InvalidParameter);
        }
        if d.signaled {
            d.signaled = false;
            return Ok(None);
        }
        match (d.ty & efi::EVT_NOTIFY_WAIT != 0, d.notify) {
            (true, Some((function, context))) => Ok(Some(Notify { event: e, function, context })),
            _ => Err(EfiError::NotReady),
        }
    }

    /// Whether `e` is signaled, without changing it.
    pub fn is_signaled(&self, e: Event) -> bool {
        self.events.iter().any(|(id, d)| *id == e && d.signaled)
    }

    /// Resets the signal state (after WaitForEvent returns it, the spec resets it).
    pub fn reset(&mut self, e: Event) {
        if let Ok(d) = self.data(e) {
            d.signaled = false;
        }
    }

    /// SetTimer. `trigger` is in 100 ns units; `now` in ticks.
    pub fn set_timer(&mut self, e: Event, delay: TimerDelay, trigger: u64, now: u64) -> Result<(), EfiError> {
        let freq = self.freq;
        let d = self.data(e)?;
        if d.ty & efi::EVT_TIMER == 0 {
            return Err(EfiError::InvalidParameter);
        }
        let ticks = (trigger as u128 * freq as u128 / 10_000_000) as u64;
        d.timer = match delay {
            TimerDelay::Cancel => None,
            TimerDelay::Relative => Some((now.saturating_add(ticks), 0)),
            // A period of 0 means "every tick": fire at every poll.
            TimerDelay::Periodic => Some((now.saturating_add(ticks), ticks.max(1))),
        };
        Ok(())
    }

    /// Fires the timers due at `now`; returns the notifications due.
    pub fn poll_timers(&mut self, now: u64) -> Vec<Notify> {
        let due: Vec<Event> = self
            .events
            .iter_mut()
            .filter_map(|(id, d)| match d.timer {
                Some((deadline, period)) if now >= deadline => {
                    d.timer = if period == 0 { None } else { Some((now + period, period)) };
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        due.into_iter().flat_map(|e| self.signal(e).unwrap_or_default()).collect()
    }

    /// Stops every timer (ExitBootServices).
    pub fn cancel_timers(&mut self) {
        for (_, d) in self.events.iter_mut() {
            d.timer = None;
        }
    }

    /// RaiseTPL: the previous level.
    pub fn raise_tpl(&mut self, tpl: usize) -> usize {
        core::mem::replace(&mut self.tpl, tpl.min(TPL_HIGH_LEVEL))
    }

    /// RestoreTPL.
    pub fn restore_tpl(&mut self, tpl: usize) {
        self.tpl = tpl;
    }

    pub fn tpl(&self) -> usize {
        self.tpl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "efiapi" fn notify(_: efi::Event, _: *mut core::ffi::c_void) {}
    const F: efi::EventNotify = notify;

    #[test]
    fn create_validates_type_and_notify() {
        let mut ev = Events::new(1_000_000);
        assert_eq!(ev.create(efi::EVT_NOTIFY_WAIT | efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 0)), None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, None, None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_HIGH_LEVEL, Some((F, 0)), None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(0x0100_0000, TPL_CALLBACK, None, None), Err(EfiError::InvalidParameter));
        let e = ev.create(efi::EVT_TIMER, 0, None, None).unwrap();
        ev.close(e).unwrap();
        assert_eq!(ev.close(e), Err(EfiError::InvalidParameter));
    }

    #[test]
    fn signal_check_and_groups() {
        let mut ev = Events::new(1_000_000);
        let plain = ev.create(0, 0, None, None).unwrap();
        assert_eq!(ev.check(plain), Err(EfiError::NotReady));
        assert_eq!(ev.signal(plain).unwrap(), []);
        assert_eq!(ev.check(plain), Ok(None));
        assert_eq!(ev.check(plain), Err(EfiError::NotReady), "checking resets");
        let a = ev.create(efi::EVT_SIGNAL_EXIT_BOOT_SERVICES, TPL_NOTIFY, Some((F, 1)), None).unwrap();
        let g = efi::EVENT_GROUP_EXIT_BOOT_SERVICES;
        let b = ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 2)), Some(g)).unwrap();
        assert_eq!(ev.check(a), Err(EfiError::InvalidParameter), "NOTIFY_SIGNAL events cannot be checked");
        let due = ev.signal_group(&g);
        assert_eq!(due, [Notify { event: a, function: F, context: 1 }, Notify { event: b, function: F, context: 2 }]);
        assert!(ev.signal(a).unwrap().is_empty(), "already signaled: no second notification");
    }

    #[test]
    fn wait_events_ask_their_notify_function() {
        let mut ev = Events::new(1_000_000);
        let key = ev.create(efi::EVT_NOTIFY_WAIT, TPL_NOTIFY, Some((F, 7)), None).unwrap();
        assert_eq!(ev.check(key), Ok(Some(Notify { event: key, function: F, context: 7 })));
        ev.signal(key).unwrap();
        assert_eq!(ev.check(key), Ok(None));
    }

    #[test]
    fn timers_fire_relative_and_periodic() {
        let mut ev = Events::new(1_000_000); // 1 tick = 1 us
        let one = ev.create(efi::EVT_TIMER, 0, None, None).unwrap();
        let tick = ev.create(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 3)), None).unwrap();
        ev.set_timer(one, TimerDelay::Relative, 10_000, 100).unwrap(); // 1 ms
        ev.set_timer(tick, TimerDelay::Periodic, 5_000, 100).unwrap(); // every 0.5 ms
        assert!(ev.poll_timers(599).is_empty());
        assert_eq!(ev.poll_timers(600).len(), 1);
        assert!(!ev.is_signaled(one));
        ev.poll_timers(1100);
        assert!(ev.is_signaled(one));
        assert_eq!(ev.check(one), Ok(None));
        ev.reset(tick);
        assert_eq!(ev.poll_timers(1700).len(), 1, "periodic timer fires again");
        let not_a_timer = ev.create(0, 0, None, None).unwrap();
        assert_eq!(ev.set_timer(not_a_timer, TimerDelay::Relative, 1, 0), Err(EfiError::InvalidParameter));
        ev.cancel_timers();
        ev.reset(tick);
        assert!(ev.poll_timers(1 << 40).is_empty());
    }

    #[test]
    fn tpl_raise_and_restore() {
        let mut ev = Events::new(1);
        assert_eq!(ev.raise_tpl(TPL_NOTIFY), TPL_APPLICATION);
        assert_eq!(ev.tpl(), TPL_NOTIFY);
        ev.restore_tpl(TPL_APPLICATION);
        assert_eq!(ev.tpl(), TPL_APPLICATION);
    }
}
