//! Every CUDA kernel of gemm.cu, conv.cu, pool.cu, softmax_ce.cu, batchnorm.cu, optim.cu,
//! dropout.cu and half.cu executed on the CPU (kernels/emu/cuda_emu.h) and compared with its CPU
//! twin in `strata_kernels::{gemm, conv, pool, softmax_ce, batchnorm, optim, dropout,
//! half_precision}` and, where the
//! result is arithmetic, with an f64 reference. Shapes are small and deliberately ragged against
//! the kernels' tiles and blocks; grids smaller than the work exercise the grid-stride loops.
//! Every guarded buffer is checked for out-of-bounds writes after every launch.
//!
//! Tolerances (`|got - ref| <= tol * scale`, `scale` stated per op; "exact" means equal values,
//! NaN matching NaN):
//!
//! | op                              | vs f64 reference                                  | vs CPU twin |
//! |---------------------------------|---------------------------------------------------|-------------|
//! | sgemm_* (all four)              | tol (k+3)*2^-23, scale alpha*Σ|a||b| + |beta*c|   | same bound  |
//! | im2col, col2im                  | adjoint identity <im2col x, C> = <x, col2im C>,   | exact       |
//! |                                 | tol 1e-5 relative to Σ|x||C|                      |             |
//! | max_pool2d fwd/bwd (+argmax)    | -                                                 | exact       |
//! | avg_pool2d fwd/bwd              | tol 1e-5, scale Σ|x|/d (fwd), Σ|dy|/d (bwd)       | exact       |
//! | softmax, log_softmax, CE fwd    | tol 1e-5, scale |ref| (probs), |x|+|m|+|ln s|+1   | same bound  |
//! | log_softmax bwd                 | tol 1e-5, scale |dy| + exp(y)*Σ|dy|                | same bound  |
//! | softmax CE bwd                  | tol 1e-6, scale |ref| + tiny                       | exact       |
//! | batch_norm train: mean          | tol 1e-6, scale Σ|x|/m                            | same bound  |
//! | batch_norm train: var, invstd   | tol 1e-5, scale |ref|                             | same bound  |
//! | batch_norm train/eval: output   | tol 1e-6, scale (|x|+|mean|)*|invstd*gamma|+|beta| | same bound |
//! | batch_norm backward             | tol 1e-5, scale |k|(|dy|+|a|+|xhat||b|), Σ|dy|, Σ|dy*xhat| | same |
//! | sgd_step, adam_step             | tol 1e-6, scale = the formula evaluated on |values| | exact     |
//! | dropout_forward, dropout_mask   | -                                                 | identical bits |
//! | convert_* (f16, bf16)           | -                                                 | identical bits |
//! | hgemm_f16, hgemm_bf16           | as sgemm, on the widened operands                 | same bound  |
//!
//! The CPU twin is held to the same f64 bound as the kernel (so a wrong reference cannot pass
//! both). "exact" against the twin is what the kernels' comments promise: same operation order
//! (the emulator compiles with -ffp-contract=off, as Rust never contracts).
#![cfg(feature = "cuda-emu")]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use strata_kernels::conv::{self, Conv2dGeometry};
use strata_kernels::cuda::emu::{self, run_emulated, Guarded, DEFAULT_TIMEOUT};
use strata_kernels::pool::{self, Pool2dGeometry};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A kernel's `int` parameter.
fn i(x: usize) -> i32 {
    i32::try_from(x).unwrap()
}

/// A launch dimension.
fn d(x: usize) -> u32 {
    u32::try_from(x).unwrap()
}

/// Runs `body` (one `emu::emu_*` call on the buffers in `state`) through [`run_emulated`]
/// (serialised, under the watchdog) and hands `state` back; panics with the launch's error.
fn launch<T: Send + 'static>(
    kernel: &'static str,
    state: T,
    body: impl FnOnce(&mut T) -> i32 + Send + 'static,
) -> T {
    run_emulated(kernel, DEFAULT_TIMEOUT, move || {
        let mut state = state;
        let code = body(&mut state);
        (code, state)
    })
    .unwrap_or_else(|e| panic!("{kernel}: {e}"))
}

