//! 2-D max and average pooling on NCHW `f32` tensors, floor mode, PyTorch semantics.
//!
//! Shapes: input `[n, c, h, w]` -> output `[n, c, oh, ow]` with
//! `oh = (h + 2*pad_h - kernel_h) / stride_h + 1` (likewise `ow`).
//!
//! ```text
//! max:  y[oy,ox] = max over the window of x        (padding is -inf, so never chosen)
//!       dX[argmax[oy,ox]] += dY[oy,ox]
//! avg:  y[oy,ox] = Σ_window x / d                   d = kh*kw (count_include_pad)
//!                                                   or the number of non-pad elements
//!       dX[window] += dY[oy,ox] / d
//! ```
//!
//! Every (n, c) plane is independent, so planes are the unit of parallel work. Backward
//! passes scatter within a plane in output order, so overlapping windows accumulate in a
//! fixed order and the result does not depend on the thread count.
//!
//! PyTorch requires `pad <= kernel/2`; together with floor mode that guarantees every window
//! holds at least one real element, so a max is always defined and no divisor is 0.
//!
//! Reading order: this file (the geometry and the window-by-window loops, with a 2x2 stride-2
//! path for the tiling every pooling layer of the zoo uses), `x86.rs` (that 2x2 max pooling
//! sixteen outputs at a time with AVX-512), [`cuda`] (launches of `kernels/pool.cu`), and the
//! tests: `tests.rs` against a naive reference, `twin_tests.rs` running `kernels/pool.cu` on
//! the virtual CUDA device against these CPU kernels.

pub mod cuda;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
use crate::simd::has_avx512;
use crate::simd::widest;
use rayon::prelude::*;

/// Sizes of a 2-D pooling. Input `[batch, channels, in_h, in_w]`, output
/// `[batch, channels, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Number of images in the batch (`N`).
    pub batch: usize,
    /// Channels per image (`C`); pooling keeps them, each plane is pooled on its own.
    pub channels: usize,
    /// Input height in pixels, at least 1, before padding.
    pub in_h: usize,
    /// Input width in pixels, at least 1, before padding.
    pub in_w: usize,
    /// Window height, at least 1.
    pub kernel_h: usize,
    /// Window width, at least 1.
    pub kernel_w: usize,
    /// Vertical step between windows, at least 1 (PyTorch's default is the kernel size).
    pub stride_h: usize,
    /// Horizontal step between windows, at least 1.
    pub stride_w: usize,
    /// Implicit padding rows above and below (`-inf` for max, zeros for average); at most
    /// `kernel_h / 2`.
    pub pad_h: usize,
    /// Implicit padding columns left and right; at most `kernel_w / 2`.
    pub pad_w: usize,
}

fn pool_out_len(axis: &str, input: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    assert!(input > 0, "Pool2dGeometry: in_{axis} is 0");
    assert!(
        2 * pad <= kernel,
        "Pool2dGeometry: pad_{axis} {pad} must be at most half of kernel_{axis} {kernel}"
    );
    crate::conv::window_positions("Pool2dGeometry", axis, input, kernel, stride, pad)
}

impl Pool2dGeometry {
    /// `(in_h + 2*pad_h - kernel_h) / stride_h + 1`. Panics on a zero stride/kernel/input,
    /// `pad_h > kernel_h/2`, or a kernel larger than the padded input.
    pub fn out_h(&self) -> usize {
        pool_out_len("h", self.in_h, self.kernel_h, self.stride_h, self.pad_h)
    }

    /// `(in_w + 2*pad_w - kernel_w) / stride_w + 1`, with the same checks as [`Self::out_h`].
    pub fn out_w(&self) -> usize {
        pool_out_len("w", self.in_w, self.kernel_w, self.stride_w, self.pad_w)
    }

