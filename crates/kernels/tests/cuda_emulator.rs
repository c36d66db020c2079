//! The emulator itself (kernels/emu/cuda_emu.h): planted bugs (kernels/emu/planted.cu) it must
//! catch, launch errors it must report, and the bookkeeping that every product kernel is
//! compiled into it. (That every kernel is launched by some twin test is checked from the
//! launches themselves, in `src/cuda/coverage_tests.rs`.) No GPU or CUDA tools needed.
#![cfg(feature = "cuda-emu")]

mod emulated;

use emulated::{compare, emu_rows, random, row_sums_f64};
use strata_kernels::cuda::emu::{self, run_emulated, Guarded, DEFAULT_TIMEOUT};
use strata_kernels::cuda::sources::kernel_names;

#[test]
fn planted_missing_syncthreads_is_caught() {
    let (rows, cols) = (3, 1000);
    let x = random(rows * cols, -1.0, 1.0, 77);
    let want = row_sums_f64(&x, rows, cols);
    // The correct kernel passes...
    let ok = emu_rows("planted_sum_rows_tree_ok", &x, rows, cols, 2, 256).unwrap();
    compare("tree sum (correct)", &ok, &want).unwrap();
    // ...the one without the first __syncthreads() must not.
    let bad = emu_rows("planted_sum_rows_missing_sync", &x, rows, cols, 2, 256).unwrap();
    let caught = compare("tree sum (missing __syncthreads)", &bad, &want).unwrap_err();
    println!("caught as expected: {caught}");
}

/// Launches `planted_shift_ok` or `planted_shift_missing_sync` on 2 blocks of 256 threads
/// over `x` (guarded) and returns `out`.
fn emu_shift(kernel: &'static str, x: &[f32]) -> Result<Vec<f32>, String> {
    let n = x.len();
    let gx = Guarded::f32(x);
    let mut out = Guarded::f32(&vec![0.0; n]);
    let out = run_emulated(kernel, DEFAULT_TIMEOUT, move || {
        let launch = match kernel {
            "planted_shift_ok" => emu::emu_planted_shift_ok,
            "planted_shift_missing_sync" => emu::emu_planted_shift_missing_sync,
            other => panic!("no launcher for {other}"),
        };
        // SAFETY: live guarded buffers of n floats owned by this closure.
        let code = unsafe { launch(2, 1, 1, 256, 1, 1, gx.ptr(), out.mut_ptr(), n as i32) };
        (code, out)
    })?;
    out.check(kernel)?;
    Ok(out.as_slice().to_vec())
}

/// The same bug with the reader on the other side: thread t reads its LOWER neighbour's slot.
/// Rules out an emulator that runs every block's threads in increasing id order, where the
/// writer always goes first and the missing barrier passes unseen.
#[test]
fn planted_missing_syncthreads_with_higher_reader_is_caught() {
    let n = 1000; // four 256-element tiles: two per block
    let x = random(n, -1.0, 1.0, 78);
    let want: Vec<f64> = (0..n)
        .map(|i| if i % 256 == 0 { 0.0 } else { x[i - 1] as f64 })
        .collect();
    compare(
        "shift (correct)",
        &emu_shift("planted_shift_ok", &x).unwrap(),
        &want,
    )
    .unwrap();
    let bad = emu_shift("planted_shift_missing_sync", &x).unwrap();
    let caught = compare("shift (missing __syncthreads)", &bad, &want).unwrap_err();
    println!("caught as expected: {caught}");
}

#[test]
fn planted_ragged_edge_bug_is_caught() {
    let n = 1000; // not a multiple of 256
    let x = random(n, -1.0, 1.0, 5);
    let gx = Guarded::f32(&x);
    let mut out = Guarded::f32(&vec![0.0; n]);
    let out = run_emulated("planted_scale_ragged", DEFAULT_TIMEOUT, move || {
        // SAFETY: guarded buffers owned here; the kernel's overrun stays inside the guards
        // (24 elements < emu::GUARD).
        let code = unsafe {
            emu::emu_planted_scale_ragged(4, 1, 1, 256, 1, 1, gx.ptr(), out.mut_ptr(), n as i32)
        };
        (code, out)
    })
    .unwrap();
    let caught = out.check("planted_scale_ragged out").unwrap_err();
    assert!(caught.contains("index 1000"), "{caught}");
    println!("caught as expected: {caught}");
    // The in-bounds part is right: the bug is only at the ragged edge.
    let want: Vec<f64> = x.iter().map(|&v| 2.0 * v as f64).collect();
    compare("in-bounds part", out.as_slice(), &want).unwrap();
}

#[test]
fn planted_divergent_barrier_is_reported() {
    let mut out = Guarded::f32(&[0.0; 64]);
    let err = run_emulated("planted_divergent_barrier", DEFAULT_TIMEOUT, move || {
        // SAFETY: a guarded buffer of 64 floats; the kernel writes at most `active` of them.
        let code =
            unsafe { emu::emu_planted_divergent_barrier(1, 1, 1, 64, 1, 1, out.mut_ptr(), 40) };
        (code, ())
    })
    .unwrap_err();
    assert!(
        err.contains("divergent __syncthreads()") && err.contains("24 thread(s)"),
        "{err}"
    );
    println!("reported as expected: {err}");
}

#[test]
fn launch_errors_are_reported_not_crashed() {
    let err = run_emulated("reduce_sum_rows", DEFAULT_TIMEOUT, || {
        // SAFETY: the launch is rejected (2048 threads per block) before any pointer is used.
        let code = unsafe {
            emu::emu_reduce_sum_rows(
                1,
                1,
                1,
                2048,
                1,
                1,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
                0,
            )
        };
        (code, ())
    })
    .unwrap_err();
    assert!(err.contains("at most 1024 threads"), "{err}");
}

#[test]
fn the_emulator_holds_exactly_the_declared_kernels() {
    let mut declared: Vec<String> = kernel_names().into_iter().flat_map(|(_, k)| k).collect();
    declared.sort();
    let mut emulated: Vec<String> = emu::EMULATED_KERNELS
        .iter()
        .map(|s| s.to_string())
        .collect();
    emulated.sort();
    assert_eq!(declared, emulated);
}
