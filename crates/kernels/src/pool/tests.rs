//! The CPU pooling kernels against hand-computed values and a naive reference, and the 2x2
//! fast paths against the window-by-window rule bit for bit.

use super::{
    avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
    Pool2dGeometry,
};
use approx::abs_diff_eq;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn geom(
    batch: usize,
    ch: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> Pool2dGeometry {
    Pool2dGeometry {
        batch,
        channels: ch,
        in_h: h,
        in_w: w,
        kernel_h: k.0,
        kernel_w: k.1,
        stride_h: s.0,
        stride_w: s.1,
        pad_h: p.0,
        pad_w: p.1,
    }
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Window of output (oy, ox) as the in-image (iy, ix) positions, row-major.
fn window(g: &Pool2dGeometry, oy: usize, ox: usize) -> Vec<(usize, usize)> {
    let mut v = vec![];
    for ki in 0..g.kernel_h {
        for kj in 0..g.kernel_w {
            let iy = (oy * g.stride_h + ki) as isize - g.pad_h as isize;
            let ix = (ox * g.stride_w + kj) as isize - g.pad_w as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                v.push((iy as usize, ix as usize));
            }
        }
    }
    v
}

/// Naive max pool: (values, argmax) per output, first max wins.
fn naive_max(g: &Pool2dGeometry, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.in_h * g.in_w);
    let (mut y, mut am) = (vec![], vec![]);
    for plane in x.chunks(hw) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = (f32::NEG_INFINITY, u32::MAX);
                for (iy, ix) in window(g, oy, ox) {
                    let i = iy * g.in_w + ix;
                    if best.1 == u32::MAX || plane[i] > best.0 {
                        best = (plane[i], i as u32);
                    }
                }
                y.push(best.0);
                am.push(best.1);
            }
        }
    }
    (y, am)
}

fn naive_avg(g: &Pool2dGeometry, include_pad: bool, x: &[f32]) -> Vec<f64> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.in_h * g.in_w);
    let mut y = vec![];
    for plane in x.chunks(hw) {
        for oy in 0..oh {
            for ox in 0..ow {
                let win = window(g, oy, ox);
                let s: f64 = win
                    .iter()
                    .map(|&(iy, ix)| plane[iy * g.in_w + ix] as f64)
                    .sum();
                let d = if include_pad {
                    g.kernel_h * g.kernel_w
                } else {
                    win.len()
                };
                y.push(s / d as f64);
            }
        }
    }
    y
}

fn naive_avg_backward(g: &Pool2dGeometry, include_pad: bool, dy: &[f32]) -> Vec<f64> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.in_h * g.in_w);
    let mut dx = vec![0.0f64; g.input_len()];
    for (pl, d) in dy.chunks(oh * ow).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let win = window(g, oy, ox);
                let div = if include_pad {
                    g.kernel_h * g.kernel_w
                } else {
                    win.len()
                };
                for (iy, ix) in win {
                    dx[pl * hw + iy * g.in_w + ix] += d[oy * ow + ox] as f64 / div as f64;
                }
            }
        }
    }
    dx
}

/// Equal within `1e-5 · (1 + |want|)`.
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            abs_diff_eq!(g as f64, w, epsilon = 1e-5 * (1.0 + w.abs())),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Overlapping windows, padding, non-square kernels and mixed strides: the geometries both
/// poolings are checked against the naive reference on, besides one of their own each.
fn overlapping_geometries() -> [Pool2dGeometry; 3] {
    [
        geom(2, 3, 7, 6, (3, 3), (1, 1), (0, 0)),
        geom(2, 3, 7, 8, (3, 3), (2, 2), (1, 1)),
        geom(1, 2, 9, 5, (2, 3), (3, 1), (1, 1)),
    ]
}

const X4: [f32; 16] = [
    1., 2., 1., 0., //
    0., 1., 2., 3., //
    3., 0., 1., 2., //
    2., 4., 0., 1.,
];

#[test]
fn max_pool_known_values_and_backward() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    let mut y = vec![0.0; 4];
    let mut am = vec![0; 4];
    max_pool2d_forward(&g, &X4, &mut y, &mut am);
    assert_eq!(y, [2., 3., 4., 2.]);
    // Top-left window [1 2; 0 1] -> the 2 at (0,1); top-right [1 0; 2 3] -> (1,3);
    // bottom-left [3 0; 2 4] -> (3,1); bottom-right [1 2; 0 1] -> (2,3).
    assert_eq!(am, [1, 7, 13, 11]);
    let mut dx = vec![f32::NAN; 16];
    max_pool2d_backward(&g, &[10., 20., 30., 40.], &am, &mut dx);
    #[rustfmt::skip]
    let want = [
        0., 10., 0., 0.,
        0., 0., 0., 20.,
        0., 0., 0., 40.,
        0., 30., 0., 0.,
    ];
    assert_eq!(dx, want);
}

