//! The CPU convolution kernels against hand-computed values and a naive direct (7-loop, f64)
//! reference, the AVX-512 paths against the scalar definitions bit for bit, and the weight
//! gradient's helpers.

use super::weight_gradient::{dot_products, dot_products_portable, sum_of_sums};
use super::{
    col2im, conv2d_backward_input, conv2d_backward_weight, conv2d_forward, im2col, Conv2dGeometry,
};
use approx::abs_diff_eq;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[allow(clippy::too_many_arguments)]
fn geom(
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    pad: (usize, usize),
) -> Conv2dGeometry {
    Conv2dGeometry {
        batch,
        in_channels: cin,
        in_h: h,
        in_w: w,
        out_channels: cout,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: stride.0,
        stride_w: stride.1,
        pad_h: pad.0,
        pad_w: pad.1,
    }
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Calls `f(n, co, oy, ox, ci, iy, ix, ki, kj)` for every multiply-add of the convolution
/// whose input position lies inside the image. The naive references are built on this.
fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut([usize; 9])) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ci in 0..g.in_channels {
                        for ki in 0..g.kernel_h {
                            for kj in 0..g.kernel_w {
                                let iy = (oy * g.stride_h + ki) as isize - g.pad_h as isize;
                                let ix = (ox * g.stride_w + kj) as isize - g.pad_w as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= g.in_h as isize
                                    || ix >= g.in_w as isize
                                {
                                    continue;
                                }
                                f([n, co, oy, ox, ci, iy as usize, ix as usize, ki, kj]);
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Idx<'a>(&'a Conv2dGeometry);
impl Idx<'_> {
    fn x(&self, n: usize, ci: usize, iy: usize, ix: usize) -> usize {
        ((n * self.0.in_channels + ci) * self.0.in_h + iy) * self.0.in_w + ix
    }
    fn w(&self, co: usize, ci: usize, ki: usize, kj: usize) -> usize {
        ((co * self.0.in_channels + ci) * self.0.kernel_h + ki) * self.0.kernel_w + kj
    }
    fn y(&self, n: usize, co: usize, oy: usize, ox: usize) -> usize {
        ((n * self.0.out_channels + co) * self.0.out_h() + oy) * self.0.out_w() + ox
    }
}

fn naive_forward(g: &Conv2dGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
    let ix = Idx(g);
    let mut y = vec![0.0f64; g.output_len()];
    if let Some(b) = b {
        for (i, v) in y.iter_mut().enumerate() {
            *v = b[(i / (g.out_h() * g.out_w())) % g.out_channels] as f64;
        }
    }
    for_each_tap(g, |[n, co, oy, ox, ci, iy, ixx, ki, kj]| {
        y[ix.y(n, co, oy, ox)] += x[ix.x(n, ci, iy, ixx)] as f64 * w[ix.w(co, ci, ki, kj)] as f64;
    });
    y
}

/// dX[n,ci,iy,ix] = Σ over windows touching it of dY * W.
fn naive_backward_input(g: &Conv2dGeometry, dy: &[f32], w: &[f32]) -> Vec<f64> {
    let ix = Idx(g);
    let mut dx = vec![0.0f64; g.input_len()];
    for_each_tap(g, |[n, co, oy, ox, ci, iy, ixx, ki, kj]| {
        dx[ix.x(n, ci, iy, ixx)] += dy[ix.y(n, co, oy, ox)] as f64 * w[ix.w(co, ci, ki, kj)] as f64;
    });
    dx
}

/// dW[co,ci,ki,kj] = Σ dY * X;  db[co] = Σ dY.
fn naive_backward_weight(g: &Conv2dGeometry, x: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let ix = Idx(g);
    let mut dw = vec![0.0f64; g.weight_len()];
    for_each_tap(g, |[n, co, oy, ox, ci, iy, ixx, ki, kj]| {
        dw[ix.w(co, ci, ki, kj)] += dy[ix.y(n, co, oy, ox)] as f64 * x[ix.x(n, ci, iy, ixx)] as f64;
    });
    let plane = g.out_h() * g.out_w();
    let mut db = vec![0.0f64; g.out_channels];
    for (i, &v) in dy.iter().enumerate() {
        db[(i / plane) % g.out_channels] += v as f64;
    }
    (dw, db)
}

/// Equal within `tol · (1 + |want|)`.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            abs_diff_eq!(g as f64, w, epsilon = tol * (1.0 + w.abs())),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

const X4: [f32; 16] = [
    1., 2., 3., 0., //
    0., 1., 2., 3., //
    3., 0., 1., 2., //
    2., 3., 0., 1.,
];
const K3: [f32; 9] = [
    2., 0., 1., //
    0., 1., 2., //
    1., 0., 2.,
];

#[test]
fn known_values_no_padding() {
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (0, 0));
    assert_eq!((g.out_h(), g.out_w()), (2, 2));
    let mut y = vec![0.0; 4];
    conv2d_forward(&g, &X4, &K3, None, &mut y);
    assert_eq!(y, [15., 16., 6., 15.]);
    conv2d_forward(&g, &X4, &K3, Some(&[3.0]), &mut y);
    assert_eq!(y, [18., 19., 9., 18.]);
}

