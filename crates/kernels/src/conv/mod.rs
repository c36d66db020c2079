//! 2-D convolution (cross-correlation, as in deep learning) on NCHW `f32` tensors.
//!
//! Shapes, for one image (`K = cin*kh*kw`, `P = oh*ow`):
//!
//! ```text
//! cols = im2col(x)                      [K, P]       (row (ci,ki,kj), column (oy,ox))
//! y    = W · cols + b                   [cout, P] = [cout, K] · [K, P]
//! dX   = col2im(Wᵀ · dY)                [K, P]    = [K, cout] · [cout, P]
//! dW   = Σ_n dY_n · cols_nᵀ             [cout, K] = [cout, P] · [P, K]
//! db   = Σ_{n,oy,ox} dY                 [cout]
//! ```
//!
//! Why im2col + GEMM: a direct 7-deep loop does the same multiply-adds but with poor cache
//! reuse and no vectorisation. Unrolling every receptive field into a column turns the
//! convolution into one matrix product, and the GEMM kernel is where all the tuning lives.
//! The price is a scratch buffer of `K*P` floats per image in flight, allocated once per
//! rayon task, never per pixel.
//!
//! Parallelism: the batch, in groups of images. One image's GEMM is small (LeNet-5 conv2:
//! M=16, K=150, N=100; its third convolution has N=1), and a GEMM only a few columns wide
//! wastes most of each vector register, so a group's im2col matrices are laid side by side
//! (`[K, count·P]`) until a GEMM has about 512 columns. Each rayon task handles one group and
//! calls `gemm`, which parallelises internally, deterministically, when a group is big. A 1x1,
//! stride-1, unpadded convolution of a single image needs no im2col.
//!
//! Determinism: forward and input-gradient write disjoint per-group outputs, and the groups
//! depend only on the geometry, so thread count cannot matter. The weight gradient sums over
//! the batch; it is split into chunks whose size depends only on the geometry (never on the
//! thread count), each chunk is one GEMM with the chunk's images side by side along the
//! reduction axis, and the chunk partials are added in chunk order. The bias gradient is one
//! sequential f64 sum per output channel.
//!
//! Reading order: this file (the geometry, im2col/col2im, forward and input gradient), then
//! `weight_gradient.rs` (the batch reduction), `x86.rs` (AVX-512 variants of im2col, col2im and
//! the weight gradient's dot products), [`cuda`] (launches of `kernels/conv.cu`), and the
//! tests: `tests.rs` against a naive 7-loop reference, `twin_tests.rs` running
//! `kernels/conv.cu` on the virtual CUDA device against these CPU kernels.

pub mod cuda;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
mod weight_gradient;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use weight_gradient::conv2d_backward_weight;

use crate::gemm::gemm;
use crate::simd::widest;
use rayon::prelude::*;
use std::cell::Cell;

/// Sizes of a 2-D convolution. Input `[batch, in_channels, in_h, in_w]`, weight
/// `[out_channels, in_channels, kernel_h, kernel_w]`, output `[batch, out_channels, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Number of images in the batch (`N`).
    pub batch: usize,
    /// Channels of each input image (`C_in`).
    pub in_channels: usize,
    /// Input height in pixels, before padding.
    pub in_h: usize,
    /// Input width in pixels, before padding.
    pub in_w: usize,
    /// Number of filters, i.e. channels of the output (`C_out`).
    pub out_channels: usize,
    /// Filter height. Must be at least 1 and at most `in_h + 2 * pad_h`.
    pub kernel_h: usize,
    /// Filter width. Must be at least 1 and at most `in_w + 2 * pad_w`.
    pub kernel_w: usize,
    /// Vertical step between windows, at least 1.
    pub stride_h: usize,
    /// Horizontal step between windows, at least 1.
    pub stride_w: usize,
    /// Zero rows added above and below the input.
    pub pad_h: usize,
    /// Zero columns added left and right of the input.
    pub pad_w: usize,
}

