//! CPU tests of the elementwise kernels: broadcast and repeated-block paths against the scalar
//! op, strided views, and the accuracy of the vectorisable `exp`, `tanh` and `sigmoid`.

use super::*;

/// A repeated block on either side (bias rows, a scalar, a trailing [4, 5] block), small
/// and large enough to be split over threads, equals the op applied element by element.
#[test]
fn repeated_blocks_on_either_side_match_the_scalar_op() {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[7000, 5], &[0, 1]),
        (&[3, 4, 5], &[0, 5, 1]),
        (&[9, 3], &[0, 0]),
        (&[40000, 3], &[0, 1]),
        (&[2, 1, 7], &[0, 99, 1]),
    ];
    for (shape, rep_strides) in cases {
        let n = numel(shape);
        let flat: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect();
        let block: Vec<f32> = (0..64).map(|i| i as f32 * 1.5 + 0.5).collect();
        let flat_strides = crate::strided::contiguous_strides(shape);
        let at = |index: usize| -> f32 {
            // The repeated operand's element for flat output index `index`.
            let mut rest = index;
            let mut off = 0;
            for d in (0..shape.len()).rev() {
                off += (rest % shape[d]) * rep_strides[d];
                rest /= shape[d];
            }
            block[off]
        };
        for op in [BinaryOp::Sub, BinaryOp::Div] {
            let mut out = vec![0.0; n];
            let (f, r) = (
                Strided::new(&flat, 0, &flat_strides),
                Strided::new(&block, 0, rep_strides),
            );
            binary(op, shape, f, r, &mut out);
            for (i, &o) in out.iter().enumerate() {
                assert_eq!(
                    o,
                    op.apply(flat[i], at(i)),
                    "{op:?} {shape:?} flat first, {i}"
                );
            }
            binary(op, shape, r, f, &mut out);
            for (i, &o) in out.iter().enumerate() {
                assert_eq!(
                    o,
                    op.apply(at(i), flat[i]),
                    "{op:?} {shape:?} flat second, {i}"
                );
            }
        }
    }
}

#[test]
fn broadcast_add_of_a_row_and_a_column() {
    // a: [2,1] column [10, 20] broadcast to [2,3]; b: [3] row [1,2,3] broadcast to [2,3].
    let a = [10.0, 20.0];
    let b = [1.0, 2.0, 3.0];
    let mut out = [0.0; 6];
    binary(
        BinaryOp::Add,
        &[2, 3],
        Strided::new(&a, 0, &[1, 0]),
        Strided::new(&b, 0, &[0, 1]),
        &mut out,
    );
    assert_eq!(out, [11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
}

#[test]
fn transposed_copy_and_large_parallel_path_agree_with_scalar_loop() {
    let rows = 300;
    let cols = 257;
    let data: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut out = vec![0.0; rows * cols];
    // Transposed view: shape [cols, rows], strides [1, cols].
    unary(
        UnaryOp::Tanh,
        &[cols, rows],
        Strided::new(&data, 0, &[1, cols]),
        &mut out,
    );
    for i in 0..cols {
        for j in 0..rows {
            assert_eq!(out[i * rows + j], tanh_f32(data[j * cols + i]));
        }
    }
}

#[test]
fn vectorisable_exp_and_tanh_match_f64_to_a_few_ulp() {
    let mut worst_exp = 0f64;
    let mut worst_tanh = 0f64;
    for i in -200_000..=200_000 {
        let x = i as f32 * 4.3e-4; // [-86, 86]
        let e = (x as f64).exp();
        worst_exp = worst_exp.max(((exp_f32(x) as f64) - e).abs() / e);
        let x = i as f32 * 1e-4; // [-20, 20], dense near 0
        let t = (x as f64).tanh();
        let err = ((tanh_f32(x) as f64) - t).abs() / t.abs().max(1e-30);
        worst_tanh = worst_tanh.max(if x == 0.0 { 0.0 } else { err });
    }
    assert!(worst_exp < 3e-7, "exp relative error {worst_exp:e}");
    assert!(worst_tanh < 3e-7, "tanh relative error {worst_tanh:e}");
    assert!(tanh_f32(f32::NAN).is_nan());
    assert_eq!((tanh_f32(100.0), tanh_f32(-100.0)), (1.0, -1.0));
    assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(exp_f32(0.0), 1.0);
}

#[test]
fn sigmoid_is_finite_at_extremes() {
    assert_eq!(sigmoid(-1000.0), 0.0);
    assert_eq!(sigmoid(1000.0), 1.0);
    approx::assert_abs_diff_eq!(sigmoid(0.0), 0.5, epsilon = 1e-7);
}

#[test]
#[should_panic(expected = "reaches element")]
fn out_of_bounds_view_is_refused() {
    let data = [1.0; 4];
    let mut out = [0.0; 6];
    unary(
        UnaryOp::Identity,
        &[2, 3],
        Strided::new(&data, 0, &[3, 1]),
        &mut out,
    );
}