    /// `batch * channels * in_h * in_w`.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.in_h * self.in_w
    }

    /// `batch * channels * out_h * out_w`.
    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_h() * self.out_w()
    }

    /// Clipped window of output position `(oy, ox)`: rows `y0..y1`, columns `x0..x1` of the
    /// unpadded input.
    #[inline]
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let ys = oy * self.stride_h;
        let xs = ox * self.stride_w;
        let y0 = ys.saturating_sub(self.pad_h);
        let x0 = xs.saturating_sub(self.pad_w);
        let y1 = (ys + self.kernel_h - self.pad_h).min(self.in_h);
        let x1 = (xs + self.kernel_w - self.pad_w).min(self.in_w);
        (y0, y1, x0, x1)
    }

    fn divisor(&self, count_include_pad: bool, win: (usize, usize, usize, usize)) -> f32 {
        if count_include_pad {
            // In floor mode no window reaches past the padding, so it is always kh*kw.
            (self.kernel_h * self.kernel_w) as f32
        } else {
            let (y0, y1, x0, x1) = win;
            ((y1 - y0) * (x1 - x0)) as f32
        }
    }

    /// 2x2 windows at stride 2 without padding (every pooling layer of the zoo): the windows
    /// tile the plane, and the kernels take a path without per-window clipping.
    fn is_2x2_tiling(&self) -> bool {
        (
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.pad_h,
            self.pad_w,
        ) == (2, 2, 2, 2, 0, 0)
    }

    /// Planes per rayon task: enough that each task touches at least a few thousand
    /// elements, so tiny planes do not drown in scheduling overhead.
    fn min_planes(&self) -> usize {
        (4096 / (self.in_h * self.in_w).max(1)).max(1)
    }
}

fn check_len(kernel: &str, what: &str, actual: usize, expected: usize) {
    assert!(
        actual == expected,
        "{kernel}: {what} has {actual} elements, geometry needs {expected}"
    );
}

/// Max over each window. `argmax[i]` is the index within the input plane (`ih*in_w + iw`) of
/// the max; ties go to the first element in row-major window order. A NaN in the window is
/// the max (the first NaN wins), so NaN propagates.
pub fn max_pool2d_forward(
    g: &Pool2dGeometry,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    const NAME: &str = "max_pool2d_forward";
    let (oh, ow) = (g.out_h(), g.out_w());
    check_len(NAME, "input", input.len(), g.input_len());
    check_len(NAME, "output", output.len(), g.output_len());
    check_len(NAME, "argmax", argmax.len(), g.output_len());
    let hw = g.in_h * g.in_w;
    assert!(
        hw <= u32::MAX as usize + 1,
        "{NAME}: input plane of {hw} elements does not fit u32 argmax indices"
    );
    if output.is_empty() {
        return;
    }
    output
        .par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .zip(input.par_chunks(hw))
        .with_min_len(g.min_planes())
        .for_each(|((y, am), x)| {
            if g.is_2x2_tiling() {
                #[cfg(target_arch = "x86_64")]
                if has_avx512() {
                    // SAFETY: AVX-512F is present; the plane slices have the geometry's sizes
                    // (checked above), which is all the kernel indexes.
                    return unsafe { x86::max_pool_2x2_avx512(g.in_w, ow, x, y, am) };
                }
                return widest(|| max_pool_2x2(g.in_w, ow, x, y, am));
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, y1, x0, x1) = g.window(oy, ox);
                    let mut best_i = y0 * g.in_w + x0;
                    let mut best = x[best_i];
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let i = iy * g.in_w + ix;
                            let v = x[i];
                            // `v > best` is false for NaN, so the NaN test is explicit; once
                            // best is NaN nothing compares greater and it stays.
                            if v > best || (v.is_nan() && !best.is_nan()) {
                                best = v;
                                best_i = i;
                            }
                        }
                    }
                    y[oy * ow + ox] = best;
                    am[oy * ow + ox] = best_i as u32;
                }
            }
        });
}

/// Max pooling of one plane over 2x2 tiles at stride 2: the first largest value of each tile in
/// reading order, as the general loop picks it (a NaN wins over numbers and then stays).
fn max_pool_2x2(in_w: usize, ow: usize, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    for (oy, (y_row, am_row)) in y
        .chunks_exact_mut(ow)
        .zip(argmax.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = 2 * oy * in_w;
        let bottom = top + in_w;
        for (ox, (out, am)) in y_row.iter_mut().zip(am_row.iter_mut()).enumerate() {
            let (mut best_i, mut best) = (top + 2 * ox, x[top + 2 * ox]);
            for i in [top + 2 * ox + 1, bottom + 2 * ox, bottom + 2 * ox + 1] {
                let v = x[i];
                // Non-short-circuit `|` and selects instead of branches: on real activations
                // which element wins is a coin toss, and mispredicted branches cost more than
                // the comparisons.
                let take = (v > best) | (v.is_nan() & !best.is_nan());
                best = if take { v } else { best };
                best_i = if take { i } else { best_i };
            }
            *out = best;
            *am = best_i as u32;
        }
    }
}

