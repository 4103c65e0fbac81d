//! The next kernel's command line, composed as kexec-tools composes it.

/// Where the words may come from.
pub struct Sources<'a> {
    /// The running kernel's (`/proc/cmdline`), when `--reuse-cmdline` asks for it.
    pub running: Option<&'a str>,
    /// `--append` (or `--command-line`), as given; `Some("")` asks for an empty line.
    pub append: Option<&'a str>,
    /// The device tree's `/chosen/bootargs`: what kexec-tools keeps when told nothing.
    pub bootargs: Option<&'a str>,
    /// The image is a UKI: told nothing, it uses its own `.cmdline`.
    pub uki: bool,
    /// A crash kernel (`-p`): the running kernel's `crashkernel=` does not carry over.
    pub panic: bool,
}

/// The command line, and where it came from (for the message).
pub fn compose(s: &Sources) -> (String, &'static str) {
    let append = s.append.map(|a| a.split_whitespace().collect::<Vec<_>>());
    if let Some(running) = s.running {
        // What the running kernel's boot loader added describes that boot, not the next; a crash
        // kernel must not reserve a crash region of its own.
        let stale = |w: &&str| w.starts_with("BOOT_IMAGE=") || w.starts_with("initrd=") || (s.panic && w.starts_with("crashkernel="));
        let kept = running.split_whitespace().filter(|w| !stale(w));
        let words: Vec<&str> = kept.chain(append.into_iter().flatten()).collect();
        return (words.join(" "), "the running kernel's, reused");
    }
    match (append, s.uki, s.bootargs) {
        (Some(words), ..) => (words.join(" "), "--append"),
        (None, true, _) => (String::new(), "none given: the UKI's own .cmdline applies"),
        (None, false, Some(b)) => (b.split_whitespace().collect::<Vec<_>>().join(" "), "none given: the device tree's bootargs, as kexec-tools keeps them"),
        (None, false, None) => (String::new(), "none given, and the device tree has no bootargs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(running: Option<&str>, append: Option<&str>, uki: bool, panic: bool) -> String {
        compose(&Sources { running, append, bootargs: Some("console=ttyAMA0  root=/dev/vda"), uki, panic }).0
    }

    #[test]
    fn told_nothing_the_running_bootargs_carry_over_except_for_a_uki() {
        assert_eq!(line(None, None, false, false), "console=ttyAMA0 root=/dev/vda", "kexec-tools keeps /chosen/bootargs");
        assert_eq!(line(None, None, true, false), "", "a UKI uses its own .cmdline");
        assert_eq!(line(None, Some(""), false, false), "", "--append= asks for an empty line");
        assert_eq!(line(None, Some("quiet  ro"), false, false), "quiet ro");
        assert_eq!(compose(&Sources { running: None, append: None, bootargs: None, uki: false, panic: false }).0, "");
    }

    #[test]
    fn a_reused_line_loses_the_boot_loaders_words_and_for_a_crash_kernel_crashkernel() {
        let running = "BOOT_IMAGE=/vmlinuz initrd=\\initrd.img root=/dev/vda crashkernel=256M,high crashkernel=64M,low quiet\n";
        assert_eq!(line(Some(running), Some("irqpoll"), false, false), "root=/dev/vda crashkernel=256M,high crashkernel=64M,low quiet irqpoll");
        assert_eq!(line(Some(running), Some("irqpoll nr_cpus=1"), false, true), "root=/dev/vda quiet irqpoll nr_cpus=1");
    }
}
