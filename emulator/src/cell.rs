//! [`BootCell`]: the mutable global for boot-services state (the core, the variable store, the
//! live page tables, the tick). State that an exception handler or a runtime call from the OS
//! may read while a cell is borrowed is kept in atomics instead, one struct per area
//! (`arch::aarch64::exceptions`, `services::runtime`, `services::diagnostics`), and single flags
//! (the console's UART, PSCI's conduit) are lone atomics beside their code.

use core::cell::RefCell;

/// A global reached only from the one CPU that runs boot and runtime services, never from an
/// interrupt (they are masked). The RefCell turns a re-entrant access (a notify function calling
/// back in while the value is borrowed) into an error instead of a silent corruption.
pub struct BootCell<T>(RefCell<Option<T>>);

// SAFETY: see the type's comment: one CPU, no interrupts, so no two accesses are ever
// concurrent. (Host tests that reach a global serialise themselves, as
// `services::host::machine` does.)
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    pub const fn empty() -> Self {
        BootCell(RefCell::new(None))
    }

    /// Sets the value. Setting it while it is borrowed is the emulator's bug: a panic, which
    /// reports and powers off.
    pub fn set(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }

    /// Runs `f` with the value; `None` when it is not set or already borrowed.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut slot = self.0.try_borrow_mut().ok()?;
        slot.as_mut().map(f)
    }

    /// Whether the value is set and not borrowed.
    pub fn is_free(&self) -> bool {
        self.0.try_borrow().is_ok_and(|s| s.is_some())
    }

    /// Whether the value is borrowed right now (a re-entrant access would fail).
    pub fn is_borrowed(&self) -> bool {
        self.0.try_borrow_mut().is_err()
    }

    /// Takes the value out (`None` when there is none, or it is borrowed right now).
    pub fn clear(&self) -> Option<T> {
        self.0.try_borrow_mut().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reentrant_access_is_refused_not_aliased() {
        let cell: BootCell<u32> = BootCell::empty();
        assert!(!cell.is_free() && cell.with(|v| *v).is_none(), "empty");
        cell.set(7);
        assert_eq!(cell.with(|v| cell.with(|w| *w).is_none() && *v == 7), Some(true), "the inner access gets nothing");
        assert!(cell.with(|_| cell.is_borrowed()).unwrap());
        assert_eq!(cell.with(|_| cell.clear()), Some(None), "no taking it out from under a borrow");
        assert_eq!(cell.clear(), Some(7));
        assert!(!cell.is_free());
    }
}
