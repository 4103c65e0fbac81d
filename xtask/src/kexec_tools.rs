//! Placeholder: filled in by the kexec-tools baseline work.
