//! Every product kernel of kernels/*.cu runs in some twin test (`src/<op>/twin_tests.rs`) on
//! the virtual device, counted from launches that ran, not from names in sources.

use super::sources::kernel_names;
use super::twin::SIM_LAUNCH_LOG;
use std::collections::BTreeSet;
use std::process::Command;

/// Every kernel's NVRTC PTX runs on the virtual device (with memcheck, racecheck, initcheck
/// and synccheck) in the twin tests and matches its CPU twin. The twin tests run again in a
/// child process with [`SIM_LAUNCH_LOG`] naming a fresh file, to which each launch that ran to
/// completion appends its kernel's name; every kernel declared in kernels/*.cu must be there.
///
/// The child makes the count deterministic (libtest runs this process's tests in no set
/// order, so a set collected here could miss twin tests not yet run) and honest (a kernel
/// counts only when a twin test executed it: a twin test that is deleted, ignored, or no
/// longer launches its kernel leaves the kernel out and fails this test by name). It costs
/// one more run of the twin tests.
#[test]
fn every_kernel_runs_on_the_virtual_device_against_its_cpu_twin() {
    let launched = twin_launches(SIM_LAUNCH_LOG);
    check_every_kernel("run on cuda-sim (NVRTC's PTX) by the twin tests", &launched);
}

/// Runs this test binary again on the twin tests alone with `log_var` naming a fresh file; the
/// kernel names the launchers appended there.
fn twin_launches(log_var: &str) -> BTreeSet<String> {
    let log = std::env::temp_dir().join(format!(
        "strata-{}-launches-{}.log",
        log_var.to_ascii_lowercase(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let exe = std::env::current_exe().expect("the path of this test binary");
    let child = Command::new(&exe)
        .arg("twin_tests")
        .env(log_var, &log)
        .output()
        .unwrap_or_else(|e| panic!("running {} twin_tests: {e}", exe.display()));
    let launched = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success(),
        "the twin tests failed ({}):\n{stdout}\n{stderr}",
        child.status
    );
    launched.lines().map(str::to_string).collect()
}

fn check_every_kernel(how: &str, launched: &BTreeSet<String>) {
    let declared: Vec<String> = kernel_names().into_iter().flat_map(|(_, k)| k).collect();
    let missing: Vec<&String> = declared.iter().filter(|k| !launched.contains(*k)).collect();
    println!(
        "{} of {} kernels {how}",
        declared.len() - missing.len(),
        declared.len()
    );
    assert!(
        missing.is_empty(),
        "kernels of kernels/*.cu that no twin test {how} to completion: {missing:?}"
    );
}