/// Number of window positions along one axis, `(input + 2·pad - kernel) / stride + 1`, with
/// the checks that make the formula meaningful; `geometry` names the caller in messages.
pub(crate) fn window_positions(
    geometry: &str,
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> usize {
    assert!(stride > 0, "{geometry}: stride_{axis} is 0");
    assert!(kernel > 0, "{geometry}: kernel_{axis} is 0");
    let padded = input + 2 * pad;
    assert!(
        kernel <= padded,
        "{geometry}: kernel_{axis} {kernel} is larger than the padded input \
         ({input} + 2*{pad} = {padded})"
    );
    (padded - kernel) / stride + 1
}

fn conv_out_len(axis: &str, input: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    window_positions("Conv2dGeometry", axis, input, kernel, stride, pad)
}

impl Conv2dGeometry {
    /// `(in_h + 2*pad_h - kernel_h) / stride_h + 1`. Panics if the stride or kernel is 0 or the
    /// kernel is larger than the padded input.
    pub fn out_h(&self) -> usize {
        conv_out_len("h", self.in_h, self.kernel_h, self.stride_h, self.pad_h)
    }

    /// `(in_w + 2*pad_w - kernel_w) / stride_w + 1`, with the same checks as [`Self::out_h`].
    pub fn out_w(&self) -> usize {
        conv_out_len("w", self.in_w, self.kernel_w, self.stride_w, self.pad_w)
    }

    /// `batch * in_channels * in_h * in_w`.
    pub fn input_len(&self) -> usize {
        self.batch * self.image_len()
    }

    /// `out_channels * in_channels * kernel_h * kernel_w`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.col_rows()
    }

    /// `batch * out_channels * out_h * out_w`.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Elements of one input image.
    fn image_len(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    /// Rows of the im2col matrix: `K = cin*kh*kw`.
    fn col_rows(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Columns of the im2col matrix: `P = oh*ow`.
    fn col_cols(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// A 1x1 stride-1 unpadded convolution: the input image is already its own im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_h == 0
            && self.pad_w == 0
    }

    /// One output position whose window is the whole unpadded input (LeNet-5's third
    /// convolution: 16x5x5 in, 120x1x1 out): a fully connected layer. An image's im2col
    /// matrix is then the image itself as one column, so a batch's is the input transposed,
    /// which the GEMM reads through strides instead of copying element by element.
    fn is_fully_connected(&self) -> bool {
        self.out_h() == 1
            && self.out_w() == 1
            && self.kernel_h == self.in_h
            && self.kernel_w == self.in_w
            && self.pad_h == 0
            && self.pad_w == 0
    }

    /// Panics (naming `kernel`) on a geometry no kernel can run. Empty channel or spatial
    /// sizes are rejected because they make the per-image chunking meaningless.
    fn validate(&self, kernel: &str) {
        assert!(
            self.in_channels > 0 && self.out_channels > 0 && self.in_h > 0 && self.in_w > 0,
            "{kernel}: channels and input sizes must be non-zero, got {self:?}"
        );
        // Evaluated for their panics (zero stride, kernel larger than the padded input).
        let _ = (self.out_h(), self.out_w());
    }
}

fn check_len(kernel: &str, what: &str, actual: usize, expected: usize) {
    assert!(
        actual == expected,
        "{kernel}: {what} has {actual} elements, geometry needs {expected}"
    );
}

/// For one kernel offset `k_off` along an axis, the output positions `lo..hi` whose input
/// index `o*stride + k_off - pad` lands inside `0..in_len`. Outside that range the window
/// hangs over the padding. Computing the range once per row keeps the inner loop branch-free.
fn valid_range(
    k_off: usize,
    pad: usize,
    stride: usize,
    in_len: usize,
    out_len: usize,
) -> (usize, usize) {
    let lo = if pad > k_off {
        (pad - k_off).div_ceil(stride)
    } else {
        0
    };
    let hi = if in_len + pad > k_off {
        (in_len + pad - k_off).div_ceil(stride)
    } else {
        0
    };
    let hi = hi.min(out_len);
    (lo.min(hi), hi)
}

/// im2col of one image into `cols`, whose rows are `ld` apart (`ld >= oh*ow`), so several
/// images can be laid side by side for one wide GEMM.
fn im2col_ld(g: &Conv2dGeometry, image: &[f32], cols: &mut [f32], ld: usize) {
    #[cfg(target_arch = "x86_64")]
    if x86::narrow_rows(g) {
        // SAFETY: AVX-512F is present (checked by `narrow_rows`); `im2col_narrow_avx512`
        // indexes `image` and `cols` exactly as the loop below does.
        return unsafe { x86::im2col_narrow_avx512(g, image, cols, ld) };
    }
    let (h, w) = (g.in_h, g.in_w);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (sh, sw, ph, pw) = (g.stride_h, g.stride_w, g.pad_h, g.pad_w);
    let mut r = 0;
    for plane in image.chunks_exact(h * w) {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = &mut cols[r * ld..r * ld + oh * ow];
                let (lo, hi) = valid_range(kj, pw, sw, w, ow);
                for (oy, dst) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = oy * sh + ki;
                    if iy < ph || iy - ph >= h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy - ph) * w..(iy - ph + 1) * w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if sw == 1 {
                        let ix0 = lo + kj - pw;
                        dst[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                    } else {
                        for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[(lo + ox) * sw + kj - pw];
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// Adjoint of [`im2col_ld`]: adds every column entry back to the pixel it was copied from.
#[inline(always)]
fn col2im_ld(g: &Conv2dGeometry, cols: &[f32], ld: usize, image: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::narrow_gather(g) {
        // SAFETY: AVX-512F is present (checked by `narrow_gather`); the gather reads `cols` and
        // writes `image` only where the loop below does.
        return unsafe { x86::col2im_gather_avx512(g, cols, ld, image) };
    }
    let (h, w) = (g.in_h, g.in_w);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (sh, sw, ph, pw) = (g.stride_h, g.stride_w, g.pad_h, g.pad_w);
    let mut r = 0;
    for plane in image.chunks_exact_mut(h * w) {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = &cols[r * ld..r * ld + oh * ow];
                let (lo, hi) = valid_range(kj, pw, sw, w, ow);
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let iy = oy * sh + ki;
                    if iy < ph || iy - ph >= h {
                        continue;
                    }
                    let dst = &mut plane[(iy - ph) * w..(iy - ph + 1) * w];
                    if sw == 1 {
                        let ix0 = lo + kj - pw;
                        for (d, s) in dst[ix0..ix0 + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (ox, s) in src[lo..hi].iter().enumerate() {
                            dst[(lo + ox) * sw + kj - pw] += s;
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// One image `[cin, h, w]` -> `cols` `[cin*kh*kw, oh*ow]` (zero where the window hangs over
/// the padding). `g.batch` is ignored: this works on a single image.
pub fn im2col(g: &Conv2dGeometry, image: &[f32], cols: &mut [f32]) {
    g.validate("im2col");
    check_len("im2col", "image", image.len(), g.image_len());
    check_len("im2col", "cols", cols.len(), g.col_rows() * g.col_cols());
    im2col_ld(g, image, cols, g.col_cols());
}

/// Adjoint of [`im2col`]: `cols` `[cin*kh*kw, oh*ow]` is added into `image` `[cin, h, w]`.
/// Accumulates, so the caller zeroes `image` first. `g.batch` is ignored.
pub fn col2im(g: &Conv2dGeometry, cols: &[f32], image: &mut [f32]) {
    g.validate("col2im");
    check_len("col2im", "cols", cols.len(), g.col_rows() * g.col_cols());
    check_len("col2im", "image", image.len(), g.image_len());
    col2im_ld(g, cols, g.col_cols(), image);
}

thread_local! {
    // Scratch for im2col matrices and staged outputs, kept between calls: allocating (and
    // zeroing) megabytes per rayon task cost more than some of the GEMMs it fed.
    static SCRATCH: Cell<(Vec<f32>, Vec<f32>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with two scratch slices of `first` and `second` floats from this thread's reusable
/// buffers. They hold whatever an earlier call left: `f` must write before it reads. A task
/// that rayon runs on this thread while `f` waits finds the buffers taken and gets new ones.
fn with_scratch<R>(first: usize, second: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    let (mut a, mut b) = SCRATCH.take();
    if a.len() < first {
        a.resize(first, 0.0);
    }
    if b.len() < second {
        b.resize(second, 0.0);
    }
    let result = f(&mut a[..first], &mut b[..second]);
    SCRATCH.set((a, b));
    result
}

/// GEMM columns a group of images should give at least. One image of a late layer has few
/// output positions (LeNet-5's third convolution has one), and a GEMM only a few columns wide
/// wastes most of each vector register; laying several images' columns side by side fixes that.
const GROUP_COLUMNS: usize = 512;
/// Largest im2col scratch of a group, in floats (8 MiB).
const GROUP_COLS_BUDGET: usize = 2 << 20;

/// Images per forward or input-gradient GEMM: enough for `GROUP_COLUMNS` columns, within the
/// scratch budget. Depends only on the geometry, so results never depend on the thread count.
fn group_images(g: &Conv2dGeometry) -> usize {
    let (k, p) = (g.col_rows().max(1), g.col_cols().max(1));
    let wanted = GROUP_COLUMNS.div_ceil(p);
    let affordable = (GROUP_COLS_BUDGET / (k * p)).max(1);
    wanted.min(affordable).clamp(1, g.batch.max(1))
}

/// `y[n,co,oy,ox] = Σ_{ci,ki,kj} W[co,ci,ki,kj] * x[n,ci,oy*sh+ki-ph,ox*sw+kj-pw] + b[co]`
/// (out-of-range input reads as 0). Overwrites `output`.
///
/// Per group of images: `cols [K, count·P]` (the images' im2col matrices side by side), one
/// GEMM `Y~ [cout, count·P] = W [cout, K] · cols`, then `Y~` is scattered to `[count, cout, P]`.
/// A single image skips the scatter, and a 1x1 convolution the im2col.
pub fn conv2d_forward(
    g: &Conv2dGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    const NAME: &str = "conv2d_forward";
    g.validate(NAME);
    check_len(NAME, "input", input.len(), g.input_len());
    check_len(NAME, "weight", weight.len(), g.weight_len());
    if let Some(b) = bias {
        check_len(NAME, "bias", b.len(), g.out_channels);
    }
    check_len(NAME, "output", output.len(), g.output_len());
    if g.batch == 0 {
        return;
    }
    let (k, p, cout) = (g.col_rows(), g.col_cols(), g.out_channels);
    let group = group_images(g);
    let pointwise = g.is_pointwise() && group == 1;
    let fully_connected = g.is_fully_connected();
    output
        .par_chunks_mut(group * cout * p)
        .zip(input.par_chunks(group * g.image_len()))
        .for_each(|(y, x)| {
            let cols_len = if pointwise || fully_connected {
                0
            } else {
                k * group * p
            };
            let staged_len = if group > 1 { cout * group * p } else { 0 };
            with_scratch(cols_len, staged_len, |cols, staged| {
                let count = x.len() / g.image_len();
                let ld = count * p;
                // The im2col matrix [K, count·P] and its row and column strides.
                let (b_mat, rsb, csb): (&[f32], usize, usize) = if pointwise {
                    (x, ld, 1)
                } else if fully_connected {
                    (x, 1, k)
                } else {
                    for (i, image) in x.chunks_exact(g.image_len()).enumerate() {
                        im2col_ld(g, image, &mut cols[i * p..], ld);
                    }
                    (&cols[..k * ld], ld, 1)
                };
                if count == 1 {
                    // Seeding y with the bias and accumulating (beta = 1) saves a second pass.
                    let beta = match bias {
                        Some(b) => {
                            for (row, &bv) in y.chunks_exact_mut(p).zip(b) {
                                row.fill(bv);
                            }
                            1.0
                        }
                        None => 0.0,
                    };
                    gemm(
                        cout, p, k, 1.0, weight, k, 1, b_mat, rsb, csb, beta, y, p, 1,
                    );
                    return;
                }
                let staged = &mut staged[..cout * ld];
                gemm(
                    cout, ld, k, 1.0, weight, k, 1, b_mat, rsb, csb, 0.0, staged, ld, 1,
                );
                for (i, y_image) in y.chunks_exact_mut(cout * p).enumerate() {
                    for (co, y_row) in y_image.chunks_exact_mut(p).enumerate() {
                        let src = &staged[co * ld + i * p..co * ld + (i + 1) * p];
                        match bias {
                            Some(b) => {
                                for (d, s) in y_row.iter_mut().zip(src) {
                                    *d = s + b[co];
                                }
                            }
                            None => y_row.copy_from_slice(src),
                        }
                    }
                }
            })
        });
}

/// `dX = col2im(Wᵀ · dY)`. Overwrites `grad_input`.
///
/// Per group of images: `dY` is gathered to `[cout, count·P]`, one GEMM gives
/// `dcols [K, count·P] = Wᵀ · dY`, and each image's slice of `dcols` is folded back by col2im.
pub fn conv2d_backward_input(
    g: &Conv2dGeometry,
    grad_output: &[f32],
    weight: &[f32],
    grad_input: &mut [f32],
) {
    const NAME: &str = "conv2d_backward_input";
    g.validate(NAME);
    check_len(NAME, "grad_output", grad_output.len(), g.output_len());
    check_len(NAME, "weight", weight.len(), g.weight_len());
    check_len(NAME, "grad_input", grad_input.len(), g.input_len());
    if g.batch == 0 {
        return;
    }
    let (k, p, cout) = (g.col_rows(), g.col_cols(), g.out_channels);
    let group = group_images(g);
    let pointwise = g.is_pointwise() && group == 1;
    let fully_connected = g.is_fully_connected();
    grad_input
        .par_chunks_mut(group * g.image_len())
        .zip(grad_output.par_chunks(group * cout * p))
        .for_each(|(dx, dy)| {
            let dcols_len = if pointwise || fully_connected {
                0
            } else {
                k * group * p
            };
            let gathered_len = if group > 1 && !fully_connected {
                cout * group * p
            } else {
                0
            };
            with_scratch(dcols_len, gathered_len, |dcols, gathered| {
                let count = dx.len() / g.image_len();
                let ld = count * p;
                // Wᵀ is read in place: element (kk, co) of Wᵀ is weight[co*K + kk].
                if pointwise {
                    gemm(k, p, cout, 1.0, weight, 1, k, dy, p, 1, 0.0, dx, p, 1);
                    return;
                }
                if fully_connected {
                    // dcols [K, count] is dX transposed: write it there through strides.
                    gemm(k, ld, cout, 1.0, weight, 1, k, dy, 1, cout, 0.0, dx, 1, k);
                    return;
                }
                let dy_mat: &[f32] = if count == 1 {
                    dy
                } else {
                    for (i, dy_image) in dy.chunks_exact(cout * p).enumerate() {
                        for (co, row) in dy_image.chunks_exact(p).enumerate() {
                            gathered[co * ld + i * p..co * ld + (i + 1) * p].copy_from_slice(row);
                        }
                    }
                    &gathered[..cout * ld]
                };
                let dcols = &mut dcols[..k * ld];
                gemm(
                    k, ld, cout, 1.0, weight, 1, k, dy_mat, ld, 1, 0.0, dcols, ld, 1,
                );
                dx.fill(0.0);
                for (i, dx_image) in dx.chunks_exact_mut(g.image_len()).enumerate() {
                    widest(|| col2im_ld(g, &dcols[i * p..], ld, dx_image));
                }
            })
        });
}
