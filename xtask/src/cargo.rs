//! The one way xtask runs cargo: a typed builder for `cargo [+toolchain] SUBCOMMAND ARGS`, run
//! from the workspace root unless told otherwise, that gives a [`std::process::Command`].

use crate::paths;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which cargo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// The cargo that runs xtask (`$CARGO`; `cargo` on the PATH outside cargo).
    Current,
    /// `cargo` on the PATH: rustup's proxy, with the toolchain it picks by default.
    RustupDefault,
    /// `cargo +nightly` through rustup's proxy (Miri, cargo-fuzz).
    Nightly,
}

/// `cargo SUBCOMMAND ARGS`, built up like a [`Command`]: `Cargo::new("build").release()
/// .package("efi-kexec").target(TARGET).env("K", v).command()`.
#[derive(Clone, Debug)]
pub struct Cargo {
    toolchain: Toolchain,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// `None`: xtask's own working directory.
    dir: Option<PathBuf>,
}

impl Cargo {
    /// `cargo SUBCOMMAND` (or a first argument such as `--version`) with [`Toolchain::Current`],
    /// in the workspace root.
    pub fn new(subcommand: &str) -> Cargo {
        Cargo { toolchain: Toolchain::Current, args: vec![subcommand.into()], env: Vec::new(), dir: Some(paths::root()) }
    }

    pub fn toolchain(&mut self, toolchain: Toolchain) -> &mut Cargo {
        self.toolchain = toolchain;
        self
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Cargo {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Cargo {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// `--release`.
    pub fn release(&mut self) -> &mut Cargo {
        self.arg("--release")
    }

    /// `--quiet`.
    pub fn quiet(&mut self) -> &mut Cargo {
        self.arg("--quiet")
    }

    /// `-p PACKAGE`.
    pub fn package(&mut self, package: &str) -> &mut Cargo {
        self.args(["-p", package])
    }

    /// `--target TARGET`.
    pub fn target(&mut self, target: &str) -> &mut Cargo {
        self.args(["--target", target])
    }

    /// `--features FEATURES`.
    pub fn features(&mut self, features: &str) -> &mut Cargo {
        self.args(["--features", features])
    }

    /// An environment variable for cargo and what it runs.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Cargo {
        self.env.push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Runs in `dir` instead of the workspace root.
    pub fn dir(&mut self, dir: &Path) -> &mut Cargo {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Runs in xtask's own working directory (tool probes and installs outside the workspace).
    pub fn caller_dir(&mut self) -> &mut Cargo {
        self.dir = None;
        self
    }

    /// The command, ready to run.
    pub fn command(&self) -> Command {
        let mut cmd = match self.toolchain {
            Toolchain::Current => Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())),
            Toolchain::RustupDefault => Command::new("cargo"),
            Toolchain::Nightly => {
                let mut c = Command::new("cargo");
                c.arg("+nightly");
                c
            }
        };
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }
}