#[test]
fn known_values_padding_1() {
    // Zero-pad X4 to 6x6 and slide K3 over it. The top-left window and the kernel:
    //   [0 0 0]   [2 0 1]
    //   [0 1 2] * [0 1 2]  -> 1*1 + 2*2 + 1*2 = 7
    //   [0 0 1]   [1 0 2]
    // Full result:
    //   [ 7 12 10  2]
    //   [ 4 15 16 10]
    //   [10  6 15  6]
    //   [ 8 10  4  3]
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (1, 1));
    assert_eq!((g.out_h(), g.out_w()), (4, 4));
    let want = [
        7., 12., 10., 2., //
        4., 15., 16., 10., //
        10., 6., 15., 6., //
        8., 10., 4., 3.,
    ];
    let mut y = vec![0.0; 16];
    conv2d_forward(&g, &X4, &K3, None, &mut y);
    assert_eq!(y, want);
    let naive: Vec<f32> = naive_forward(&g, &X4, &K3, None)
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_eq!(
        naive, want,
        "the naive reference agrees with the hand computation"
    );
}

#[test]
fn stride_2_output_size_and_values() {
    // (7 + 2*1 - 3)/2 + 1 = 4
    let g = geom(1, 1, 7, 7, 1, 3, 3, (2, 2), (1, 1));
    assert_eq!((g.out_h(), g.out_w()), (4, 4));
    assert_eq!(g.output_len(), 16);
    let x: Vec<f32> = (0..49).map(|i| (i % 5) as f32 - 2.0).collect();
    let w: Vec<f32> = (0..9).map(|i| i as f32 * 0.5 - 1.0).collect();
    let mut y = vec![0.0; 16];
    conv2d_forward(&g, &x, &w, Some(&[0.25]), &mut y);
    assert_close("y", &y, &naive_forward(&g, &x, &w, Some(&[0.25])), 1e-6);
}

fn random_geometries() -> Vec<Conv2dGeometry> {
    vec![
        geom(3, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1)),
        geom(3, 3, 9, 7, 5, 3, 3, (2, 2), (1, 1)),
        geom(3, 3, 8, 11, 5, 2, 4, (2, 3), (1, 2)), // non-square kernel, mixed strides
        geom(3, 3, 7, 7, 5, 1, 1, (1, 1), (0, 0)),  // pointwise fast path
        geom(3, 3, 7, 7, 5, 1, 1, (2, 2), (0, 0)),  // 1x1 that still needs im2col
        geom(2, 1, 5, 5, 4, 5, 5, (1, 1), (2, 2)),  // kernel as large as the image
        geom(3, 2, 13, 6, 3, 5, 3, (3, 1), (0, 1)),
        geom(1, 16, 10, 10, 32, 5, 5, (1, 1), (2, 2)),
        geom(19, 2, 6, 6, 3, 3, 3, (1, 1), (0, 0)), // several weight-grad chunks, ragged tail
        geom(1, 3, 7, 7, 5, 1, 1, (1, 1), (0, 0)),  // single-image pointwise path
        geom(5, 2, 20, 20, 3, 3, 3, (1, 1), (1, 1)), // groups of 2 images, ragged last group
        geom(7, 4, 5, 5, 6, 5, 5, (1, 1), (0, 0)),  // one output per image, all in one GEMM
        geom(3, 2, 4, 6, 5, 4, 6, (2, 3), (0, 0)),  // fully connected, any stride
        // Fully connected with a large weight gradient (read through strides), two chunks.
        geom(600, 16, 5, 5, 48, 5, 5, (1, 1), (0, 0)),
    ]
}