#[test]
fn max_pool_ties_pick_first_and_nan_propagates() {
    let g = geom(1, 1, 2, 4, (2, 2), (2, 2), (0, 0));
    let x = [
        5.,
        5.,
        1.,
        f32::NAN, //
        5.,
        5.,
        f32::NAN,
        9.,
    ];
    let mut y = vec![0.0; 2];
    let mut am = vec![0; 2];
    max_pool2d_forward(&g, &x, &mut y, &mut am);
    assert_eq!((y[0], am[0]), (5.0, 0));
    assert!(y[1].is_nan());
    assert_eq!(am[1], 3, "the first NaN in row-major window order");
}

#[test]
fn max_pool_padding_is_never_the_max() {
    // All-negative input: a zero-padded pool would return 0 on the border.
    let g = geom(1, 1, 3, 3, (3, 3), (1, 1), (1, 1));
    let x: Vec<f32> = (1..=9).map(|v| -(v as f32)).collect();
    let mut y = vec![0.0; 9];
    let mut am = vec![0; 9];
    max_pool2d_forward(&g, &x, &mut y, &mut am);
    assert_eq!(y, [-1., -1., -2., -1., -1., -2., -4., -4., -5.]);
}

#[test]
fn max_pool_overlapping_windows_vs_naive() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let tiling = geom(3, 6, 28, 28, (2, 2), (2, 2), (0, 0));
    for g in overlapping_geometries().into_iter().chain([tiling]) {
        let x = random(&mut rng, g.input_len());
        let mut y = vec![0.0; g.output_len()];
        let mut am = vec![0; g.output_len()];
        max_pool2d_forward(&g, &x, &mut y, &mut am);
        let (wy, wam) = naive_max(&g, &x);
        assert_eq!(y, wy, "{g:?}");
        assert_eq!(am, wam, "{g:?}");

        // Backward: overlapping windows that pick the same element add up.
        let dy = random(&mut rng, g.output_len());
        let mut dx = vec![f32::NAN; g.input_len()];
        max_pool2d_backward(&g, &dy, &am, &mut dx);
        let hw = g.in_h * g.in_w;
        let ohw = g.out_h() * g.out_w();
        let mut want = vec![0.0f64; g.input_len()];
        for (o, (&d, &i)) in dy.iter().zip(&wam).enumerate() {
            want[(o / ohw) * hw + i as usize] += d as f64;
        }
        assert_close(&format!("{g:?} dx"), &dx, &want);
    }
}

#[test]
fn avg_pool_known_values() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    let mut y = vec![0.0; 4];
    avg_pool2d_forward(&g, true, &X4, &mut y);
    // (1+2+0+1)/4, (1+0+2+3)/4, (3+0+2+4)/4, (1+2+0+1)/4
    assert_eq!(y, [1.0, 1.5, 2.25, 1.0]);
    let mut dx = vec![f32::NAN; 16];
    avg_pool2d_backward(&g, true, &[4., 8., 12., 16.], &mut dx);
    #[rustfmt::skip]
    let want = [
        1., 1., 2., 2.,
        1., 1., 2., 2.,
        3., 3., 4., 4.,
        3., 3., 4., 4.,
    ];
    assert_eq!(dx, want);
}

#[test]
fn avg_pool_padding_divisor_both_ways() {
    // 2x2 input of ones, k3 s1 p1: every window sees all 4 ones but holds 9 slots.
    let g = geom(1, 1, 2, 2, (3, 3), (1, 1), (1, 1));
    let mut y = vec![0.0; 4];
    avg_pool2d_forward(&g, true, &[1.0; 4], &mut y);
    assert_eq!(y, [4.0 / 9.0; 4]);
    avg_pool2d_forward(&g, false, &[1.0; 4], &mut y);
    assert_eq!(y, [1.0; 4]);
}

