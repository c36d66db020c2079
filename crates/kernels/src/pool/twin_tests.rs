//! `kernels/pool.cu` on the virtual CUDA device (NVRTC's PTX) against the CPU twins in this module, on geometries
//! with overlapping padded windows, floor mode dropping a ragged last row or column, and
//! non-square kernels and strides, each with the intended grid and a too-small one (the
//! grid-stride loop). Every guarded buffer is checked for out-of-bounds writes after every
//! launch.
//!
//! Tolerances: against the twin, exact (equal values, NaN matching NaN; argmax indices equal):
//! the kernels gather in the order the twin scatters (NVRTC compiles pool.cu with
//! `--fmad=false`, as Rust never contracts). Average pooling is also held to an f64
//! reference, `1e-5` relative to `Σ|x|/d` (forward) and `Σ|dy|/d` (backward), and so is the
//! twin, so a wrong reference cannot pass both.

use super::{
    avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
    Pool2dGeometry,
};
use crate::cuda::twin::{self as kernels, Guarded};
use crate::test_support::{close, grid_stride_launches, guard, i, launch, random, same};
use std::time::Instant;

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

/// Calls pooling kernel `$kernel` on the virtual device on a 1-D grid of `gx` blocks of `block`
/// threads, with the geometry parameters `args` ([`PoolArgs`]) and then the kernel's own.
macro_rules! device_pool {
    ($kernel:ident, ($gx:expr, $block:expr), $args:expr, $($rest:expr),+) => {{
        let (planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow) = $args;
        kernels::$kernel(
            $gx, 1, 1, $block, 1, 1, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, $($rest),+
        )
    }};
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

/// `max_pool2d_forward` on the virtual device with `(gx, block)`: the output and the argmax indices.
fn device_max_forward(g: &Pool2dGeometry, x: &[f32], gx: u32, block: u32) -> (Vec<f32>, Vec<u32>) {
    let out_len = g.output_len();
    let args = pool_args(g);
    let state = (
        Guarded::f32(x),
        Guarded::f32(&vec![0.0; out_len]),
        Guarded::new(&vec![0u32; out_len], 0xdead_beef),
    );
    let (gx_, y, am) = launch("max_pool2d_forward", state, move |(x, y, am)| {
        // SAFETY: live guarded buffers of the geometry's input and output sizes.
        unsafe {
            device_pool!(
                max_pool2d_forward,
                (gx, block),
                args,
                x.ptr(),
                y.mut_ptr(),
                am.mut_ptr()
            )
        }
    });
    guard(&gx_, "max_pool input");
    guard(&y, "max_pool output");
    guard(&am, "max_pool argmax");
    (y.as_slice().to_vec(), am.as_slice().to_vec())
}

/// `max_pool2d_backward` on the virtual device with `(gx, block)`: the input gradient.
fn device_max_backward(
    g: &Pool2dGeometry,
    dy: &[f32],
    argmax: &[u32],
    gx: u32,
    block: u32,
) -> Vec<f32> {
    let args = pool_args(g);
    let state = (
        Guarded::f32(dy),
        Guarded::new(argmax, 0xdead_beef),
        Guarded::f32(&vec![f32::NAN; g.input_len()]),
    );
    let (gdy, gam, dx) = launch("max_pool2d_backward", state, move |(dy, am, dx)| {
        // SAFETY: live guarded buffers of the geometry's sizes.
        unsafe {
            device_pool!(
                max_pool2d_backward,
                (gx, block),
                args,
                dy.ptr(),
                am.ptr(),
                dx.mut_ptr()
            )
        }
    });
    guard(&gdy, "max_pool backward dy");
    guard(&gam, "max_pool backward argmax");
    guard(&dx, "max_pool backward dx");
    dx.as_slice().to_vec()
}

/// `avg_pool2d_forward` on the virtual device with `(gx, block)`.
fn device_avg_forward(
    g: &Pool2dGeometry,
    include_pad: bool,
    x: &[f32],
    gx: u32,
    block: u32,
) -> Vec<f32> {
    let (args, cip) = (pool_args(g), include_pad as i32);
    let state = (
        Guarded::f32(x),
        Guarded::f32(&vec![f32::NAN; g.output_len()]),
    );
    let (gx_, y) = launch("avg_pool2d_forward", state, move |(x, y)| {
        // SAFETY: live guarded buffers of the geometry's sizes.
        unsafe {
            device_pool!(
                avg_pool2d_forward,
                (gx, block),
                args,
                cip,
                x.ptr(),
                y.mut_ptr()
            )
        }
    });
    guard(&gx_, "avg_pool input");
    guard(&y, "avg_pool output");
    y.as_slice().to_vec()
}

/// `avg_pool2d_backward` on the virtual device with `(gx, block)`.
fn device_avg_backward(
    g: &Pool2dGeometry,
    include_pad: bool,
    dy: &[f32],
    gx: u32,
    block: u32,
) -> Vec<f32> {
    let (args, cip) = (pool_args(g), include_pad as i32);
    let state = (
        Guarded::f32(dy),
        Guarded::f32(&vec![f32::NAN; g.input_len()]),
    );
    let (gdy, dx) = launch("avg_pool2d_backward", state, move |(dy, dx)| {
        // SAFETY: live guarded buffers of the geometry's sizes.
        unsafe {
            device_pool!(
                avg_pool2d_backward,
                (gx, block),
                args,
                cip,
                dy.ptr(),
                dx.mut_ptr()
            )
        }
    });
    guard(&gdy, "avg_pool backward dy");
    guard(&dx, "avg_pool backward dx");
    dx.as_slice().to_vec()
}

/// Max-pooling input of geometry `gi`: few distinct values, so many ties and "first in
/// row-major window order" matters; geometry 0 also gets a NaN in plane 0 (in several
/// overlapping windows) and two in plane 1.
fn max_pool_input(g: &Pool2dGeometry, gi: usize) -> Vec<f32> {
    let mut x: Vec<f32> = random(g.input_len(), 0.0, 4.0, 4000 + gi as u64)
        .iter()
        .map(|v| v.floor())
        .collect();
    if gi == 0 {
        x[2 * g.in_w + 3] = f32::NAN;
        let hw = g.in_h * g.in_w;
        x[hw + 9] = f32::NAN;
        x[hw + 10] = f32::NAN;
    }
    x
}

/// The twin itself: each output is the (first) max of its window, at its argmax.
fn assert_outputs_are_window_maxima(g: &Pool2dGeometry, x: &[f32], y: &[f32], argmax: &[u32]) {
    let (oh, ow) = (g.out_h(), g.out_w());
    for (o, (&v, &a)) in y.iter().zip(argmax).enumerate() {
        let plane = o / (oh * ow);
        let (y0, y1, x0, x1) = pool_window(g, (o / ow) % oh, o % ow);
        let (ay, ax) = (a as usize / g.in_w, a as usize % g.in_w);
        assert!(
            (y0..y1).contains(&ay) && (x0..x1).contains(&ax),
            "twin argmax {a} outside window of output {o}"
        );
        let px = &x[plane * g.in_h * g.in_w..];
        assert!(v.to_bits() == px[a as usize].to_bits() || (v.is_nan() && px[a as usize].is_nan()));
    }
}

#[test]
fn max_pool2d_matches_cpu_twin_with_ties_and_nan() {
    let start = Instant::now();
    for (gi, g) in pool_geometries().iter().enumerate() {
        let x = max_pool_input(g, gi);
        let out_len = g.output_len();
        let mut twin = vec![0.0; out_len];
        let mut twin_am = vec![0u32; out_len];
        max_pool2d_forward(g, &x, &mut twin, &mut twin_am);
        let dy = random(out_len, -1.0, 1.0, 4100 + gi as u64);
        let mut twin_dx = vec![0.0; g.input_len()];
        max_pool2d_backward(g, &dy, &twin_am, &mut twin_dx);
        let what = format!("geometry {gi} {g:?}");

        for (gx, block) in grid_stride_launches(out_len) {
            let (y, am) = device_max_forward(g, &x, gx, block);
            same(&format!("max_pool2d_forward {what} grid {gx}"), &y, &twin);
            assert_eq!(am, twin_am, "max_pool2d argmax {what} grid {gx}");
        }
        assert_outputs_are_window_maxima(g, &x, &twin, &twin_am);
        for (gx, block) in grid_stride_launches(g.input_len()) {
            let dx = device_max_backward(g, &dy, &twin_am, gx, block);
            same(
                &format!("max_pool2d_backward {what} grid {gx}"),
                &dx,
                &twin_dx,
            );
        }
    }
    println!("max pool: {:.2} s", start.elapsed().as_secs_f64());
}

/// Average pooling in f64, forward and (gathered) backward, with the scales the tolerances
/// are stated against: `Σ|x|/d` per output and `Σ|dy|/d` per input element.
struct AvgReference {
    y: Vec<f64>,
    y_scale: Vec<f64>,
    dx: Vec<f64>,
    dx_scale: Vec<f64>,
}

fn avg_reference(g: &Pool2dGeometry, include_pad: bool, x: &[f32], dy: &[f32]) -> AvgReference {
    let out_len = g.output_len();
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.in_h * g.in_w);
    let (mut y, mut y_scale) = (vec![0.0f64; out_len], vec![0.0f64; out_len]);
    let (mut dx, mut dx_scale) = (vec![0.0f64; x.len()], vec![1e-30f64; x.len()]);
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
                y[o] += x[idx] as f64 / div;
                y_scale[o] += (x[idx] as f64).abs() / div;
                dx[idx] += dy[o] as f64 / div;
                dx_scale[idx] += (dy[o] as f64).abs() / div;
            }
        }
    }
    AvgReference {
        y,
        y_scale,
        dx,
        dx_scale,
    }
}