#[test]
fn forward_matches_naive_on_random_geometries() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for g in random_geometries() {
        let x = random(&mut rng, g.input_len());
        let w = random(&mut rng, g.weight_len());
        let b = random(&mut rng, g.out_channels);
        let mut y = vec![f32::NAN; g.output_len()];
        conv2d_forward(&g, &x, &w, Some(&b), &mut y);
        assert_close(
            &format!("{g:?} y"),
            &y,
            &naive_forward(&g, &x, &w, Some(&b)),
            1e-5,
        );
        conv2d_forward(&g, &x, &w, None, &mut y);
        assert_close(
            &format!("{g:?} y"),
            &y,
            &naive_forward(&g, &x, &w, None),
            1e-5,
        );
    }
}

#[test]
fn backward_input_matches_naive_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for g in random_geometries() {
        let dy = random(&mut rng, g.output_len());
        let w = random(&mut rng, g.weight_len());
        let mut dx = vec![f32::NAN; g.input_len()];
        conv2d_backward_input(&g, &dy, &w, &mut dx);
        assert_close(
            &format!("{g:?} dx"),
            &dx,
            &naive_backward_input(&g, &dy, &w),
            1e-5,
        );
    }
}

#[test]
fn backward_weight_matches_naive() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for g in random_geometries() {
        let x = random(&mut rng, g.input_len());
        let dy = random(&mut rng, g.output_len());
        let mut dw = vec![f32::NAN; g.weight_len()];
        let mut db = vec![f32::NAN; g.out_channels];
        conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
        let (want_w, want_b) = naive_backward_weight(&g, &x, &dy);
        assert_close(&format!("{g:?} dw"), &dw, &want_w, 1e-5);
        assert_close(&format!("{g:?} db"), &db, &want_b, 1e-5);
        let mut dw2 = vec![f32::NAN; g.weight_len()];
        conv2d_backward_weight(&g, &x, &dy, &mut dw2, None);
        assert_eq!(dw, dw2);
    }
}

#[test]
fn forward_and_backward_are_adjoint() {
    // <conv(x), dy> == <x, dX(dy)> and == <w, dW(x, dy)>: ties the three kernels together.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for g in random_geometries() {
        let x = random(&mut rng, g.input_len());
        let w = random(&mut rng, g.weight_len());
        let dy = random(&mut rng, g.output_len());
        let mut y = vec![0.0; g.output_len()];
        let mut dx = vec![0.0; g.input_len()];
        let mut dw = vec![0.0; g.weight_len()];
        conv2d_forward(&g, &x, &w, None, &mut y);
        conv2d_backward_input(&g, &dy, &w, &mut dx);
        conv2d_backward_weight(&g, &x, &dy, &mut dw, None);
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| p as f64 * q as f64)
                .sum::<f64>()
        };
        let lhs = dot(&y, &dy);
        assert!(
            (lhs - dot(&x, &dx)).abs() < 1e-3 * (1.0 + lhs.abs()),
            "{g:?}"
        );
        assert!(
            (lhs - dot(&w, &dw)).abs() < 1e-3 * (1.0 + lhs.abs()),
            "{g:?}"
        );
    }
}

#[test]
fn im2col_col2im_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for g in random_geometries() {
        let k = g.in_channels * g.kernel_h * g.kernel_w;
        let p = g.out_h() * g.out_w();
        let x = random(&mut rng, g.in_channels * g.in_h * g.in_w);
        let c = random(&mut rng, k * p);
        let mut cols = vec![f32::NAN; k * p];
        im2col(&g, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im(&g, &c, &mut back);
        let lhs: f64 = cols
            .iter()
            .zip(&c)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(&back)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()) + 1e-4,
            "{g:?}: {lhs} vs {rhs}"
        );
    }
}

#[test]
fn im2col_known_layout() {
    // 1x3x3 image, 2x2 kernel, pad 1, stride 2 -> 2x2 output; row (ki,kj) lists the pixel each
    // output window sees at that offset, 0 in the padding.
    let g = geom(1, 1, 3, 3, 1, 2, 2, (2, 2), (1, 1));
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut cols = vec![f32::NAN; 4 * 4];
    im2col(&g, &x, &mut cols);
    #[rustfmt::skip]
    let want = [
        0., 0., 0., 5., // (0,0)
        0., 0., 4., 6., // (0,1)
        0., 2., 0., 8., // (1,0)
        1., 3., 7., 9., // (1,1)
    ];
    assert_eq!(cols, want);
}

