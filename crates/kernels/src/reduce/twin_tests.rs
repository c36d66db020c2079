//! `reduce_sum_rows` and `reduce_max_rows` of kernels/reduce.cu run on the virtual
//! device (NVRTC's PTX, `cuda::sim`, every check on) against their CPU twin [`crate::reduce::reduce`] over dense
//! `[rows, cols]` buffers: ragged columns, fewer blocks than rows, 1024-thread blocks. Every
//! guarded buffer is checked for out-of-bounds writes.
//!
//! | op              | vs f64 reference (kernel and twin alike)  | vs CPU twin                   |
//! |-----------------|-------------------------------------------|-------------------------------|
//! | reduce_sum_rows | tol [`REL_TOL`], scale max(|ref|, 1)      | (adds in another order)       |
//! | reduce_max_rows | -                                         | same values and argmax, NaN first |

use crate::cuda::twin::{self as kernels, Guarded};
use crate::reduce::{reduce, ReduceOp};
use crate::strided::Strided;
use crate::test_support::{abs_scale, close, guard, i, launch, random};
use std::time::Instant;

/// Tolerance of [`compare`]: `|got - ref| <= REL_TOL * max(|ref|, 1)`.
const REL_TOL: f64 = 1e-5;

fn compare(what: &str, got: &[f32], want: &[f64]) {
    close(what, got, want, &abs_scale(want, 1.0), REL_TOL);
}

/// Row sums in f64, the reference of the sum kernel.
fn row_sums_f64(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum())
        .collect()
}

/// `reduce_sum_rows` over `rows` x `cols`: the row sums.
fn device_sum_rows(x: &[f32], rows: usize, cols: usize, grid: u32, block: u32) -> Vec<f32> {
    let (gx, out) = (Guarded::f32(x), Guarded::f32(&vec![0.0; rows]));
    let (r, c) = (i(rows), i(cols));
    let out = launch("reduce_sum_rows", out, move |out| {
        // SAFETY: live guarded buffers owned by this closure: x is rows*cols, out rows.
        unsafe { kernels::reduce_sum_rows(grid, 1, 1, block, 1, 1, gx.ptr(), out.mut_ptr(), r, c) }
    });
    guard(&out, "reduce_sum_rows out");
    out.as_slice().to_vec()
}

/// `reduce_max_rows` over `rows` x `cols`: the row maxima and their indices.
fn device_max_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    grid: u32,
    block: u32,
) -> (Vec<f32>, Vec<u32>) {
    let gx = Guarded::f32(x);
    let out = Guarded::f32(&vec![0.0; rows]);
    let idx = Guarded::new(&vec![0u32; rows], 0xdead_beef);
    let (r, c) = (i(rows), i(cols));
    let (out, idx) = launch("reduce_max_rows", (out, idx), move |(out, idx)| {
        // SAFETY: live guarded buffers owned by this closure: x is rows*cols, out/idx rows.
        unsafe {
            kernels::reduce_max_rows(
                grid,
                1,
                1,
                block,
                1,
                1,
                gx.ptr(),
                out.mut_ptr(),
                idx.mut_ptr(),
                r,
                c,
            )
        }
    });
    guard(&out, "reduce_max_rows out");
    guard(&idx, "reduce_max_rows argmax");
    (out.as_slice().to_vec(), idx.as_slice().to_vec())
}

/// (rows, cols, grid, block): ragged cols, fewer blocks than rows, 1024-thread blocks.
const REDUCE_SHAPES: &[(usize, usize, u32, u32)] = &[
    (1, 1, 1, 32),
    (3, 1000, 3, 256),
    (5, 33, 2, 64),
    (70, 31, 16, 32),
    (4, 4097, 4, 256),
    (2, 3000, 2, 1024),
];

#[test]
fn reduce_sum_rows_matches_cpu_twin() {
    let start = Instant::now();
    for (case, &(rows, cols, grid, block)) in REDUCE_SHAPES.iter().enumerate() {
        let x = random(rows * cols, -1.0, 1.0, 500 + case as u64);
        let want = row_sums_f64(&x, rows, cols);
        let mut twin = vec![0.0; rows];
        reduce(
            ReduceOp::Sum,
            &[rows, cols],
            Strided::new(&x, 0, &[cols, 1]),
            &[1],
            &mut twin,
            None,
        );
        compare("CPU twin sum", &twin, &want);
        let got = device_sum_rows(&x, rows, cols, grid, block);
        compare(
            &format!("cuda-sim sum [{rows}, {cols}] block {block}"),
            &got,
            &want,
        );
    }
    println!("reduce sum: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn reduce_max_rows_matches_cpu_twin_with_ties_and_nan() {
    let start = Instant::now();
    for (case, &(rows, cols, grid, block)) in REDUCE_SHAPES.iter().enumerate() {
        // Few distinct values: many ties, so "first index wins" is exercised across threads.
        let mut x: Vec<f32> = random(rows * cols, 0.0, 8.0, 900 + case as u64)
            .iter()
            .map(|v| v.floor())
            .collect();
        if rows > 2 && cols > 10 {
            x[cols + cols / 2] = f32::NAN; // row 1: NaN wins
            x[2 * cols + 3] = f32::NAN; // row 2: the first of two NaNs wins
            x[2 * cols + cols - 1] = f32::NAN;
        }
        let mut twin = vec![0.0; rows];
        let mut twin_idx = vec![0u32; rows];
        reduce(
            ReduceOp::Max,
            &[rows, cols],
            Strided::new(&x, 0, &[cols, 1]),
            &[1],
            &mut twin,
            Some(&mut twin_idx),
        );
        let (got, idx) = device_max_rows(&x, rows, cols, grid, block);
        for r in 0..rows {
            let same = got[r] == twin[r] || (got[r].is_nan() && twin[r].is_nan());
            assert!(
                same && idx[r] == twin_idx[r],
                "max [{rows}, {cols}] row {r}: device ({}, {}) vs CPU twin ({}, {})",
                got[r],
                idx[r],
                twin[r],
                twin_idx[r]
            );
        }
    }
    println!("reduce max: {:.2} s", start.elapsed().as_secs_f64());
}