/// Scatters `grad_output` to the argmax positions. Overwrites `grad_input` (zero elsewhere);
/// overlapping windows that chose the same element accumulate.
pub fn max_pool2d_backward(
    g: &Pool2dGeometry,
    grad_output: &[f32],
    argmax: &[u32],
    grad_input: &mut [f32],
) {
    const NAME: &str = "max_pool2d_backward";
    let ohw = g.out_h() * g.out_w();
    check_len(NAME, "grad_output", grad_output.len(), g.output_len());
    check_len(NAME, "argmax", argmax.len(), g.output_len());
    check_len(NAME, "grad_input", grad_input.len(), g.input_len());
    let hw = g.in_h * g.in_w;
    if grad_input.is_empty() {
        return;
    }
    grad_input
        .par_chunks_mut(hw)
        .zip(grad_output.par_chunks(ohw))
        .zip(argmax.par_chunks(ohw))
        .with_min_len(g.min_planes())
        .for_each(|((dx, dy), am)| {
            dx.fill(0.0);
            for (&d, &i) in dy.iter().zip(am) {
                let i = i as usize;
                assert!(
                    i < hw,
                    "{NAME}: argmax index {i} is outside the input plane of {hw} elements"
                );
                dx[i] += d;
            }
        });
}

/// Average over each window; divisor `kernel_h*kernel_w` when `count_include_pad` (PyTorch's
/// default), else the number of non-pad elements in the window.
pub fn avg_pool2d_forward(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    input: &[f32],
    output: &mut [f32],
) {
    const NAME: &str = "avg_pool2d_forward";
    let (oh, ow) = (g.out_h(), g.out_w());
    check_len(NAME, "input", input.len(), g.input_len());
    check_len(NAME, "output", output.len(), g.output_len());
    if output.is_empty() {
        return;
    }
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(g.in_h * g.in_w))
        .with_min_len(g.min_planes())
        .for_each(|(y, x)| {
            if g.is_2x2_tiling() {
                // Same additions in the same order as the general loop below.
                for (oy, y_row) in y.chunks_exact_mut(ow).enumerate() {
                    let top = &x[2 * oy * g.in_w..][..2 * ow];
                    let bottom = &x[(2 * oy + 1) * g.in_w..][..2 * ow];
                    for ((out, t), b) in y_row
                        .iter_mut()
                        .zip(top.chunks_exact(2))
                        .zip(bottom.chunks_exact(2))
                    {
                        *out = ((t[0] + t[1]) + (b[0] + b[1])) / 4.0;
                    }
                }
                return;
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let win = g.window(oy, ox);
                    let (y0, y1, x0, x1) = win;
                    let mut s = 0.0f32;
                    for iy in y0..y1 {
                        s += x[iy * g.in_w + x0..iy * g.in_w + x1].iter().sum::<f32>();
                    }
                    y[oy * ow + ox] = s / g.divisor(count_include_pad, win);
                }
            }
        });
}

/// Backward of [`avg_pool2d_forward`]: each output gradient, divided by its window's divisor,
/// is added to every non-pad element of the window. Overwrites `grad_input`.
pub fn avg_pool2d_backward(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    const NAME: &str = "avg_pool2d_backward";
    let (oh, ow) = (g.out_h(), g.out_w());
    check_len(NAME, "grad_output", grad_output.len(), g.output_len());
    check_len(NAME, "grad_input", grad_input.len(), g.input_len());
    if grad_input.is_empty() {
        return;
    }
    grad_input
        .par_chunks_mut(g.in_h * g.in_w)
        .zip(grad_output.par_chunks(oh * ow))
        .with_min_len(g.min_planes())
        .for_each(|(dx, dy)| {
            dx.fill(0.0);
            if g.is_2x2_tiling() {
                for (oy, dy_row) in dy.chunks_exact(ow).enumerate() {
                    for row in [2 * oy, 2 * oy + 1] {
                        let dx_row = &mut dx[row * g.in_w..][..2 * ow];
                        for (pair, &d) in dx_row.chunks_exact_mut(2).zip(dy_row) {
                            pair.fill(d / 4.0);
                        }
                    }
                }
                return;
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let win = g.window(oy, ox);
                    let (y0, y1, x0, x1) = win;
                    let d = dy[oy * ow + ox] / g.divisor(count_include_pad, win);
                    for iy in y0..y1 {
                        for v in &mut dx[iy * g.in_w + x0..iy * g.in_w + x1] {
                            *v += d;
                        }
                    }
                }
            }
        });
}