#[test]
fn weight_grad_is_deterministic_across_thread_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let g = geom(37, 6, 14, 14, 16, 5, 5, (1, 1), (0, 0));
    let x = random(&mut rng, g.input_len());
    let dy = random(&mut rng, g.output_len());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut dw = vec![0.0; g.weight_len()];
            let mut db = vec![0.0; g.out_channels];
            conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
            let mut dx = vec![0.0; g.input_len()];
            conv2d_backward_input(&g, &dy, &dw, &mut dx);
            (dw, db, dx)
        })
    };
    let one = run(1);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for t in [2, 3] {
        let other = run(t);
        assert_eq!(bits(&one.0), bits(&other.0), "dW differs at {t} threads");
        assert_eq!(bits(&one.1), bits(&other.1), "db differs at {t} threads");
        assert_eq!(bits(&one.2), bits(&other.2), "dX differs at {t} threads");
    }
}

#[test]
fn empty_batch_is_fine() {
    let g = geom(0, 2, 5, 5, 3, 3, 3, (1, 1), (1, 1));
    let mut y: Vec<f32> = vec![];
    conv2d_forward(&g, &[], &[0.0; 54], None, &mut y);
    let mut dw = vec![1.0; 54];
    let mut db = vec![1.0; 3];
    conv2d_backward_weight(&g, &[], &[], &mut dw, Some(&mut db));
    assert!(dw.iter().chain(&db).all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "conv2d_forward: input has 100 elements, geometry needs 784")]
fn forward_short_input_panics() {
    let g = geom(1, 1, 28, 28, 6, 5, 5, (1, 1), (2, 2));
    let mut y = vec![0.0; g.output_len()];
    conv2d_forward(&g, &[0.0; 100], &[0.0; 150], None, &mut y);
}

#[test]
#[should_panic(expected = "conv2d_forward: output")]
fn forward_short_output_panics() {
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (0, 0));
    conv2d_forward(&g, &X4, &K3, None, &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "conv2d_forward: bias")]
fn forward_wrong_bias_panics() {
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (0, 0));
    conv2d_forward(&g, &X4, &K3, Some(&[1.0, 2.0]), &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "conv2d_backward_input: weight")]
fn backward_input_short_weight_panics() {
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (0, 0));
    conv2d_backward_input(&g, &[0.0; 4], &[0.0; 8], &mut [0.0; 16]);
}

#[test]
#[should_panic(expected = "conv2d_backward_weight: grad_bias")]
fn backward_weight_short_bias_panics() {
    let g = geom(1, 1, 4, 4, 2, 3, 3, (1, 1), (0, 0));
    conv2d_backward_weight(&g, &X4, &[0.0; 8], &mut [0.0; 18], Some(&mut [0.0; 1]));
}

#[test]
#[should_panic(expected = "im2col: cols")]
fn im2col_short_cols_panics() {
    let g = geom(1, 1, 4, 4, 1, 3, 3, (1, 1), (0, 0));
    im2col(&g, &X4, &mut [0.0; 35]);
}

#[test]
#[should_panic(expected = "larger than the padded input")]
fn kernel_larger_than_input_panics() {
    geom(1, 1, 4, 4, 1, 5, 3, (1, 1), (0, 0)).out_h();
}

#[test]
#[should_panic(expected = "stride_w is 0")]
fn zero_stride_panics() {
    geom(1, 1, 4, 4, 1, 3, 3, (1, 0), (0, 0)).out_w();
}