/// Panics if a kernel wrote into the guard zones of `g`.
fn guard<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(g: &Guarded<T>, what: &str) {
    if let Err(e) = g.check(what) {
        panic!("{e}");
    }
}

/// `|got - want| <= tol * scale` element by element; NaN only where the reference is NaN.
fn close(what: &str, got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(scale.len(), want.len(), "{what}: scale length");
    for (idx, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= tol * s
        };
        assert!(
            ok,
            "{what}: element {idx}: got {g}, expected {w} (allowed error {tol} x {s:e}, off by {:e})",
            (g as f64 - w).abs()
        );
    }
}

/// Scale `|ref|`, floored at `floor`.
fn abs_scale(want: &[f64], floor: f64) -> Vec<f64> {
    want.iter().map(|w| w.abs().max(floor)).collect()
}

/// Equal values (NaN matches NaN; the sign of zero is not compared).
fn same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {idx}: emulated {g}, CPU twin {w}"
        );
    }
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

// ---------------------------------------------------------------------------------------------
// Convolution: im2col, col2im
// ---------------------------------------------------------------------------------------------

fn conv_geometries() -> Vec<Conv2dGeometry> {
    // (batch, cin, h, w, kh, kw, sh, sw, ph, pw)
    let raw: [[usize; 10]; 5] = [
        [2, 2, 7, 9, 3, 2, 2, 1, 1, 1],
        [3, 3, 5, 5, 5, 3, 2, 3, 2, 0],
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
        [2, 4, 10, 6, 1, 4, 3, 2, 0, 2],
        [2, 1, 13, 11, 4, 4, 2, 2, 3, 1],
    ];
    raw.iter()
        .map(
            |&[batch, cin, h, w, kh, kw, sh, sw, ph, pw]| Conv2dGeometry {
                batch,
                in_channels: cin,
                in_h: h,
                in_w: w,
                out_channels: 1,
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                pad_h: ph,
                pad_w: pw,
            },
        )
        .collect()
}

/// (K, P) of the im2col matrix of one image.
fn col_dims(g: &Conv2dGeometry) -> (usize, usize) {
    (
        g.in_channels * g.kernel_h * g.kernel_w,
        g.out_h() * g.out_w(),
    )
}

/// The two cols layouts of the kernels: (ld, col_batch_stride), stacked or side by side.
fn col_layouts(g: &Conv2dGeometry) -> [(usize, usize); 2] {
    let (k, p) = col_dims(g);
    [(p, k * p), (g.batch * p, p)]
}

/// Image `b`'s [K, P] matrix out of a batched cols buffer.
fn image_cols(cols: &[f32], b: usize, ld: usize, cbs: usize, k: usize, p: usize) -> Vec<f32> {
    (0..k)
        .flat_map(|r| cols[b * cbs + r * ld..b * cbs + r * ld + p].to_vec())
        .collect()
}

/// (grid.x, block) pairs: the intended launch and a too-small grid (grid-stride loop).
fn grid_stride_launches(total: usize) -> [(u32, u32); 2] {
    [(d(total.div_ceil(256).clamp(1, 65535)), 256), (1, 64)]
}

fn emu_im2col(
    g: &Conv2dGeometry,
    images: &[f32],
    ld: usize,
    cbs: usize,
    gx: u32,
    block: u32,
) -> Vec<f32> {
    let (k, p) = col_dims(g);
    let len = (g.batch - 1) * cbs + (k - 1) * ld + p;
    // NaN everywhere: an element the kernel fails to write shows up.
    let state = (Guarded::f32(images), Guarded::f32(&vec![f32::NAN; len]));
    let gg = *g;
    let (gy, ldi, cbsi) = (d(g.batch), i(ld), i(cbs));
    let (x, cols) = launch("im2col", state, move |(x, cols)| {
        // SAFETY: live guarded buffers: batch images, and cols covering every (b, r, q).
        unsafe {
            emu::emu_im2col(
                gx,
                gy,
                1,
                block,
                1,
                1,
                i(gg.in_channels),
                i(gg.in_h),
                i(gg.in_w),
                i(gg.kernel_h),
                i(gg.kernel_w),
                i(gg.stride_h),
                i(gg.stride_w),
                i(gg.pad_h),
                i(gg.pad_w),
                i(gg.out_h()),
                i(gg.out_w()),
                x.ptr(),
                cols.mut_ptr(),
                ldi,
                cbsi,
            )
        }
    });
    guard(&x, "im2col images");
    guard(&cols, "im2col cols");
    cols.as_slice().to_vec()
}

