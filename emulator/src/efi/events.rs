//! Events, timers and task priority levels, with the dispatch rules of UEFI 2.10 section 7.1:
//! a signaled NOTIFY_SIGNAL event (or a checked NOTIFY_WAIT event) queues its notify function,
//! which runs once the task priority drops below the event's NotifyTpl, highest NotifyTpl first,
//! with the TPL raised to it while it runs. A NOTIFY_SIGNAL event's signal is consumed by its
//! notification (as EDK2 resets the signal count before it notifies), so it notifies again the
//! next time it is signaled. Time comes from the caller (counter ticks).
//!
//! Notify functions are never called from here: [`Events::next_due`] hands out the next one, and
//! the service layer calls it once it has let go of the core (it may call back into it).

use super::EfiError;
use alloc::vec::Vec;
use efi::{TPL_APPLICATION, TPL_HIGH_LEVEL};
use r_efi::efi::{self, Guid};

pub type Event = usize;
const FIRST_EVENT: Event = 0xe7e0_0010;

/// A notify function to call, its context, and the TPL it runs at.
#[derive(Clone, Copy, Debug)]
pub struct Notify {
    pub event: Event,
    pub function: efi::EventNotify,
    pub context: usize,
    pub tpl: usize,
}

impl PartialEq for Notify {
    fn eq(&self, o: &Self) -> bool {
        self.event == o.event && self.context == o.context && self.tpl == o.tpl && core::ptr::fn_addr_eq(self.function, o.function)
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
    tpl: usize,
    notify: Option<(efi::EventNotify, usize)>,
    group: Option<Guid>,
    signaled: bool,
    /// Its notify function waits to be called.
    queued: bool,
    /// (deadline, period) in ticks; period 0 is one-shot.
    timer: Option<(u64, u64)>,
}

impl EventData {
    fn notify_signal(&self) -> bool {
        self.ty & efi::EVT_NOTIFY_SIGNAL != 0
    }
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
        // A notify function runs above TPL_APPLICATION and below TPL_HIGH_LEVEL (EDK2's rule).
        if (wait || signal) && (notify.is_none() || tpl <= TPL_APPLICATION || tpl >= TPL_HIGH_LEVEL) {
            return Err(EfiError::InvalidParameter);
        }
        let group = match ty {
            efi::EVT_SIGNAL_EXIT_BOOT_SERVICES => Some(efi::EVENT_GROUP_EXIT_BOOT_SERVICES),
            efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE => Some(efi::EVENT_GROUP_VIRTUAL_ADDRESS_CHANGE),
            _ => group,
        };
        if group.is_some() && wait {
            return Err(EfiError::InvalidParameter);
        }
        self.events.try_reserve(1).map_err(|_| EfiError::OutOfResources)?;
        let id = self.next;
        self.next += 0x10;
        let notify = if wait || signal { notify } else { None };
        self.events.push((id, EventData { ty, tpl, notify, group, signaled: false, queued: false, timer: None }));
        Ok(id)
    }

    /// CloseEvent: a queued notification goes with it.
    pub fn close(&mut self, e: Event) -> Result<(), EfiError> {
        let before = self.events.len();
        self.events.retain(|(id, _)| *id != e);
        if self.events.len() == before {
            Err(EfiError::InvalidParameter)
        } else {
            Ok(())
        }
    }

    /// SignalEvent: the event, or every event of its group. NOTIFY_SIGNAL members queue their
    /// notify function (once, however often they are signaled before it runs).
    pub fn signal(&mut self, e: Event) -> Result<(), EfiError> {
        let group = self.data(e)?.group;
        for (id, d) in self.events.iter_mut() {
            let member = *id == e || (group.is_some() && d.group == group);
            if member && !d.signaled {
                d.signaled = true;
                if d.notify_signal() {
                    d.queued = true;
                }
            }
        }
        Ok(())
    }

    /// Signals every event of `group` (ExitBootServices), even if no member was named.
    pub fn signal_group(&mut self, group: &Guid) {
        let first = self.events.iter().find(|(_, d)| d.group.as_ref() == Some(group)).map(|(id, _)| *id);
        if let Some(e) = first {
            let _ = self.signal(e);
        }
    }

    /// The notify functions of `group`'s NOTIFY_SIGNAL members, in the order they were created:
    /// for the groups signalled where the core is gone (VIRTUAL_ADDRESS_CHANGE, at runtime).
    pub fn group_notifies<'a>(&'a self, group: &'a Guid) -> impl Iterator<Item = Notify> + 'a {
        self.events.iter().filter(|(_, d)| d.group.as_ref() == Some(group) && d.notify_signal()).filter_map(|(id, d)| {
            let (function, context) = d.notify?;
            Some(Notify { event: *id, function, context, tpl: d.tpl })
        })
    }

