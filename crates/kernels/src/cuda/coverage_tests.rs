//! Every product kernel of kernels/*.cu runs on the emulator in some twin test
//! (`src/<op>/twin_tests.rs`), counted from launches that ran, not from names in sources.

use super::sources::kernel_names;
use std::collections::BTreeSet;
use std::process::Command;

/// Environment variable naming the file the emulator's launchers append completed kernels to
/// (see `strata_emu_record_launch` in kernels/emu/launcher.cpp).
const LAUNCH_LOG: &str = "STRATA_EMU_LAUNCH_LOG";

/// Runs this test binary again, in a child process, on the twin tests alone (the filter
/// `twin_tests`) with [`LAUNCH_LOG`] naming a fresh file; each generated `emu_<kernel>`
/// launcher appends its kernel's name there after a launch that ran to completion. Every
/// kernel declared in kernels/*.cu must be in that file.
///
/// The child makes the count deterministic (libtest runs this process's tests in no set
/// order, so a set collected here could miss twin tests not yet run) and honest (a kernel
/// counts only when a twin test executed it: a twin test that is deleted, ignored, or no
/// longer launches its kernel leaves the kernel out and fails this test by name). It costs
/// one more run of the twin tests.
#[test]
fn every_kernel_is_launched_by_a_twin_test() {
    let log = std::env::temp_dir().join(format!("strata-emu-launches-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let exe = std::env::current_exe().expect("the path of this test binary");
    let child = Command::new(&exe)
        .arg("twin_tests")
        .env(LAUNCH_LOG, &log)
        .output()
        .unwrap_or_else(|e| panic!("running {} twin_tests: {e}", exe.display()));
    let launched = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "the twin tests failed ({}):\n{stdout}",
        child.status
    );
    let launched: BTreeSet<&str> = launched.lines().collect();
    let declared: Vec<String> = kernel_names().into_iter().flat_map(|(_, k)| k).collect();
    let missing: Vec<&String> = declared
        .iter()
        .filter(|k| !launched.contains(k.as_str()))
        .collect();
    println!(
        "{} of {} kernels launched by the twin tests",
        declared.len() - missing.len(),
        declared.len()
    );
    assert!(
        missing.is_empty(),
        "kernels of kernels/*.cu that no twin test launched to completion: {missing:?}"
    );
}
