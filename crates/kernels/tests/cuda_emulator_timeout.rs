//! The emulator's watchdog (strata_kernels::cuda::emu::run_emulated) on a kernel that spins
//! forever. A timeout poisons the emulator for the rest of the process, so this runs in its
//! own test binary: tests of one binary share a process.
#![cfg(feature = "cuda-emu")]

use std::time::{Duration, Instant};
use strata_kernels::cuda::emu::{self, run_emulated, EmuArg, Guarded, DEFAULT_TIMEOUT};

/// A deadlock fails by timeout instead of hanging, and the abandoned launch (still spinning on
/// its fibers, the `__shared__` statics and the fiber stacks) then blocks every later launch,
/// through `run_emulated`, `launch_by_name` or a raw `emu_*` call. Rules out a watchdog that releases the launch
/// lock and lets the next kernel run beside the abandoned one.
#[test]
fn a_deadlock_times_out_and_every_later_launch_is_refused() {
    let mut flags = Guarded::new(&[0i32; 64], i32::MIN);
    let start = Instant::now();
    let err = run_emulated(
        "planted_spin_deadlock",
        Duration::from_millis(500),
        move || {
            // SAFETY: a guarded buffer of 64 ints owned by this (possibly abandoned) closure.
            let code =
                unsafe { emu::emu_planted_spin_deadlock(1, 1, 1, 64, 1, 1, flags.mut_ptr()) };
            (code, ())
        },
    )
    .unwrap_err();
    assert!(
        err.contains("did not finish within 0.5 s (deadlock?)"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    println!("failed as expected: {err}");

    // A correct kernel on more threads than the spinning launch (so it would need new fiber
    // stacks, freeing the ones still in use).
    let x = vec![1.0f32; 512];
    let gx = Guarded::f32(&x);
    let mut out = Guarded::f32(&[0.0; 2]);
    let refused = run_emulated("planted_sum_rows_tree_ok", DEFAULT_TIMEOUT, move || {
        // SAFETY: guarded buffers owned by this closure: x is 2 x 256, out 2.
        let code = unsafe {
            emu::emu_planted_sum_rows_tree_ok(1, 1, 1, 256, 1, 1, gx.ptr(), out.mut_ptr(), 2, 256)
        };
        (code, out)
    })
    .unwrap_err();
    assert_refused(&refused, "planted_sum_rows_tree_ok");

    let mut sums = vec![0.0f32; 2];
    // SAFETY: x is 2 x 256 floats, sums 2 (and the launch is refused before using them).
    let refused = unsafe {
        emu::launch_by_name(
            "reduce_sum_rows",
            [1, 1, 1],
            [256, 1, 1],
            &[
                EmuArg::Ptr(x.as_ptr() as *mut _),
                EmuArg::Ptr(sums.as_mut_ptr() as *mut _),
                EmuArg::I32(2),
                EmuArg::I32(256),
            ],
        )
    }
    .unwrap_err();
    assert_refused(&refused, "reduce_sum_rows");

    // A raw launcher call, past the Rust checks: the C++ side refuses it too.
    // SAFETY: as above.
    let code = unsafe {
        emu::emu_reduce_sum_rows(1, 1, 1, 256, 1, 1, x.as_ptr(), sums.as_mut_ptr(), 2, 256)
    };
    assert_eq!(code, 1);
    assert_refused(&emu::last_error(), "reduce_sum_rows");
    assert_eq!(sums, [0.0, 0.0]);
}

fn assert_refused(err: &str, kernel: &str) {
    assert!(
        err.contains(&format!("kernel {kernel} not launched"))
            && err.contains("abandoned launch of kernel planted_spin_deadlock"),
        "{err}"
    );
    println!("refused as expected: {err}");
}
