//! `cargo xtask <command>`: see `cargo xtask --help`. Parses the command line ([`cli`]) and
//! hands each command to the code that does it.

mod cli;
mod commands;

use clap::Parser;
use cli::{Cli, Cmd};
use xtask::gate;
use xtask::harness::setup;

fn main() {
    if let Err(e) = dispatch(Cli::parse().command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(command: Cmd) -> anyhow::Result<()> {
    match command {
        Cmd::Build { verbose } => commands::build(verbose),
        Cmd::Setup => setup::setup(),
        Cmd::Payloads => commands::payloads(),
        Cmd::Run(a) => commands::run(a),
        Cmd::Kexec(a) => commands::kexec(a),
        Cmd::Lint => gate::lint::run(),
        Cmd::Test { host_only } => gate::test::run(host_only),
        Cmd::Fuzz { seconds, target } => commands::fuzz(seconds, target.as_deref()),
        Cmd::Bench { runs, suite, out } => commands::bench(runs, suite, out),
    }
}