fn emu_col2im(
    g: &Conv2dGeometry,
    cols: &[f32],
    ld: usize,
    cbs: usize,
    images: &[f32],
    gx: u32,
    block: u32,
) -> Vec<f32> {
    let state = (Guarded::f32(cols), Guarded::f32(images));
    let gg = *g;
    let (gy, ldi, cbsi) = (d(g.batch), i(ld), i(cbs));
    let (c, x) = launch("col2im", state, move |(c, x)| {
        // SAFETY: live guarded buffers, as in emu_im2col.
        unsafe {
            emu::emu_col2im(
                gx,
                gy,
                1,
                block,
                1,
                1,
                i(gg.in_channels),
                i(gg.in_h),
                i(gg.in_w),
                i(gg.kernel_h),
                i(gg.kernel_w),
                i(gg.stride_h),
                i(gg.stride_w),
                i(gg.pad_h),
                i(gg.pad_w),
                i(gg.out_h()),
                i(gg.out_w()),
                c.ptr(),
                ldi,
                cbsi,
                x.mut_ptr(),
            )
        }
    });
    guard(&c, "col2im cols");
    guard(&x, "col2im images");
    x.as_slice().to_vec()
}

#[test]
fn im2col_and_col2im_match_cpu_twin_and_are_adjoint() {
    let start = Instant::now();
    for (gi, g) in conv_geometries().iter().enumerate() {
        let (k, p) = col_dims(g);
        let img_len = g.in_channels * g.in_h * g.in_w;
        let images = random(g.batch * img_len, -1.0, 1.0, 3000 + gi as u64);
        let start_images = random(g.batch * img_len, -1.0, 1.0, 3100 + gi as u64);
        let twin_cols: Vec<Vec<f32>> = (0..g.batch)
            .map(|b| {
                let mut cols = vec![0.0; k * p];
                conv::im2col(g, &images[b * img_len..(b + 1) * img_len], &mut cols);
                cols
            })
            .collect();
        for (ld, cbs) in col_layouts(g) {
            let len = (g.batch - 1) * cbs + (k - 1) * ld + p;
            let what = format!("geometry {gi} {g:?} ld {ld} batch stride {cbs}");
            for (gx, block) in grid_stride_launches(k * p) {
                let cols = emu_im2col(g, &images, ld, cbs, gx, block);
                for (b, twin) in twin_cols.iter().enumerate() {
                    let got = image_cols(&cols, b, ld, cbs, k, p);
                    same(&format!("im2col {what} image {b} grid {gx}"), &got, twin);
                }
                // Both layouts tile the buffer completely: nothing may be left unwritten.
                assert!(cols.iter().all(|v| !v.is_nan()), "im2col {what}: hole");
            }

            let dcols = random(len, -1.0, 1.0, 3200 + gi as u64);
            let mut twin = start_images.clone();
            for b in 0..g.batch {
                let mine = image_cols(&dcols, b, ld, cbs, k, p);
                conv::col2im(g, &mine, &mut twin[b * img_len..(b + 1) * img_len]);
            }
            // Adjoint identity in f64: <im2col(x), C> = <x, col2im(C) - start>.
            let (mut lhs, mut scale) = (0.0f64, 0.0f64);
            for (b, twin_b) in twin_cols.iter().enumerate() {
                let c_b = image_cols(&dcols, b, ld, cbs, k, p);
                for (u, v) in twin_b.iter().zip(&c_b) {
                    lhs += *u as f64 * *v as f64;
                    scale += (*u as f64 * *v as f64).abs();
                }
            }
            for (gx, block) in grid_stride_launches(img_len) {
                let got = emu_col2im(g, &dcols, ld, cbs, &start_images, gx, block);
                same(&format!("col2im {what} grid {gx}"), &got, &twin);
                let rhs: f64 = images
                    .iter()
                    .zip(got.iter().zip(&start_images))
                    .map(|(&x, (&y, &s0))| x as f64 * (y as f64 - s0 as f64))
                    .sum();
                assert!(
                    (lhs - rhs).abs() <= 1e-5 * scale.max(1e-30),
                    "{what} grid {gx}: <im2col x, C> = {lhs} but <x, col2im C> = {rhs}"
                );
            }
        }
    }
    println!("im2col/col2im: {:.2} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

fn pool_geometries() -> Vec<Pool2dGeometry> {
    // (batch, channels, h, w, kh, kw, sh, sw, ph, pw): overlapping padded windows, floor mode
    // dropping a ragged last row/column, non-square kernels and strides.
    let raw: [[usize; 10]; 6] = [
        [2, 3, 7, 8, 3, 3, 2, 2, 1, 1],
        [1, 2, 5, 6, 3, 2, 1, 2, 1, 1],
        [1, 1, 5, 5, 2, 2, 2, 2, 0, 0],
        [2, 1, 9, 10, 4, 5, 3, 2, 2, 2],
        [1, 3, 1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 4, 13, 1, 3, 1, 1, 0, 1],
    ];
    raw.iter()
        .map(
            |&[batch, channels, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w]| {
                Pool2dGeometry {
                    batch,
                    channels,
                    in_h,
                    in_w,
                    kernel_h,
                    kernel_w,
                    stride_h,
                    stride_w,
                    pad_h,
                    pad_w,
                }
            },
        )
        .collect()
}

/// The kernels' shared geometry parameters:
/// (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow).
type PoolArgs = (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32);

fn pool_args(g: &Pool2dGeometry) -> PoolArgs {
    (
        i(g.batch * g.channels),
        i(g.in_h),
        i(g.in_w),
        i(g.kernel_h),
        i(g.kernel_w),
        i(g.stride_h),
        i(g.stride_w),
        i(g.pad_h),
        i(g.pad_w),
        i(g.out_h()),
        i(g.out_w()),
    )
}

/// Clipped window (y0, y1, x0, x1) of output (oy, ox), computed independently of both sides.
fn pool_window(g: &Pool2dGeometry, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let y = (oy * g.stride_h) as isize - g.pad_h as isize;
    let x = (ox * g.stride_w) as isize - g.pad_w as isize;
    let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
    (
        clip(y, g.in_h),
        clip(y + g.kernel_h as isize, g.in_h),
        clip(x, g.in_w),
        clip(x + g.kernel_w as isize, g.in_w),
    )
}

#[test]
fn max_pool2d_matches_cpu_twin_with_ties_and_nan() {
    let start = Instant::now();
    for (gi, g) in pool_geometries().iter().enumerate() {
        // Few distinct values: many ties, so "first in row-major window order" matters.
        let mut x: Vec<f32> = random(g.input_len(), 0.0, 4.0, 4000 + gi as u64)
            .iter()
            .map(|v| v.floor())
            .collect();
        if gi == 0 {
            // A NaN in plane 0 (in several overlapping windows) and two in plane 1.
            x[2 * g.in_w + 3] = f32::NAN;
            let hw = g.in_h * g.in_w;
            x[hw + 9] = f32::NAN;
            x[hw + 10] = f32::NAN;
        }
        let out_len = g.output_len();
        let mut twin = vec![0.0; out_len];
        let mut twin_am = vec![0u32; out_len];
        pool::max_pool2d_forward(g, &x, &mut twin, &mut twin_am);
        let dy = random(out_len, -1.0, 1.0, 4100 + gi as u64);
        let mut twin_dx = vec![0.0; g.input_len()];
        pool::max_pool2d_backward(g, &dy, &twin_am, &mut twin_dx);
        let args = pool_args(g);
        let what = format!("geometry {gi} {g:?}");

        for (gx, block) in grid_stride_launches(out_len) {
            let state = (
                Guarded::f32(&x),
                Guarded::f32(&vec![0.0; out_len]),
                Guarded::new(&vec![0u32; out_len], 0xdead_beef),
            );
            let (gx_, y, am) = launch("max_pool2d_forward", state, move |(x, y, am)| {
                let (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow) = args;
                // SAFETY: live guarded buffers of the geometry's input and output sizes.
                unsafe {
                    emu::emu_max_pool2d_forward(
                        gx,
                        1,
                        1,
                        block,
                        1,
                        1,
                        planes,
                        h,
                        w,
                        kh,
                        kw,
                        sh,
                        sw,
                        ph,
                        pw,
                        oh,
                        ow,
                        x.ptr(),
                        y.mut_ptr(),
                        am.mut_ptr(),
                    )
                }
            });
            guard(&gx_, "max_pool input");
            guard(&y, "max_pool output");
            guard(&am, "max_pool argmax");
            same(
                &format!("max_pool2d_forward {what} grid {gx}"),
                y.as_slice(),
                &twin,
            );
            assert_eq!(
                am.as_slice(),
                &twin_am[..],
                "max_pool2d argmax {what} grid {gx}"
            );
        }
        // The twin itself: each output is the (first) max of its window.
        let (oh, ow) = (g.out_h(), g.out_w());
        for (o, (&v, &a)) in twin.iter().zip(&twin_am).enumerate() {
            let plane = o / (oh * ow);
            let (y0, y1, x0, x1) = pool_window(g, (o / ow) % oh, o % ow);
            let (ay, ax) = (a as usize / g.in_w, a as usize % g.in_w);
            assert!(
                (y0..y1).contains(&ay) && (x0..x1).contains(&ax),
                "twin argmax {a} outside window of output {o}"
            );
            let px = &x[plane * g.in_h * g.in_w..];
            assert!(
                v.to_bits() == px[a as usize].to_bits() || (v.is_nan() && px[a as usize].is_nan())
            );
        }

        for (gx, block) in grid_stride_launches(g.input_len()) {
            let state = (
                Guarded::f32(&dy),
                Guarded::new(&twin_am, 0xdead_beef),
                Guarded::f32(&vec![f32::NAN; g.input_len()]),
            );
            let (gdy, gam, dx) = launch("max_pool2d_backward", state, move |(dy, am, dx)| {
                let (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow) = args;
                // SAFETY: live guarded buffers of the geometry's sizes.
                unsafe {
                    emu::emu_max_pool2d_backward(
                        gx,
                        1,
                        1,
                        block,
                        1,
                        1,
                        planes,
                        h,
                        w,
                        kh,
                        kw,
                        sh,
                        sw,
                        ph,
                        pw,
                        oh,
                        ow,
                        dy.ptr(),
                        am.ptr(),
                        dx.mut_ptr(),
                    )
                }
            });
            guard(&gdy, "max_pool backward dy");
            guard(&gam, "max_pool backward argmax");
            guard(&dx, "max_pool backward dx");
            same(
                &format!("max_pool2d_backward {what} grid {gx}"),
                dx.as_slice(),
                &twin_dx,
            );
        }
    }
    println!("max pool: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn avg_pool2d_matches_cpu_twin_and_f64_reference() {
    let start = Instant::now();
    for (gi, g) in pool_geometries().iter().enumerate() {
        for include_pad in [true, false] {
            let x = random(g.input_len(), -1.0, 1.0, 5000 + gi as u64);
            let out_len = g.output_len();
            let (oh, ow, hw) = (g.out_h(), g.out_w(), g.in_h * g.in_w);
            // f64 references: forward and (gathered) backward.
            let dy = random(out_len, -1.0, 1.0, 5100 + gi as u64);
            let (mut want, mut scale) = (vec![0.0f64; out_len], vec![0.0f64; out_len]);
            let (mut want_dx, mut scale_dx) = (vec![0.0f64; x.len()], vec![1e-30f64; x.len()]);
            for o in 0..out_len {
                let plane = o / (oh * ow);
                let (y0, y1, x0, x1) = pool_window(g, (o / ow) % oh, o % ow);
                let div = if include_pad {
                    (g.kernel_h * g.kernel_w) as f64
                } else {
                    ((y1 - y0) * (x1 - x0)) as f64
                };
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let idx = plane * hw + iy * g.in_w + ix;
                        want[o] += x[idx] as f64 / div;
                        scale[o] += (x[idx] as f64).abs() / div;
                        want_dx[idx] += dy[o] as f64 / div;
                        scale_dx[idx] += (dy[o] as f64).abs() / div;
                    }
                }
            }
            let mut twin = vec![0.0; out_len];
            pool::avg_pool2d_forward(g, include_pad, &x, &mut twin);
            let mut twin_dx = vec![0.0; x.len()];
            pool::avg_pool2d_backward(g, include_pad, &dy, &mut twin_dx);
            let what = format!("geometry {gi} {g:?} count_include_pad {include_pad}");
            close(
                &format!("CPU twin avg fwd {what}"),
                &twin,
                &want,
                &scale,
                1e-5,
            );
            close(
                &format!("CPU twin avg bwd {what}"),
                &twin_dx,
                &want_dx,
                &scale_dx,
                1e-5,
            );
            let args = pool_args(g);
            let cip = include_pad as i32;

            for (gx, block) in grid_stride_launches(out_len) {
                let state = (Guarded::f32(&x), Guarded::f32(&vec![f32::NAN; out_len]));
                let (gx_, y) = launch("avg_pool2d_forward", state, move |(x, y)| {
                    let (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow) = args;
                    // SAFETY: live guarded buffers of the geometry's sizes.
                    unsafe {
                        emu::emu_avg_pool2d_forward(
                            gx,
                            1,
                            1,
                            block,
                            1,
                            1,
                            planes,
                            h,
                            w,
                            kh,
                            kw,
                            sh,
                            sw,
                            ph,
                            pw,
                            oh,
                            ow,
                            cip,
                            x.ptr(),
                            y.mut_ptr(),
                        )
                    }
                });
                guard(&gx_, "avg_pool input");
                guard(&y, "avg_pool output");
                close(
                    &format!("avg fwd {what}"),
                    y.as_slice(),
                    &want,
                    &scale,
                    1e-5,
                );
                same(&format!("avg fwd {what} grid {gx}"), y.as_slice(), &twin);
            }
            for (gx, block) in grid_stride_launches(x.len()) {
                let state = (Guarded::f32(&dy), Guarded::f32(&vec![f32::NAN; x.len()]));
                let (gdy, dx) = launch("avg_pool2d_backward", state, move |(dy, dx)| {
                    let (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow) = args;
                    // SAFETY: live guarded buffers of the geometry's sizes.
                    unsafe {
                        emu::emu_avg_pool2d_backward(
                            gx,
                            1,
                            1,
                            block,
                            1,
                            1,
                            planes,
                            h,
                            w,
                            kh,
                            kw,
                            sh,
                            sw,
                            ph,
                            pw,
                            oh,
                            ow,
                            cip,
                            dy.ptr(),
                            dx.mut_ptr(),
                        )
                    }
                });
                guard(&gdy, "avg_pool backward dy");
                guard(&dx, "avg_pool backward dx");
                close(
                    &format!("avg bwd {what}"),
                    dx.as_slice(),
                    &want_dx,
                    &scale_dx,
                    1e-5,
                );
                same(
                    &format!("avg bwd {what} grid {gx}"),
                    dx.as_slice(),
                    &twin_dx,
                );
            }
        }
    }
    println!("avg pool: {:.2} s", start.elapsed().as_secs_f64());
}
