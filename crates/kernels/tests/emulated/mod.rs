//! What the emulator's own tests use: seeded inputs, the tolerance check, and the planted
//! row-sum kernels launched on guarded buffers. (The product kernels' comparisons with their
//! CPU twins are unit tests in each op's `src/<op>/twin_tests.rs`.)

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_kernels::cuda::emu::{self, run_emulated, Guarded, DEFAULT_TIMEOUT};

/// Tolerance of [`compare`]: `|got - ref| <= REL_TOL * max(|ref|, 1)`.
pub const REL_TOL: f64 = 1e-5;

pub fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// `Err` describing the first element outside the tolerance.
pub fn compare(what: &str, got: &[f32], want: &[f64]) -> Result<(), String> {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= REL_TOL * w.abs().max(1.0)
        };
        if !ok {
            return Err(format!("{what}: element {i}: got {g}, expected {w}"));
        }
    }
    Ok(())
}

/// Launches one of the planted row-sum kernels (`planted_sum_rows_*`) over `rows` x `cols`
/// and returns the row sums, after checking the guard zones.
pub fn emu_rows(
    kernel: &'static str,
    x: &[f32],
    rows: usize,
    cols: usize,
    grid: u32,
    block: u32,
) -> Result<Vec<f32>, String> {
    let gx = Guarded::f32(x);
    let mut out = Guarded::f32(&vec![0.0; rows]);
    let out = run_emulated(kernel, DEFAULT_TIMEOUT, move || {
        let (r, c) = (rows as i32, cols as i32);
        // SAFETY: live guarded buffers owned by this closure: x is rows*cols, out rows.
        let code = unsafe {
            match kernel {
                "planted_sum_rows_tree_ok" => emu::emu_planted_sum_rows_tree_ok(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    gx.ptr(),
                    out.mut_ptr(),
                    r,
                    c,
                ),
                "planted_sum_rows_missing_sync" => emu::emu_planted_sum_rows_missing_sync(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    gx.ptr(),
                    out.mut_ptr(),
                    r,
                    c,
                ),
                other => panic!("no launcher for {other}"),
            }
        };
        (code, out)
    })?;
    out.check(kernel)?;
    Ok(out.as_slice().to_vec())
}

/// Row sums in f64, the reference of the planted sum kernels.
pub fn row_sums_f64(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum())
        .collect()
}
