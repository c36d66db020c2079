//! Reductions against hand-computed values, and the fast paths (contiguous rows, the AVX-512
//! short-row argmax) against the general strided walk, bit for bit.

use super::{max_of_row, max_of_short_rows, reduce, ReduceOp};
use crate::strided::Strided;

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