#[test]
fn avg_pool_vs_naive_with_and_without_pad_counting() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let wide_padding = geom(2, 2, 5, 5, (4, 4), (1, 1), (2, 2));
    for g in overlapping_geometries().into_iter().chain([wide_padding]) {
        for include_pad in [true, false] {
            let x = random(&mut rng, g.input_len());
            let mut y = vec![0.0; g.output_len()];
            avg_pool2d_forward(&g, include_pad, &x, &mut y);
            assert_close(
                &format!("{g:?} {include_pad} y"),
                &y,
                &naive_avg(&g, include_pad, &x),
            );
            let dy = random(&mut rng, g.output_len());
            let mut dx = vec![f32::NAN; g.input_len()];
            avg_pool2d_backward(&g, include_pad, &dy, &mut dx);
            assert_close(
                &format!("{g:?} {include_pad} dx"),
                &dx,
                &naive_avg_backward(&g, include_pad, &dy),
            );
        }
    }
}

#[test]
fn output_size_floor_mode() {
    // (7 + 2 - 3)/2 + 1 = 4; (6 - 2)/2 + 1 = 3 (the last column is dropped).
    let g = geom(1, 1, 7, 7, (3, 3), (2, 2), (1, 1));
    assert_eq!((g.out_h(), g.out_w()), (4, 4));
    let g = geom(1, 1, 5, 5, (2, 2), (2, 2), (0, 0));
    assert_eq!((g.out_h(), g.out_w()), (2, 2));
}

#[test]
#[should_panic(expected = "pad_h 2 must be at most half of kernel_h 3")]
fn too_much_padding_panics() {
    geom(1, 1, 5, 5, (3, 3), (1, 1), (2, 0)).out_h();
}

#[test]
#[should_panic(expected = "max_pool2d_forward: input has 15 elements, geometry needs 16")]
fn max_pool_short_input_panics() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    max_pool2d_forward(&g, &[0.0; 15], &mut [0.0; 4], &mut [0; 4]);
}

#[test]
#[should_panic(expected = "max_pool2d_backward: argmax")]
fn max_pool_backward_short_argmax_panics() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    max_pool2d_backward(&g, &[0.0; 4], &[0; 3], &mut [0.0; 16]);
}

#[test]
#[should_panic(expected = "max_pool2d_backward: argmax index 16")]
fn max_pool_backward_bad_argmax_panics() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    max_pool2d_backward(&g, &[0.0; 4], &[0, 1, 2, 16], &mut [0.0; 16]);
}

#[test]
#[should_panic(expected = "avg_pool2d_forward: output")]
fn avg_pool_short_output_panics() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    avg_pool2d_forward(&g, true, &[0.0; 16], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "avg_pool2d_backward: grad_input")]
fn avg_pool_backward_short_grad_input_panics() {
    let g = geom(1, 1, 4, 4, (2, 2), (2, 2), (0, 0));
    avg_pool2d_backward(&g, true, &[0.0; 4], &mut [0.0; 15]);
}

/// The 2x2 stride-2 tiling has its own vectorised path: against the window-by-window rule
/// (first maximum in reading order, the first NaN wins and stays) on widths below, at and
/// above one 16-lane register, odd widths (the last column unused), ties and NaNs.
#[test]
fn max_pool_2x2_fast_path_matches_the_window_rule() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for w in [2, 3, 5, 14, 24, 28, 31, 32, 33, 34, 47, 64] {
        let h = 6;
        let g = geom(2, 3, h, w, (2, 2), (2, 2), (0, 0));
        let mut x = random(&mut rng, g.input_len());
        for (i, v) in x.iter_mut().enumerate() {
            match i % 23 {
                3 => *v = f32::NAN,
                7 | 8 => *v = 0.5, // ties inside a tile
                _ => {}
            }
        }
        let (mut y, mut am) = (vec![0.0; g.output_len()], vec![0; g.output_len()]);
        max_pool2d_forward(&g, &x, &mut y, &mut am);
        let hw = h * w;
        for (o, (&v, &i)) in y.iter().zip(&am).enumerate() {
            let (plane, within) = (o / (g.out_h() * g.out_w()), o % (g.out_h() * g.out_w()));
            let (oy, ox) = (within / g.out_w(), within % g.out_w());
            let mut best: Option<(f32, usize)> = None;
            for (iy, ix) in window(&g, oy, ox) {
                let j = iy * w + ix;
                let c = x[plane * hw + j];
                best = match best {
                    None => Some((c, j)),
                    Some((b, _)) if (c > b) || (c.is_nan() && !b.is_nan()) => Some((c, j)),
                    keep => keep,
                };
            }
            let (want, want_i) = best.unwrap();
            assert_eq!(
                (v.to_bits(), i as usize),
                (want.to_bits(), want_i),
                "width {w}, output {o}"
            );
        }
    }
}
