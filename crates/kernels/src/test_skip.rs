//! Tests that cannot run on this machine say so in one place, for the whole workspace.
//!
//! `cargo test` captures what a passing test prints, so a test that returns early looks like
//! any other pass. [`skip`] appends one line per skip to a log ([`log_path`]) that `make test`
//! resets and summarises at the end (`scripts/test-summary.sh`), and prints it to stderr too.
//!
//! Under `CI=true` a skip whose cause the machine could remove (a data set or a tool that
//! `make test` fetches, a folder it cannot make read-only) fails the test with the reason
//! instead: only the machine's hardware (no GPU, no AVX-512) may leave a test unrun there.
//!
//! Not part of the library's API: the workspace's tests use it.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

/// Why a test cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No usable GPU: expected on most machines, CI included. A skip everywhere.
    NoGpu(String),
    /// The hardware has something the test needs absent, or lacks an instruction set
    /// (a GPU present, no AVX-512). A skip everywhere.
    Hardware(String),
    /// A data set is absent; `make data` fetches it. A failure under CI.
    DataAbsent(String),
    /// NVRTC or ptxas is absent; `make cuda-tools` installs them. A failure under CI.
    ToolsAbsent(String),
    /// The machine does not provide a condition the test sets up (a folder it cannot
    /// write to, ...). A failure under CI.
    Unprovided(String),
}

impl Reason {
    /// The category as the skip log and the summary name it.
    pub fn category(&self) -> &'static str {
        match self {
            Reason::NoGpu(_) => "no GPU",
            Reason::Hardware(_) => "hardware",
            Reason::DataAbsent(_) => "dataset absent",
            Reason::ToolsAbsent(_) => "CUDA tools absent",
            Reason::Unprovided(_) => "machine cannot provide",
        }
    }

    /// True when the cause lies in the hardware, so a skip is expected even under CI.
    pub fn expected_under_ci(&self) -> bool {
        matches!(self, Reason::NoGpu(_) | Reason::Hardware(_))
    }

    fn text(&self) -> &str {
        match self {
            Reason::NoGpu(t)
            | Reason::Hardware(t)
            | Reason::DataAbsent(t)
            | Reason::ToolsAbsent(t)
            | Reason::Unprovided(t) => t,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.category(), self.text())
    }
}

/// True under `CI=true` (or `CI=1`), as CI systems and `.ci/run` set it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The skip log: `$STRATA_SKIP_LOG`, else `test-skips.log` in `$CARGO_TARGET_DIR`, else in the
/// workspace's `target/`.
pub fn log_path() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATA_SKIP_LOG") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    target.join("test-skips.log")
}

/// Records that the running test skips its checks for `reason`, or, under CI with a reason the
/// machine could remove, fails the test with it. The caller returns right after.
///
/// The test is named `<test binary>::<test path>`, from the executable and the thread libtest
/// runs the test on.
#[track_caller]
pub fn skip(reason: Reason) {
    let test = current_test();
    if ci() && !reason.expected_under_ci() {
        panic!("{test}: CI=true and this must not be skipped: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
    // Fields as scripts/test-summary.sh reads them.
    let line = format!(
        "{}\t{}\t{}\t{}\n",
        one_line(&test),
        reason.category(),
        if reason.expected_under_ci() {
            "allowed"
        } else {
            "fails"
        },
        one_line(reason.text())
    );
    let path = log_path();
    // One write per line on an append-mode file: parallel tests do not interleave lines.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot record the skip of {test} in {}: {e}",
            path.display()
        );
    }
}

/// `<binary>::<test>`: the executable's name without cargo's `-<hash>`, and the thread's name.
fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_owned(),
            _ => s,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_is_expected_under_ci_and_what_make_test_provides_is_not() {
        // A table that let a missing data set or tool skip under CI would hide exactly the
        // tests CI exists to run.
        assert!(Reason::NoGpu("x".into()).expected_under_ci());
        assert!(Reason::Hardware("x".into()).expected_under_ci());
        assert!(!Reason::DataAbsent("x".into()).expected_under_ci());
        assert!(!Reason::ToolsAbsent("x".into()).expected_under_ci());
        assert!(!Reason::Unprovided("x".into()).expected_under_ci());
    }

    #[test]
    fn the_test_is_named_by_binary_and_thread() {
        // libtest runs each test on a thread named after it; a name from anywhere else (the
        // main thread, a hash left on the binary) would not say which test skipped.
        let name = current_test();
        assert!(
            name.ends_with("::test_skip::tests::the_test_is_named_by_binary_and_thread"),
            "{name}"
        );
        assert!(name.starts_with("strata_kernels::"), "{name}");
    }

    #[test]
    fn log_fields_stay_on_one_line() {
        assert_eq!(one_line("a\tb\nc\r"), "a b c ");
    }
}