/// im2col and col2im have AVX-512 paths for layers at most 16 wide (a masked row copy, and a
/// gather of each image row): both must equal the element-by-element definitions bit for bit,
/// col2im adding each pixel's terms in (kernel row, kernel column) order onto what the image
/// held, for every padding a 5x5 kernel allows and widths at and around 16.
#[test]
fn narrow_im2col_and_col2im_equal_the_scalar_definitions_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for (h, w, k, pad) in [
        (14, 14, 5, 2),
        (12, 12, 5, 0),
        (9, 16, 3, 1),
        (8, 15, 5, 1),
        (6, 20, 5, 2),
        (7, 3, 3, 1),
    ] {
        let g = Conv2dGeometry {
            batch: 1,
            in_channels: 3,
            in_h: h,
            in_w: w,
            out_channels: 1,
            kernel_h: k,
            kernel_w: k,
            stride_h: 1,
            stride_w: 1,
            pad_h: pad,
            pad_w: pad,
        };
        let (oh, ow) = (g.out_h(), g.out_w());
        let image = random(&mut rng, g.input_len());
        let mut cols = vec![f32::NAN; 3 * k * k * oh * ow];
        im2col(&g, &image, &mut cols);
        let mut want_image = random(&mut rng, g.input_len());
        let mut got_image = want_image.clone();
        let dcols = random(&mut rng, cols.len());
        for ci in 0..3 {
            for ki in 0..k {
                for kj in 0..k {
                    let r = (ci * k + ki) * k + kj;
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (iy, ix) = (
                                (oy + ki) as isize - pad as isize,
                                (ox + kj) as isize - pad as isize,
                            );
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                            let at = (ci * h + iy.max(0) as usize) * w + ix.max(0) as usize;
                            let want = if inside { image[at] } else { 0.0 };
                            let got = cols[r * oh * ow + oy * ow + ox];
                            assert_eq!(got.to_bits(), want.to_bits(), "im2col {h}x{w} k{k} p{pad}");
                            if inside {
                                want_image[at] += dcols[r * oh * ow + oy * ow + ox];
                            }
                        }
                    }
                }
            }
        }
        col2im(&g, &dcols, &mut got_image);
        for (i, (a, b)) in got_image.iter().zip(&want_image).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "col2im {h}x{w} k{k} p{pad} pixel {i}"
            );
        }
    }
}

/// The side-by-side sums add exactly what one segment after another adds.
#[test]
fn sum_of_sums_equals_one_segment_after_another_bit_for_bit() {
    let values: Vec<f32> = (0..20_000u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 65_536.0 - 128.0) * 1e-3)
        .collect();
    for (count, len) in [(1, 5), (8, 196), (13, 784), (100, 7), (3, 0)] {
        let segments: Vec<&[f32]> = (0..count)
            .map(|i| &values[i * len..(i + 1) * len])
            .collect();
        let mut one_by_one = 0.0f64;
        for segment in &segments {
            one_by_one += segment.iter().map(|&v| v as f64).sum::<f64>();
        }
        assert_eq!(
            sum_of_sums(&segments).to_bits(),
            one_by_one.to_bits(),
            "{count} x {len}"
        );
    }
    // Segments of different lengths take the plain loop.
    let ragged: Vec<&[f32]> = (0..9).map(|i| &values[i * 50..i * 50 + 10 + i]).collect();
    let one_by_one: f64 = ragged
        .iter()
        .map(|s| s.iter().map(|&v| v as f64).sum::<f64>())
        .sum();
    assert_eq!(sum_of_sums(&ragged), one_by_one);
}

/// Both versions of `dot_products` against an f64 loop, on ragged sizes (rows and columns
/// not multiples of the 2x4 blocking, lengths not multiples of 8 or 16).
#[test]
fn dot_products_match_an_f64_loop() {
    for (m, n, len) in [
        (1, 1, 1),
        (3, 5, 17),
        (6, 25, 3136),
        (7, 9, 40),
        (16, 25, 15),
    ] {
        let a: Vec<f32> = (0..m * len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let b: Vec<f32> = (0..n * len)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 24.0)
            .collect();
        let want: Vec<f64> = (0..m * n)
            .map(|o| {
                let (i, j) = (o / n, o % n);
                (0..len)
                    .map(|q| a[i * len + q] as f64 * b[j * len + q] as f64)
                    .sum()
            })
            .collect();
        let (mut fast, mut portable) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
        dot_products(m, n, len, &a, &b, &mut fast);
        dot_products_portable(m, n, len, &a, &b, &mut portable);
        for (o, &w) in want.iter().enumerate() {
            let scale: f64 = (0..len)
                .map(|q| (a[(o / n) * len + q] as f64 * b[(o % n) * len + q] as f64).abs())
                .sum::<f64>()
                .max(1.0);
            for (name, got) in [("dispatched", fast[o]), ("portable", portable[o])] {
                assert!(
                    (got as f64 - w).abs() <= 1e-5 * scale,
                    "{name} m={m} n={n} len={len} output {o}: {got} vs {w}"
                );
            }
        }
    }
}
