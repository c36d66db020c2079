//! Reductions (sum, max, argmax) over any set of axes of a strided operand.
//!
//! The input's dimensions are split into *kept* and *reduced* ones. The output is contiguous
//! over the kept dimensions (the caller decides whether to show them with size-1 placeholders,
//! i.e. `keepdim`). Each output element is one independent sequential pass over its reduced
//! sub-tensor in row-major order, so the answer does not depend on the thread count. Sums are
//! accumulated in f64: reductions over a whole batch of activations would otherwise lose
//! several digits.
//!
//! ```text
//! x [kept..., reduced...] (any interleaving, any strides)
//! sum:    out[k] = Σ_r x[k, r]                        (f64, in row-major order of r)  [kept...]
//! max:    out[k] = max_r x[k, r], argmax[k] = first r  (a NaN wins)                   [kept...]
//! ```
//!
//! Reading order: [`reduce`] and its steps below (the portable reference: a general strided
//! walk, plus fast paths for contiguous leading and trailing axes that add in the same order),
//! then `x86.rs` (the AVX-512 argmax of many short rows), then [`cuda`] (launching
//! `kernels/reduce.cu`: one block per row of a dense `[rows, cols]` buffer).

pub mod cuda;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::simd::widest;
use crate::strided::{for_each_row, numel, Strided};
use rayon::prelude::*;

/// Input sizes below this reduce on the calling thread.
const PARALLEL_THRESHOLD: usize = 1 << 16;

/// What to combine the reduced elements with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum, accumulated in f64 and rounded to f32 once.
    Sum,
    /// Maximum; NaN wins (as PyTorch), ties keep the first index.
    Max,
}

/// Reduces `src` (viewed with `shape`) over `axes`.
///
/// `out` receives `numel(kept shape)` values in row-major order of the kept axes. For
/// [`ReduceOp::Max`], `argmax` (if given, same length as `out`) receives the flat row-major
/// index of the winner *within the reduced sub-tensor*. Panics naming the op if an axis is out
/// of range or repeated, or if a slice has the wrong length.
pub fn reduce(
    op: ReduceOp,
    shape: &[usize],
    src: Strided<'_>,
    axes: &[usize],
    out: &mut [f32],
    mut argmax: Option<&mut [u32]>,
) {
    src.check_bounds("reduce", shape);
    let mut split = Split::new(shape, src.strides, axes);
    let out_len = split.out_len;
    assert_eq!(
        out.len(),
        out_len,
        "reduce: output has {} elements but the kept shape {:?} needs {out_len}",
        out.len(),
        split.kept_shape
    );
    if let Some(idx) = argmax.as_deref() {
        assert_eq!(idx.len(), out_len, "reduce: argmax buffer has wrong length");
    }
    let red_count = split.red_count;
    assert!(
        red_count > 0 || op == ReduceOp::Sum,
        "reduce: max over an empty set of elements (shape {shape:?}, axes {axes:?})"
    );
    // Reducing a 0-d set behaves like a sum over one element: make the walker see one row.
    if split.red_shape.is_empty() {
        split.red_shape.push(1);
        split.red_strides.push(0);
    }

    // Sum over the leading axes of contiguous data (a bias gradient: [N, C] -> [C]): add whole
    // rows, which vectorises and reads memory in order. Each output still sums its elements in
    // the same order as the general walk, so the bits are the same.
    if op == ReduceOp::Sum && split.leading && src.is_contiguous(shape) && argmax.is_none() {
        let data = &src.data[src.offset..src.offset + red_count * out_len];
        sum_leading(data, out);
        return;
    }

    // Reducing trailing axes of contiguous data (a row sum, an argmax over classes): each
    // output's elements are one contiguous run, walked in the same order as the general walk.
    let rows = (split.trailing && src.is_contiguous(shape))
        .then(|| &src.data[src.offset..src.offset + out_len * red_count]);
    // The maximum of many short rows (an argmax over a few classes): sixteen rows at a time.
    if let (Some(rows), ReduceOp::Max, Some(idx)) = (rows, op, argmax.as_deref_mut()) {
        if (1..=16).contains(&red_count) && out_len >= 16 {
            max_of_many_short_rows(numel(shape), rows, red_count, out, idx);
            return;
        }
    }
    let walk = Walk {
        op,
        src,
        split: &split,
        rows,
    };
    let parallel = numel(shape) >= PARALLEL_THRESHOLD && out_len > 1;
    walk.each(parallel, out, argmax);
}

