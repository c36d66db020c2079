//! Reductions (sum, max, argmax) over any set of axes of a strided operand.
//!
//! The input's dimensions are split into *kept* and *reduced* ones. The output is contiguous
//! over the kept dimensions (the caller decides whether to show them with size-1 placeholders,
//! i.e. `keepdim`). Each output element is one independent sequential pass over its reduced
//! sub-tensor in row-major order, so the answer does not depend on the thread count. Sums are
//! accumulated in f64: reductions over a whole batch of activations would otherwise lose
//! several digits.

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
            red_strides.push(src.strides[d]);
        } else {
            kept_shape.push(shape[d]);
            kept_strides.push(src.strides[d]);
        }
    }
    let out_len = numel(&kept_shape);
    assert_eq!(
        out.len(),
        out_len,
        "reduce: output has {} elements but the kept shape {kept_shape:?} needs {out_len}",
        out.len()
    );
    if let Some(idx) = argmax.as_deref() {
        assert_eq!(idx.len(), out_len, "reduce: argmax buffer has wrong length");
    }
    let red_count = numel(&red_shape);
    assert!(
        red_count > 0 || op == ReduceOp::Sum,
        "reduce: max over an empty set of elements (shape {shape:?}, axes {axes:?})"
    );
    // Reducing a 0-d set behaves like a sum over one element: make the walker see one row.
    if red_shape.is_empty() {
        red_shape.push(1);
        red_strides.push(0);
    }
    let red_row = *red_shape.last().unwrap();
    let red_last_stride = *red_strides.last().unwrap();
    let red_rows = red_count / red_row.max(1);

    // Sum over the leading axes of contiguous data (a bias gradient: [N, C] -> [C]): add whole
    // rows, which vectorises and reads memory in order. Each output still sums its elements in
    // the same order as the general walk below, so the bits are the same.
    let leading = axes.len() < shape.len() && (0..axes.len()).all(|d| is_reduced[d]);
    if op == ReduceOp::Sum && leading && src.is_contiguous(shape) && argmax.is_none() {
        let mut acc = vec![0f64; out_len];
        let data = &src.data[src.offset..src.offset + red_count * out_len];
        widest(|| {
            for row in data.chunks_exact(out_len.max(1)) {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += x as f64;
                }
            }
        });
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = *a as f32;
        }
        return;
    }

    // Reducing trailing axes of contiguous data (a row sum, an argmax over classes): each
    // output's elements are one contiguous run, walked in the same order as below.
    let trailing = (shape.len() - axes.len()..shape.len()).all(|d| is_reduced[d]);
    let rows = (trailing && src.is_contiguous(shape))
        .then(|| &src.data[src.offset..src.offset + out_len * red_count]);
    // The maximum of many short rows (an argmax over a few classes): sixteen rows at a time.
    if let (Some(rows), ReduceOp::Max, Some(idx)) = (rows, op, argmax.as_deref_mut()) {
        if (1..=16).contains(&red_count) && out_len >= 16 {
            // Rows are independent: large inputs split into blocks of whole rows.
            const BLOCK_ROWS: usize = 1 << 12;
            if numel(shape) >= PARALLEL_THRESHOLD * 16 {
                out.par_chunks_mut(BLOCK_ROWS)
                    .zip(idx.par_chunks_mut(BLOCK_ROWS))
                    .zip(rows.par_chunks(BLOCK_ROWS * red_count))
                    .for_each(|((out, idx), rows)| max_of_short_rows(rows, red_count, out, idx));
            } else {
                max_of_short_rows(rows, red_count, out, idx);
            }
            return;
        }
    }
    let reduce_one = |o: usize| -> (f32, u32) {
        if let Some(rows) = rows {
            let row = &rows[o * red_count..(o + 1) * red_count];
            return match op {
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
        let mut rest = o;
        let mut base = src.offset;
        for d in (0..kept_shape.len()).rev() {
            base += (rest % kept_shape[d]) * kept_strides[d];
            rest /= kept_shape[d];
        }
        match op {
            ReduceOp::Sum => {
                let mut acc = 0f64;
                if red_count > 0 {
                    for_each_row(
                        &red_shape,
                        [&red_strides],
                        [base],
                        0,
                        red_rows,
                        |_, [start]| {
                            for j in 0..red_row {
                                acc += src.data[start + j * red_last_stride] as f64;
                            }
                        },
                    );
                }
                (acc as f32, 0)
            }
            ReduceOp::Max => {
                let mut best = f32::NEG_INFINITY;
                let mut best_index = u32::MAX;
                for_each_row(
                    &red_shape,
                    [&red_strides],
                    [base],
                    0,
                    red_rows,
                    |r, [start]| {
                        if best.is_nan() {
                            return;
                        }
                        for j in 0..red_row {
                            let v = src.data[start + j * red_last_stride];
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
    };

    let parallel = numel(shape) >= PARALLEL_THRESHOLD && out_len > 1;
    match argmax {
        Some(idx) if parallel => out
            .par_iter_mut()
            .zip(idx.par_iter_mut())
            .enumerate()
            .for_each(|(o, (v, i))| (*v, *i) = reduce_one(o)),
        Some(idx) => {
            for (o, (v, i)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
                (*v, *i) = reduce_one(o);
            }
        }
        None if parallel => out
            .par_iter_mut()
            .enumerate()
            .for_each(|(o, v)| *v = reduce_one(o).0),
        None => {
            for (o, v) in out.iter_mut().enumerate() {
                *v = reduce_one(o).0;
            }
        }
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
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present; the lengths were checked just above.
        return unsafe { max_of_short_rows_avx512(rows, width, out, index) };
    }
    for (o, (v, i)) in out.iter_mut().zip(index.iter_mut()).enumerate() {
        (*v, *i) = max_of_row(&rows[o * width..(o + 1) * width]);
    }
}

/// Sixteen rows per step, one row per lane, a column of the rows per gather: the same choice
/// as [`max_of_row`] lane by lane.
///
/// # Safety
/// The CPU must have AVX-512F; `rows` must hold `out.len() * width` values, `index` as many as
/// `out`, and `1 <= width <= 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_of_short_rows_avx512(rows: &[f32], width: usize, out: &mut [f32], index: &mut [u32]) {
    use std::arch::x86_64::*;
    let offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(width as i32),
    );
    for block in (0..out.len()).step_by(16) {
        let valid = (out.len() - block).min(16);
        let lanes = ((1u32 << valid) - 1) as __mmask16;
        let base = rows.as_ptr().wrapping_add(block * width);
        let column = |j: usize| {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.wrapping_add(j))
        };
        let mut best = column(0);
        let mut best_index = _mm512_setzero_si512();
        // A lane whose best is NaN has its answer.
        let mut settled = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
        for j in 1..width {
            let v = column(j);
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let take = !settled & (_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | nan);
            best = _mm512_mask_mov_ps(best, take, v);
            best_index = _mm512_mask_mov_epi32(best_index, take, _mm512_set1_epi32(j as i32));
            settled |= take & nan;
        }
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(block), lanes, best);
        _mm512_mask_storeu_epi32(index.as_mut_ptr().add(block).cast(), lanes, best_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_pick_the_first_maximum_and_the_first_nan_as_one_row_at_a_time_does() {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            1.0,
        ];
        let mut state = 12345u32;
        for width in 1..=16 {
            for rows in [1, 15, 16, 17, 40] {
                let data: Vec<f32> = (0..rows * width)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let pick = (state >> 16) as usize % 12;
                        specials.get(pick).copied().unwrap_or((pick % 3) as f32)
                    })
                    .collect();
                let (mut out, mut index) = (vec![0.0; rows], vec![0; rows]);
                max_of_short_rows(&data, width, &mut out, &mut index);
                for r in 0..rows {
                    let (v, i) = max_of_row(&data[r * width..(r + 1) * width]);
                    assert_eq!(
                        (out[r].to_bits(), index[r]),
                        (v.to_bits(), i),
                        "width {width}, row {:?}",
                        &data[r * width..(r + 1) * width]
                    );
                }
            }
        }
    }

    #[test]
    fn sums_and_maxima_over_axes() {
        // [2,3] = [[1, 5, 2], [7, 0, 7]]
        let x = [1.0, 5.0, 2.0, 7.0, 0.0, 7.0];
        let s = Strided::new(&x, 0, &[3, 1]);
        let mut out = [0.0; 3];
        reduce(ReduceOp::Sum, &[2, 3], s, &[0], &mut out, None);
        assert_eq!(out, [8.0, 5.0, 9.0]);
        let mut out = [0.0; 2];
        let mut idx = [0u32; 2];
        reduce(ReduceOp::Max, &[2, 3], s, &[1], &mut out, Some(&mut idx));
        assert_eq!(out, [5.0, 7.0]);
        assert_eq!(idx, [1, 0], "ties keep the first index");
        let mut all = [0.0];
        let mut idx = [0u32];
        reduce(ReduceOp::Max, &[2, 3], s, &[0, 1], &mut all, Some(&mut idx));
        assert_eq!((all[0], idx[0]), (7.0, 3));
        reduce(ReduceOp::Sum, &[2, 3], s, &[0, 1], &mut all, None);
        assert_eq!(all[0], 22.0);
    }

    #[test]
    fn max_propagates_nan() {
        let x = [1.0, f32::NAN, 3.0];
        let mut out = [0.0];
        reduce(
            ReduceOp::Max,
            &[3],
            Strided::new(&x, 0, &[1]),
            &[0],
            &mut out,
            None,
        );
        assert!(out[0].is_nan());
    }

    #[test]
    fn reducing_no_axes_copies() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        // Transposed 2x2 view.
        reduce(
            ReduceOp::Sum,
            &[2, 2],
            Strided::new(&x, 0, &[1, 2]),
            &[],
            &mut out,
            None,
        );
        assert_eq!(out, [1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn the_contiguous_trailing_path_equals_the_strided_walk_bit_for_bit() {
        // x [4, 5, 6] row-major, and the same values stored as [6, 5, 4] read through strides:
        // the first takes the contiguous fast path, the second the general walk.
        let (a, b, c) = (4, 5, 6);
        let value = |i: usize, j: usize, k: usize| -> f32 {
            let n = (i * 31 + j * 17 + k * 7) % 23;
            if n == 5 {
                f32::NAN
            } else {
                (n as f32 - 11.0) * 0.37
            }
        };
        let mut row_major = vec![0.0; a * b * c];
        let mut transposed = vec![0.0; a * b * c];
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    row_major[(i * b + j) * c + k] = value(i, j, k);
                    transposed[(k * b + j) * a + i] = value(i, j, k);
                }
            }
        }
        let (fast_strides, walk_strides) = ([b * c, c, 1], [1, a, a * b]);
        let fast = Strided::new(&row_major, 0, &fast_strides);
        let walk = Strided::new(&transposed, 0, &walk_strides);
        for (op, axes) in [
            (ReduceOp::Sum, vec![2]),
            (ReduceOp::Sum, vec![1, 2]),
            (ReduceOp::Max, vec![2]),
            (ReduceOp::Max, vec![1, 2]),
        ] {
            let kept: usize = (0..3)
                .filter(|d| !axes.contains(d))
                .map(|d| [a, b, c][d])
                .product();
            let (mut out1, mut out2) = (vec![0.0; kept], vec![0.0; kept]);
            let (mut i1, mut i2) = (vec![0u32; kept], vec![0u32; kept]);
            let want_index = op == ReduceOp::Max;
            reduce(
                op,
                &[a, b, c],
                fast,
                &axes,
                &mut out1,
                want_index.then_some(&mut i1[..]),
            );
            reduce(
                op,
                &[a, b, c],
                walk,
                &axes,
                &mut out2,
                want_index.then_some(&mut i2[..]),
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out1), bits(&out2), "{op:?} over {axes:?}");
            assert_eq!(i1, i2, "{op:?} over {axes:?}");
        }
    }
}
