//! Task priority, events and timers, and Stall. Timers are polled: they fire when WaitForEvent,
//! CheckEvent or Stall looks at them.

use super::*;
use crate::efi::events::TimerDelay;
use crate::efi::platform::Clock;
use core::ffi::c_void;

/// Whether `e` is signaled (its signal is then taken); a NOTIFY_WAIT event's notify function
/// runs first, so it can signal. Shared by CheckEvent and WaitForEvent.
fn take_signal(e: usize) -> Result<bool, EfiError> {
    if with_core(|c| c.events.check(e))? {
        return Ok(true);
    }
    dispatch();
    Ok(with_core(|c| c.events.take_signal(e)))
}

/// Fires the timers that are due and runs the notify functions due at the current TPL.
pub fn poll_timers() {
    super::misc::check_watchdog();
    with_core(|c| c.events.poll_timers(Machine::ticks()));
    dispatch();
}

/// When a Stall of `microseconds` from `now` ends, in counter ticks: saturating, so that a huge
/// value waits (for ever, as asked) instead of wrapping to a deadline already past.
pub fn stall_deadline(now: u64, microseconds: usize, ticks_per_second: u64) -> u64 {
    let ticks = microseconds as u128 * ticks_per_second as u128 / 1_000_000;
    now.saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// Spins until `ready()` or the `deadline` (counter ticks), whichever comes first; true when
/// ready. Timers and the watchdog are served while it waits, as the tick serves them while a
/// payload runs: a timer due during a long Stall fires in it. After ExitBootServices it only waits.
pub fn wait_until(deadline: u64, mut ready: impl FnMut() -> bool) -> bool {
    let every = Machine::ticks_per_second() / 10_000;
    let mut polled = Machine::ticks();
    loop {
        if ready() {
            return true;
        }
        let now = Machine::ticks();
        if now >= deadline {
            if !exited() {
                poll_timers();
            }
            return false;
        }
        if !exited() && now >= polled.saturating_add(every) {
            poll_timers();
            polled = Machine::ticks();
        }
        core::hint::spin_loop();
    }
}

/// The boot-services tick: an IRQ interrupted payload code below TPL_HIGH_LEVEL (IRQs masked
/// now). Timers and the watchdog are served as when a payload waits in a service; the notify
/// functions that run count as inside a service, so their calls do not unmask.
pub fn timer_tick() {
    if exited() {
        return;
    }
    super::SERVICE_DEPTH.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    poll_timers();
    super::SERVICE_DEPTH.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
}

fn create(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *mut c_void, group: Option<Guid>, event: *mut efi::Event) -> Result<(), EfiError> {
    if event.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    let e = with_core(|c| c.events.create(ty, tpl, notify.map(|f| (f, context as usize)), group))?;
    // SAFETY: `event` is the payload's out-argument.
    unsafe { out(event, e as efi::Event) }
}

efiapi! {
    fn raise_tpl(new: efi::Tpl) -> efi::Tpl {
        if exited() {
            return new;
        }
        with_core(|c| c.events.raise_tpl(new))
    }

    fn restore_tpl(old: efi::Tpl) {
        if !exited() {
            with_core(|c| c.events.restore_tpl(old));
            dispatch();
        }
    }

    fn create_event(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *mut c_void, event: *mut efi::Event) -> Status {
        guarded_growing(|| create(ty, tpl, notify, context, None, event))
    }

    fn create_event_ex(ty: u32, tpl: efi::Tpl, notify: Option<efi::EventNotify>, context: *const c_void, group: *const Guid, event: *mut efi::Event) -> Status {
        guarded_growing(|| {
            // SAFETY: an optional GUID argument of the payload.
            let group = if group.is_null() { None } else { Some(unsafe { guid_arg(group)? }) };
            // CreateEventEx forbids the two legacy group types: the group GUID says it.
            if ty == efi::EVT_SIGNAL_EXIT_BOOT_SERVICES || ty == efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE {
                return Err(EfiError::InvalidParameter);
            }
            create(ty, tpl, notify, context as *mut c_void, group, event)
        })
    }

    fn set_timer(event: efi::Event, delay: efi::TimerDelay, trigger: u64) -> Status {
        guarded(|| {
            let delay = match delay {
                efi::TIMER_CANCEL => TimerDelay::Cancel,
                efi::TIMER_PERIODIC => TimerDelay::Periodic,
                efi::TIMER_RELATIVE => TimerDelay::Relative,
                _ => return Err(EfiError::InvalidParameter),
            };
            with_core(|c| c.events.set_timer(event as usize, delay, trigger, Machine::ticks()))
        })
    }

    fn wait_for_event(count: usize, events: *mut efi::Event, index: *mut usize) -> Status {
        guarded(|| {
            if count == 0 || events.is_null() || index.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            if with_core(|c| c.events.tpl()) != efi::TPL_APPLICATION {
                return Err(EfiError::Unsupported);
            }
            // SAFETY: the payload passes `count` events.
            let list = unsafe { core::slice::from_raw_parts(events, count) };
            loop {
                poll_timers();
                for (i, e) in list.iter().enumerate() {
                    // The index names the event that ended the wait, also when it is refused
                    // (a NOTIFY_SIGNAL event cannot be waited for).
                    let signaled = take_signal(*e as usize);
                    if signaled != Ok(false) {
                        // SAFETY: `index` is the payload's out-argument.
                        unsafe { out(index, i)? };
                        return signaled.map(|_| ());
                    }
                }
                core::hint::spin_loop();
            }
        })
    }

    fn signal_event(event: efi::Event) -> Status {
        guarded(|| {
            with_core(|c| c.events.signal(event as usize))?;
            dispatch();
            Ok(())
        })
    }

    fn close_event(event: efi::Event) -> Status {
        guarded(|| {
            with_core(|c| {
                c.handles.unregister_event(event as usize);
                c.events.close(event as usize)
            })
        })
    }

    fn check_event(event: efi::Event) -> Status {
        guarded(|| {
            poll_timers();
            if take_signal(event as usize)? { Ok(()) } else { Err(EfiError::NotReady) }
        })
    }

    fn stall(microseconds: usize) -> Status {
        guarded(|| {
            wait_until(stall_deadline(Machine::ticks(), microseconds, Machine::ticks_per_second()), || false);
            Ok(())
        })
    }
}
