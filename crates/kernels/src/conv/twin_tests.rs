//! `kernels/conv.cu` (im2col, col2im) on the virtual CUDA device (NVRTC's PTX) against the CPU twins
//! [`im2col`] and [`col2im`], on geometries ragged against the kernels' blocks, in both batch
//! layouts of the cols buffer, with the intended grid and a too-small one (the grid-stride
//! loop). Every guarded buffer is checked for out-of-bounds writes after every launch.
//!
//! Tolerances: against the twin, exact (equal values): both compute the same copies and the
//! same additions in the same order (NVRTC compiles conv.cu with `--fmad=false`, as Rust never
//! contracts). Against the adjoint identity `<im2col x, C> = <x, col2im C>` in f64,
//! `1e-5` relative to `Σ|x||C|`.

use super::{col2im, im2col, Conv2dGeometry};
use crate::cuda::twin::{self as kernels, Guarded};
use crate::test_support::{d, grid_stride_launches, guard, i, launch, random, same};
use std::time::Instant;

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

/// Calls kernel `$kernel` on the virtual device on a grid of `gx` x `gy` blocks (`gy` = images) of
/// `block` threads, with the geometry parameters of `g` (`cin, h, w, kh, kw, sh, sw, ph, pw,
/// oh, ow`) and then the kernel's own.
macro_rules! device_conv {
    ($kernel:ident, ($gx:expr, $gy:expr, $block:expr), $g:expr, $($rest:expr),+) => {{
        let g: Conv2dGeometry = $g;
        kernels::$kernel(
            $gx,
            $gy,
            1,
            $block,
            1,
            1,
            i(g.in_channels),
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
            $($rest),+
        )
    }};
}

fn device_im2col(
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
            device_conv!(
                im2col,
                (gx, gy, block),
                gg,
                x.ptr(),
                cols.mut_ptr(),
                ldi,
                cbsi
            )
        }
    });
    guard(&x, "im2col images");
    guard(&cols, "im2col cols");
    cols.as_slice().to_vec()
}

fn device_col2im(
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
        // SAFETY: live guarded buffers, as in device_im2col.
        unsafe { device_conv!(col2im, (gx, gy, block), gg, c.ptr(), ldi, cbsi, x.mut_ptr()) }
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
                im2col(g, &images[b * img_len..(b + 1) * img_len], &mut cols);
                cols
            })
            .collect();
        for (ld, cbs) in col_layouts(g) {
            let len = (g.batch - 1) * cbs + (k - 1) * ld + p;
            let what = format!("geometry {gi} {g:?} ld {ld} batch stride {cbs}");
            for (gx, block) in grid_stride_launches(k * p) {
                let cols = device_im2col(g, &images, ld, cbs, gx, block);
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
                col2im(g, &mine, &mut twin[b * img_len..(b + 1) * img_len]);
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
                let got = device_col2im(g, &dcols, ld, cbs, &start_images, gx, block);
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