/// The input's dimensions split into kept and reduced ones, with what the fast paths need to
/// know about where the reduced ones sit.
struct Split {
    kept_shape: Vec<usize>,
    kept_strides: Vec<usize>,
    red_shape: Vec<usize>,
    red_strides: Vec<usize>,
    /// Output elements: the product of the kept sizes.
    out_len: usize,
    /// Elements reduced into each output.
    red_count: usize,
    /// Some axes are kept and every reduced one comes before them.
    leading: bool,
    /// Every reduced axis comes after the kept ones.
    trailing: bool,
}

impl Split {
    /// Panics naming the op if an axis is out of range or repeated.
    fn new(shape: &[usize], strides: &[usize], axes: &[usize]) -> Split {
        let mut is_reduced = vec![false; shape.len()];
        for &a in axes {
            assert!(
                a < shape.len(),
                "reduce: axis {a} out of range for shape {shape:?}"
            );
            assert!(!is_reduced[a], "reduce: axis {a} listed twice in {axes:?}");
            is_reduced[a] = true;
        }
        let (mut kept_shape, mut kept_strides, mut red_shape, mut red_strides) =
            (vec![], vec![], vec![], vec![]);
        for d in 0..shape.len() {
            if is_reduced[d] {
                red_shape.push(shape[d]);
                red_strides.push(strides[d]);
            } else {
                kept_shape.push(shape[d]);
                kept_strides.push(strides[d]);
            }
        }
        let leading = axes.len() < shape.len() && (0..axes.len()).all(|d| is_reduced[d]);
        let trailing = (shape.len() - axes.len()..shape.len()).all(|d| is_reduced[d]);
        Split {
            out_len: numel(&kept_shape),
            red_count: numel(&red_shape),
            kept_shape,
            kept_strides,
            red_shape,
            red_strides,
            leading,
            trailing,
        }
    }
}

/// `out[k] = Σ_r data[r * out.len() + k]`: whole rows added into f64 accumulators, row by row.
fn sum_leading(data: &[f32], out: &mut [f32]) {
    let mut acc = vec![0f64; out.len()];
    widest(|| {
        for row in data.chunks_exact(out.len().max(1)) {
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += x as f64;
            }
        }
    });
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = *a as f32;
    }
}

/// [`max_of_short_rows`] over `out.len()` rows of `width` values, split into blocks of whole
/// rows across threads when the input (`total` elements) is large.
fn max_of_many_short_rows(
    total: usize,
    rows: &[f32],
    width: usize,
    out: &mut [f32],
    idx: &mut [u32],
) {
    // Rows are independent: large inputs split into blocks of whole rows.
    const BLOCK_ROWS: usize = 1 << 12;
    if total >= PARALLEL_THRESHOLD * 16 {
        out.par_chunks_mut(BLOCK_ROWS)
            .zip(idx.par_chunks_mut(BLOCK_ROWS))
            .zip(rows.par_chunks(BLOCK_ROWS * width))
            .for_each(|((out, idx), rows)| max_of_short_rows(rows, width, out, idx));
    } else {
        max_of_short_rows(rows, width, out, idx);
    }
}

/// The general path: each output element walks its reduced sub-tensor on its own.
struct Walk<'s, 'a> {
    op: ReduceOp,
    src: Strided<'a>,
    split: &'s Split,
    /// The input as `out_len` contiguous rows of `red_count`, when the reduced axes are the
    /// trailing ones of contiguous data.
    rows: Option<&'a [f32]>,
}

impl Walk<'_, '_> {
    /// Every output (and its argmax, if asked for), in parallel over outputs or in order.
    fn each(&self, parallel: bool, out: &mut [f32], argmax: Option<&mut [u32]>) {
        match argmax {
            Some(idx) if parallel => out
                .par_iter_mut()
                .zip(idx.par_iter_mut())
                .enumerate()
                .for_each(|(o, (v, i))| (*v, *i) = self.one(o)),
            Some(idx) => {
                for (o, (v, i)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
                    (*v, *i) = self.one(o);
                }
            }
            None if parallel => out
                .par_iter_mut()
                .enumerate()
                .for_each(|(o, v)| *v = self.one(o).0),
            None => {
                for (o, v) in out.iter_mut().enumerate() {
                    *v = self.one(o).0;
                }
            }
        }
    }