    /// CheckEvent: `Ok(true)` (and the signal taken) when signaled. Otherwise `Ok(false)`, and a
    /// NOTIFY_WAIT event's notify function is queued so it can signal; the caller dispatches
    /// it and asks again with [`Events::take_signal`].
    pub fn check(&mut self, e: Event) -> Result<bool, EfiError> {
        let d = self.data(e)?;
        if d.notify_signal() {
            return Err(EfiError::InvalidParameter);
        }
        if d.signaled {
            d.signaled = false;
            return Ok(true);
        }
        if d.ty & efi::EVT_NOTIFY_WAIT != 0 {
            d.queued = true;
        }
        Ok(false)
    }

    /// Takes the signal of `e` if it has one.
    pub fn take_signal(&mut self, e: Event) -> bool {
        self.data(e).map(|d| core::mem::replace(&mut d.signaled, false)).unwrap_or(false)
    }

    /// Whether `e` is signaled, without changing it.
    pub fn is_signaled(&self, e: Event) -> bool {
        self.events.iter().any(|(id, d)| *id == e && d.signaled)
    }

    /// The next notify function to call now: the queued one with the highest NotifyTpl above the
    /// current TPL. A NOTIFY_SIGNAL event's signal goes with it. The caller raises the TPL to
    /// `tpl` around the call (see [`Events::raise_tpl`]).
    pub fn next_due(&mut self) -> Option<Notify> {
        let current = self.tpl;
        let (id, d) = self.events.iter_mut().filter(|(_, d)| d.queued && d.tpl > current).max_by_key(|(id, d)| (d.tpl, usize::MAX - *id))?;
        d.queued = false;
        if d.notify_signal() {
            d.signaled = false;
        }
        let (function, context) = d.notify?;
        Some(Notify { event: *id, function, context, tpl: d.tpl })
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

    /// Signals the timers due at `now`.
    pub fn poll_timers(&mut self, now: u64) {
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
        for e in due {
            let _ = self.signal(e);
        }
    }

    /// Stops every timer (ExitBootServices).
    pub fn cancel_timers(&mut self) {
        for (_, d) in self.events.iter_mut() {
            d.timer = None;
        }
    }

    /// RaiseTPL: the previous level. A request below the current level (which the spec leaves
    /// undefined) keeps the current level.
    pub fn raise_tpl(&mut self, tpl: usize) -> usize {
        let old = self.tpl;
        self.tpl = tpl.clamp(old, TPL_HIGH_LEVEL);
        old
    }

    /// RestoreTPL (the caller then dispatches what is due at the new level).
    pub fn restore_tpl(&mut self, tpl: usize) {
        self.tpl = tpl.min(TPL_HIGH_LEVEL);
    }

    pub fn tpl(&self) -> usize {
        self.tpl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use efi::{TPL_CALLBACK, TPL_NOTIFY};

    extern "efiapi" fn notify(_: efi::Event, _: *mut core::ffi::c_void) {}
    const F: efi::EventNotify = notify;

    fn due(ev: &mut Events) -> Vec<(Event, usize)> {
        core::iter::from_fn(|| ev.next_due()).map(|n| (n.event, n.context)).collect()
    }

    #[test]
    fn create_validates_type_and_notify() {
        let mut ev = Events::new(1_000_000);
        assert_eq!(ev.create(efi::EVT_NOTIFY_WAIT | efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 0)), None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, None, None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_HIGH_LEVEL, Some((F, 0)), None), Err(EfiError::InvalidParameter));
        assert_eq!(ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_APPLICATION, Some((F, 0)), None), Err(EfiError::InvalidParameter), "notify functions run above TPL_APPLICATION");
        assert_eq!(ev.create(0x0100_0000, TPL_CALLBACK, None, None), Err(EfiError::InvalidParameter));
        let e = ev.create(efi::EVT_TIMER, 0, None, None).unwrap();
        ev.close(e).unwrap();
        assert_eq!(ev.close(e), Err(EfiError::InvalidParameter));
    }

    #[test]
    fn signal_check_and_groups() {
        let mut ev = Events::new(1_000_000);
        let plain = ev.create(0, 0, None, None).unwrap();
        assert_eq!(ev.check(plain), Ok(false));
        ev.signal(plain).unwrap();
        assert!(due(&mut ev).is_empty(), "no notify function");
        assert_eq!(ev.check(plain), Ok(true));
        assert_eq!(ev.check(plain), Ok(false), "checking takes the signal");
        let a = ev.create(efi::EVT_SIGNAL_EXIT_BOOT_SERVICES, TPL_NOTIFY, Some((F, 1)), None).unwrap();
        let g = efi::EVENT_GROUP_EXIT_BOOT_SERVICES;
        let b = ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 2)), Some(g)).unwrap();
        assert_eq!(ev.check(a), Err(EfiError::InvalidParameter), "NOTIFY_SIGNAL events cannot be checked");
        ev.signal_group(&g);
        assert_eq!(due(&mut ev), [(a, 1), (b, 2)], "highest NotifyTpl first");
    }

    #[test]
    fn a_notify_signal_event_notifies_every_time_it_is_signaled() {
        let mut ev = Events::new(1_000_000);
        let e = ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 1)), None).unwrap();
        ev.signal(e).unwrap();
        ev.signal(e).unwrap();
        assert_eq!(due(&mut ev), [(e, 1)], "signals before the notification make one");
        ev.signal(e).unwrap();
        assert_eq!(due(&mut ev), [(e, 1)], "and the next signal notifies again");
    }

    #[test]
    fn notifications_wait_for_the_tpl_to_drop_below_their_own() {
        let mut ev = Events::new(1_000_000);
        let cb = ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 1)), None).unwrap();
        let nt = ev.create(efi::EVT_NOTIFY_SIGNAL, TPL_NOTIFY, Some((F, 2)), None).unwrap();
        assert_eq!(ev.raise_tpl(TPL_NOTIFY), TPL_APPLICATION);
        ev.signal(cb).unwrap();
        ev.signal(nt).unwrap();
        assert!(due(&mut ev).is_empty(), "nothing runs at TPL_NOTIFY");
        ev.restore_tpl(TPL_CALLBACK);
        assert_eq!(due(&mut ev), [(nt, 2)]);
        ev.restore_tpl(TPL_APPLICATION);
        assert_eq!(due(&mut ev), [(cb, 1)]);
        ev.signal(cb).unwrap();
        ev.close(cb).unwrap();
        assert!(due(&mut ev).is_empty(), "closing drops the queued notification");
    }

    #[test]
    fn wait_events_ask_their_notify_function() {
        let mut ev = Events::new(1_000_000);
        let key = ev.create(efi::EVT_NOTIFY_WAIT, TPL_NOTIFY, Some((F, 7)), None).unwrap();
        assert_eq!(ev.check(key), Ok(false));
        assert_eq!(due(&mut ev), [(key, 7)]);
        ev.signal(key).unwrap();
        assert!(due(&mut ev).is_empty(), "signaling a NOTIFY_WAIT event queues nothing");
        assert_eq!(ev.check(key), Ok(true));
    }

    #[test]
    fn timers_fire_relative_and_periodic() {
        let mut ev = Events::new(1_000_000); // 1 tick = 1 us
        let one = ev.create(efi::EVT_TIMER, 0, None, None).unwrap();
        let tick = ev.create(efi::EVT_TIMER | efi::EVT_NOTIFY_SIGNAL, TPL_CALLBACK, Some((F, 3)), None).unwrap();
        ev.set_timer(one, TimerDelay::Relative, 10_000, 100).unwrap(); // 1 ms
        ev.set_timer(tick, TimerDelay::Periodic, 5_000, 100).unwrap(); // every 0.5 ms
        ev.poll_timers(599);
        assert!(due(&mut ev).is_empty());
        ev.poll_timers(600);
        assert_eq!(due(&mut ev).len(), 1);
        assert!(!ev.is_signaled(one));
        ev.poll_timers(1100);
        assert!(ev.is_signaled(one));
        assert_eq!(ev.check(one), Ok(true));
        assert_eq!(due(&mut ev).len(), 1, "the periodic timer notifies again, with no reset by hand");
        ev.poll_timers(1700);
        assert_eq!(due(&mut ev).len(), 1, "and again");
        let not_a_timer = ev.create(0, 0, None, None).unwrap();
        assert_eq!(ev.set_timer(not_a_timer, TimerDelay::Relative, 1, 0), Err(EfiError::InvalidParameter));
        ev.cancel_timers();
        ev.poll_timers(1 << 40);
        assert!(due(&mut ev).is_empty());
    }

    #[test]
    fn tpl_raise_and_restore() {
        let mut ev = Events::new(1);
        assert_eq!(ev.raise_tpl(TPL_NOTIFY), TPL_APPLICATION);
        assert_eq!(ev.tpl(), TPL_NOTIFY);
        assert_eq!(ev.raise_tpl(TPL_CALLBACK), TPL_NOTIFY, "a lower level is no raise");
        assert_eq!(ev.tpl(), TPL_NOTIFY);
        ev.restore_tpl(TPL_APPLICATION);
        assert_eq!(ev.tpl(), TPL_APPLICATION);
    }
}
