//! Running host programs: a failure names the command line (and, for captured output, its
//! standard error).

/// Runs a command, failing with its command line when it fails.
pub fn run_checked(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd.status().map_err(|e| anyhow::anyhow!("cannot start {:?}: {e}", cmd.get_program()))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn output_checked(cmd: &mut std::process::Command) -> anyhow::Result<String> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot start {:?}: {e}", cmd.get_program()))?;
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