    /// Output element `o` and, for a max, the index of its winner.
    fn one(&self, o: usize) -> (f32, u32) {
        let red_count = self.split.red_count;
        if let Some(rows) = self.rows {
            let row = &rows[o * red_count..(o + 1) * red_count];
            return match self.op {
                ReduceOp::Sum => {
                    let mut acc = 0f64;
                    for &x in row {
                        acc += x as f64;
                    }
                    (acc as f32, 0)
                }
                ReduceOp::Max => max_of_row(row),
            };
        }
        // Offset of output element `o` in the input.
        let (kept_shape, kept_strides) = (&self.split.kept_shape, &self.split.kept_strides);
        let mut rest = o;
        let mut base = self.src.offset;
        for d in (0..kept_shape.len()).rev() {
            base += (rest % kept_shape[d]) * kept_strides[d];
            rest /= kept_shape[d];
        }
        match self.op {
            ReduceOp::Sum => (self.strided_sum(base), 0),
            ReduceOp::Max => self.strided_max(base),
        }
    }

    /// `Σ` of the reduced sub-tensor starting at `base`, in row-major order.
    fn strided_sum(&self, base: usize) -> f32 {
        let Split {
            red_shape,
            red_strides,
            red_count,
            ..
        } = self.split;
        let red_row = *red_shape.last().unwrap();
        let red_last_stride = *red_strides.last().unwrap();
        let red_rows = red_count / red_row.max(1);
        let data = self.src.data;
        let mut acc = 0f64;
        if *red_count > 0 {
            for_each_row(
                red_shape,
                [red_strides],
                [base],
                0,
                red_rows,
                |_, [start]| {
                    for j in 0..red_row {
                        acc += data[start + j * red_last_stride] as f64;
                    }
                },
            );
        }
        acc as f32
    }

    /// The maximum of the reduced sub-tensor starting at `base` and its first row-major
    /// index; the first NaN wins.
    fn strided_max(&self, base: usize) -> (f32, u32) {
        let Split {
            red_shape,
            red_strides,
            red_count,
            ..
        } = self.split;
        let red_row = *red_shape.last().unwrap();
        let red_last_stride = *red_strides.last().unwrap();
        let red_rows = red_count / red_row.max(1);
        let data = self.src.data;
        let mut best = f32::NEG_INFINITY;
        let mut best_index = u32::MAX;
        for_each_row(
            red_shape,
            [red_strides],
            [base],
            0,
            red_rows,
            |r, [start]| {
                if best.is_nan() {
                    return;
                }
                for j in 0..red_row {
                    let v = data[start + j * red_last_stride];
                    if v > best || v.is_nan() || best_index == u32::MAX {
                        best = v;
                        best_index = (r * red_row + j) as u32;
                        if v.is_nan() {
                            return;
                        }
                    }
                }
            },
        );
        (best, best_index)
    }
}

/// The maximum of a contiguous row and its first index; the first NaN wins.
fn max_of_row(row: &[f32]) -> (f32, u32) {
    let (mut best, mut best_index) = (f32::NEG_INFINITY, u32::MAX);
    for (j, &v) in row.iter().enumerate() {
        if v > best || v.is_nan() || best_index == u32::MAX {
            best = v;
            best_index = j as u32;
            if v.is_nan() {
                break;
            }
        }
    }
    (best, best_index)
}

/// [`max_of_row`] of each row of `width` values in `rows`, into `out` and `index`.
fn max_of_short_rows(rows: &[f32], width: usize, out: &mut [f32], index: &mut [u32]) {
    assert!(
        (1..=16).contains(&width) && rows.len() >= out.len() * width && index.len() == out.len()
    );
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512() {
        // SAFETY: AVX-512F is present; the lengths were checked just above.
        return unsafe { x86::max_of_short_rows_avx512(rows, width, out, index) };
    }
    for (o, (v, i)) in out.iter_mut().zip(index.iter_mut()).enumerate() {
        (*v, *i) = max_of_row(&rows[o * width..(o + 1) * width]);
    }
}
