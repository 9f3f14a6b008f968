//! Running the system tools the lab drives (`ip`, `nft`, `cp`), with the command line in every error.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// How long one tool invocation may take before the lab gives up on it.
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

fn describe(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn check(program: &str, args: &[&str], out: Output) -> anyhow::Result<String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    bail!(
        "`{}` failed ({}): {}",
        describe(program, args),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Runs a tool and returns its stdout; fails with the command line and stderr if it exits non-zero.
/// Blocking: for setup code outside the async runtime and for `Drop`.
pub(crate) fn run_sync(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_sync_input(program, args, None)
}

/// Like [`run_sync`], writing `input` to the tool's stdin.
pub(crate) fn run_sync_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", describe(program, args)))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .with_context(|| format!("writing stdin of `{}`", describe(program, args)))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{}`", describe(program, args)))?;
    check(program, args, out)
}

/// Async form of [`run_sync`], with [`TOOL_TIMEOUT`].
pub(crate) async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_input(program, args, None).await
}

/// Async form of [`run_sync_input`], with [`TOOL_TIMEOUT`].
pub(crate) async fn run_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> anyhow::Result<String> {
    run_env_input(program, args, &[], input).await
}

/// Like [`run`], with extra environment variables.
pub(crate) async fn run_env(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<String> {
    run_env_input(program, args, env, None).await
}

async fn run_env_input(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    input: Option<&str>,
) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run `{}`", describe(program, args)))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .with_context(|| format!("writing stdin of `{}`", describe(program, args)))?;
    }
    let out = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| {
            format!(
                "`{}` took longer than {TOOL_TIMEOUT:?}",
                describe(program, args)
            )
        })?
        .with_context(|| format!("waiting for `{}`", describe(program, args)))?;
    check(program, args, out)
}

/// Finds an executable in PATH or in the sbin directories (which a non-login root shell may lack in PATH).
pub(crate) fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(std::path::PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