#[test]
fn avg_pool2d_matches_cpu_twin_and_f64_reference() {
    let start = Instant::now();
    for (gi, g) in pool_geometries().iter().enumerate() {
        for include_pad in [true, false] {
            let x = random(g.input_len(), -1.0, 1.0, 5000 + gi as u64);
            let dy = random(g.output_len(), -1.0, 1.0, 5100 + gi as u64);
            let want = avg_reference(g, include_pad, &x, &dy);
            let mut twin = vec![0.0; g.output_len()];
            avg_pool2d_forward(g, include_pad, &x, &mut twin);
            let mut twin_dx = vec![0.0; x.len()];
            avg_pool2d_backward(g, include_pad, &dy, &mut twin_dx);
            let what = format!("geometry {gi} {g:?} count_include_pad {include_pad}");
            let (y, y_scale) = (&want.y, &want.y_scale);
            close(&format!("CPU twin avg fwd {what}"), &twin, y, y_scale, 1e-5);
            let (dx, dx_scale) = (&want.dx, &want.dx_scale);
            close(
                &format!("CPU twin avg bwd {what}"),
                &twin_dx,
                dx,
                dx_scale,
                1e-5,
            );

            for (gx, block) in grid_stride_launches(g.output_len()) {
                let got = device_avg_forward(g, include_pad, &x, gx, block);
                close(&format!("avg fwd {what}"), &got, y, y_scale, 1e-5);
                same(&format!("avg fwd {what} grid {gx}"), &got, &twin);
            }
            for (gx, block) in grid_stride_launches(x.len()) {
                let got = device_avg_backward(g, include_pad, &dy, gx, block);
                close(&format!("avg bwd {what}"), &got, dx, dx_scale, 1e-5);
                same(&format!("avg bwd {what} grid {gx}"), &got, &twin_dx);
            }
        }
    }
    println!("avg pool: {:.2} s", start.elapsed().as_secs_f64());
}
