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
//! calls `gemm`, which parallelises internally, deterministically, when a group is big. A 1x1, stride-1, unpadded convolution of a single image needs no im2col.

//! Determinism: forward and input-gradient write disjoint per-group outputs, and the groups
//! depend only on the geometry, so thread count cannot matter. The weight gradient sums over the batch; it is split into chunks whose size
//! depends only on the geometry (never on the thread count), each chunk is one GEMM with the
//! chunk's images side by side along the reduction axis, and the chunk partials are added in
//! chunk order. The bias gradient is one sequential f64 sum per output channel.

use crate::simd::widest;
use rayon::prelude::*;
use std::cell::Cell;

use crate::gemm::gemm;

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
    if narrow_rows(g) {
        // SAFETY: AVX-512F is present (checked by `narrow_rows`); `im2col_narrow_avx512`
        // indexes `image` and `cols` exactly as the loop below does.
        return unsafe { im2col_narrow_avx512(g, image, cols, ld) };
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

/// Whether a layer's output rows fit one AVX-512 register (at most 16 wide, stride 1), so
/// im2col can move each row segment with one masked load and one masked store. (col2im
/// stays scalar: its read-add-write of image rows that the previous segment just stored
/// stalls on masked stores, which the CPU cannot forward to the next load.)
/// Row segments of 7 to 16 floats are too short for `memcpy`/`memset`, whose call overhead
/// was most of im2col's time on CNN3L's 14x14 layer.
#[cfg(target_arch = "x86_64")]
fn narrow_rows(g: &Conv2dGeometry) -> bool {
    g.stride_w == 1 && g.out_w() <= 16 && std::arch::is_x86_feature_detected!("avx512f")
}

/// The lanes `lo..hi` of a 16-lane mask.
#[cfg(target_arch = "x86_64")]
fn lane_mask(lo: usize, hi: usize) -> u16 {
    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
}

/// [`im2col_ld`] for [`narrow_rows`] geometries: each output row segment is one masked load
/// (lanes over the padding read as zero, and are never touched in memory) and one masked store.
///
/// # Safety
/// The CPU must support AVX-512F; the geometry must satisfy [`narrow_rows`]; `image` and
/// `cols` must be sized as for [`im2col_ld`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn im2col_narrow_avx512(g: &Conv2dGeometry, image: &[f32], cols: &mut [f32], ld: usize) {
    use std::arch::x86_64::*;
    let (h, w) = (g.in_h, g.in_w);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (sh, ph, pw) = (g.stride_h, g.pad_h, g.pad_w);
    let row_mask = lane_mask(0, ow);
    let mut r = 0;
    for plane in image.chunks_exact(h * w) {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = &mut cols[r * ld..r * ld + oh * ow];
                let (lo, hi) = valid_range(kj, pw, 1, w, ow);
                let valid = lane_mask(lo, hi);
                for (oy, dst) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = oy * sh + ki;
                    let v = if iy < ph || iy - ph >= h || lo == hi {
                        _mm512_setzero_ps()
                    } else {
                        // Lane ox reads src[ox + kj - pw]; only lanes lo..hi, which are in
                        // range, are loaded.
                        let src = plane.as_ptr().add((iy - ph) * w);
                        _mm512_maskz_loadu_ps(valid, src.wrapping_add(kj).wrapping_sub(pw))
                    };
                    _mm512_mask_storeu_ps(dst.as_mut_ptr(), row_mask, v);
                }
                r += 1;
            }
        }
    }
}

/// Whether col2im can gather instead of scatter: input and output rows each fit one AVX-512
/// register and both strides are 1, so every output position maps to one tap per kernel row.
#[cfg(target_arch = "x86_64")]
fn narrow_gather(g: &Conv2dGeometry) -> bool {
    g.stride_h == 1
        && g.stride_w == 1
        && g.in_w <= 16
        && g.out_w() <= 16
        && std::arch::is_x86_feature_detected!("avx512f")
}

/// [`col2im_ld`] for [`narrow_gather`] geometries, as a gather: each image row is one register
/// that collects its `kh·kw` shifted column segments (one masked load and one masked add
/// each) and is stored once. A pixel receives its terms in the scalar loop's order (kernel row,
/// then kernel column, added to what the image held), so the sums are bit-identical; the
/// scatter's read-add-write of short rows is what this avoids.
///
/// # Safety
/// The CPU must support AVX-512F; the geometry must satisfy [`narrow_gather`]; `cols` and
/// `image` must be sized as for [`col2im_ld`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_gather_avx512(g: &Conv2dGeometry, cols: &[f32], ld: usize, image: &mut [f32]) {
    use std::arch::x86_64::*;
    let (h, w) = (g.in_h, g.in_w);
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = (g.pad_h, g.pad_w);
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    assert!(cols.len() >= (g.in_channels * kh * kw - 1) * ld + oh * ow);
    assert!(image.len() >= g.in_channels * h * w);
    let row_mask = lane_mask(0, w);
    // Lanes (image columns) that kernel column kj reaches: ix = ox + kj - pw, 0 <= ox < ow.
    let reach: Vec<(u16, usize)> = (0..kw)
        .map(|kj| {
            let lo = kj.saturating_sub(pw);
            let hi = (ow + kj).saturating_sub(pw).min(w);
            (lane_mask(lo.min(hi), hi), kj)
        })
        .collect();
    for ci in 0..g.in_channels {
        for iy in 0..h {
            let dst = image.as_mut_ptr().add((ci * h + iy) * w);
            let mut acc = _mm512_maskz_loadu_ps(row_mask, dst);
            for ki in 0..kh {
                // Output row oy = iy + ph - ki reads this image row through kernel row ki.
                let Some(oy) = (iy + ph).checked_sub(ki).filter(|&oy| oy < oh) else {
                    continue;
                };
                let row = (ci * kh + ki) * kw;
                for &(mask, kj) in &reach {
                    // Lane ix takes segment element ox = ix + pw - kj.
                    let segment = cols.as_ptr().add((row + kj) * ld + oy * ow);
                    let v = _mm512_maskz_loadu_ps(mask, segment.wrapping_add(pw).wrapping_sub(kj));
                    acc = _mm512_mask_add_ps(acc, mask, acc, v);
                }
            }
            _mm512_mask_storeu_ps(dst, row_mask, acc);
        }
    }
}

/// Adjoint of [`im2col_ld`]: adds every column entry back to the pixel it was copied from.
#[inline(always)]
fn col2im_ld(g: &Conv2dGeometry, cols: &[f32], ld: usize, image: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if narrow_gather(g) {
        // SAFETY: AVX-512F is present (checked by `narrow_gather`); the gather reads `cols` and
        // writes `image` only where the loop below does.
        return unsafe { col2im_gather_avx512(g, cols, ld, image) };
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

/// Images per weight-gradient chunk: enough that each GEMM reduces over at least
/// `GROUP_COLUMNS` positions (and at least four images), with the chunk's scratch around
/// 8 MiB. Batch 100 of a 14x14 layer still yields 17 chunks to spread over threads. It depends
/// only on the geometry, never on the thread count: that is what makes the summation order, and
/// so the bits of dW, the same at any thread count.
fn wgrad_chunk_images(g: &Conv2dGeometry) -> usize {
    let per_image = (g.col_rows() * g.col_cols()).max(1);
    let wanted = GROUP_COLUMNS.div_ceil(g.col_cols().max(1)).max(4);
    wanted
        .min(GROUP_COLS_BUDGET / per_image)
        .clamp(1, g.batch.max(1))
}

/// Weight gradients with at most this many elements (`cout · K`) use [`dot_products`]: on the
/// zoo's layers it is as fast or faster up to CNN3L's 12,800 (32 filters of 400 taps), while a
/// packed GEMM wins for LeNet-5's 48,000-element third convolution.
const SMALL_WEIGHT_GRADIENT: usize = 16_384;

/// `C[i,j] = Σ_q A[i,q]·B[j,q]` for row-major `A [m, len]`, `B [n, len]`, `C [m, n]`.
///
/// The shape of a first layer's weight gradient: 6..16 filters of 9..25 taps, each a sum over
/// thousands of positions. A packed GEMM vectorises along the output, of which there is too
/// little here, and must transpose both operands to do it; this vectorises along the
/// reduction, which both operands already hold contiguously. Lanes are combined in a fixed
/// order, so the result never depends on the thread count.
fn dot_products(m: usize, n: usize, len: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * len && b.len() >= n * len && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above); the lengths are asserted.
            return unsafe { dot_products_avx512(m, n, len, a, b, c) };
        }
    }
    dot_products_portable(m, n, len, a, b, c);
}

/// [`dot_products`] for any CPU.
fn dot_products_portable(m: usize, n: usize, len: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let (x, y) = (&a[i * len..(i + 1) * len], &b[j * len..(j + 1) * len]);
            // Eight running sums, combined pairwise: a fixed order the compiler can vectorise.
            let mut lanes = [0.0f32; 8];
            for (xs, ys) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
                for l in 0..8 {
                    lanes[l] += xs[l] * ys[l];
                }
            }
            let tail: f32 = (len / 8 * 8..len).map(|q| x[q] * y[q]).sum();
            let quads = [
                lanes[0] + lanes[4],
                lanes[1] + lanes[5],
                lanes[2] + lanes[6],
                lanes[3] + lanes[7],
            ];
            c[i * n + j] = ((quads[0] + quads[2]) + (quads[1] + quads[3])) + tail;
        }
    }
}

/// [`dot_products`] with AVX-512: 4 rows of `A` by 4 rows of `B` per pass, sixteen
/// accumulators of sixteen lanes sharing eight loads per step. The four rows of `B` (the
/// larger operand, im2col rows) stay in L1 while every row of `A` passes over them, so `B` is
/// read from memory once; `A` (a few filters' gradients) stays in L2. Each output is still one
/// sequential sum over `len` in sixteen lanes, reduced once: the blocking does not change
/// the result.
///
/// # Safety
/// The CPU must support AVX-512F; `a`, `b`, `c` must hold `m·len`, `n·len`, `m·n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_products_avx512(m: usize, n: usize, len: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use std::arch::x86_64::*;
    let full = len / 16 * 16;
    // Lanes past `len` in the last step are masked off (read as zero).
    let tail_mask: __mmask16 = ((1u32 << (len - full)) - 1) as __mmask16;
    // Ragged edges repeat the last row; only valid outputs are stored.
    let rows = |first: usize, count: usize| [0, 1, 2, 3].map(|d| (first + d).min(count - 1));
    for j0 in (0..n).step_by(4) {
        let pb = rows(j0, n).map(|r| b.as_ptr().add(r * len));
        for i0 in (0..m).step_by(4) {
            let pa = rows(i0, m).map(|r| a.as_ptr().add(r * len));
            let mut acc = [[_mm512_setzero_ps(); 4]; 4];
            let mut q = 0;
            while q < full {
                let bv = pb.map(|p| _mm512_loadu_ps(p.add(q)));
                for r in 0..4 {
                    let av = _mm512_loadu_ps(pa[r].add(q));
                    for s in 0..4 {
                        acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
                    }
                }
                q += 16;
            }
            if full < len {
                let bv = pb.map(|p| _mm512_maskz_loadu_ps(tail_mask, p.add(q)));
                for r in 0..4 {
                    let av = _mm512_maskz_loadu_ps(tail_mask, pa[r].add(q));
                    for s in 0..4 {
                        acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
                    }
                }
            }
            for r in 0..(m - i0).min(4) {
                for s in 0..(n - j0).min(4) {
                    c[(i0 + r) * n + j0 + s] = _mm512_reduce_add_ps(acc[r][s]);
                }
            }
        }
    }
}

/// `Σ_i (Σ_t segments[i][t])` in f64, every segment summed in order from 0, then the
/// segments' sums added in order: exactly one segment after another. Eight segments run side
/// by side, their sums independent chains, so the additions overlap instead of each waiting
/// on the last (four cycles apiece).
fn sum_of_sums(segments: &[&[f32]]) -> f64 {
    const SIDE_BY_SIDE: usize = 8;
    let mut total = 0.0f64;
    for group in segments.chunks(SIDE_BY_SIDE) {
        let mut sums = [0.0f64; SIDE_BY_SIDE];
        match <&[&[f32]; SIDE_BY_SIDE]>::try_from(group) {
            Ok(group) if group.iter().all(|s| s.len() == group[0].len()) => {
                let len = group[0].len();
                let rows = group.map(|s| &s[..len]);
                for t in 0..len {
                    for (sum, row) in sums.iter_mut().zip(&rows) {
                        *sum += row[t] as f64;
                    }
                }
            }
            _ => {
                for (sum, segment) in sums.iter_mut().zip(group) {
                    for &v in segment.iter() {
                        *sum += v as f64;
                    }
                }
            }
        }
        for &sum in &sums[..group.len()] {
            total += sum;
        }
    }
    total
}

/// `dW = Σ_n dY_n · cols_nᵀ`, `db[co] = Σ_{n,oy,ox} dY[n,co,oy,ox]`. Overwrites `grad_weight`
/// and `grad_bias`.
pub fn conv2d_backward_weight(
    g: &Conv2dGeometry,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    const NAME: &str = "conv2d_backward_weight";
    g.validate(NAME);
    check_len(NAME, "input", input.len(), g.input_len());
    check_len(NAME, "grad_output", grad_output.len(), g.output_len());
    check_len(NAME, "grad_weight", grad_weight.len(), g.weight_len());
    let (k, p, cout) = (g.col_rows(), g.col_cols(), g.out_channels);
    let (in_img, out_img) = (g.image_len(), cout * p);

    if let Some(db) = grad_bias {
        check_len(NAME, "grad_bias", db.len(), cout);
        // One channel per task, in f64: each image's sum in order, then the images' sums in
        // order (fixed, with little rounding).
        db.par_iter_mut().enumerate().for_each(|(co, d)| {
            let segments: Vec<&[f32]> = grad_output
                .chunks_exact(out_img)
                .map(|img| &img[co * p..(co + 1) * p])
                .collect();
            *d = sum_of_sums(&segments) as f32;
        });
    }

    if g.batch == 0 {
        grad_weight.fill(0.0);
        return;
    }
    let wlen = grad_weight.len();
    let chunk = wgrad_chunk_images(g);
    let n_chunks = g.batch.div_ceil(chunk);
    // Chunks run a "wave" at a time so at most ~16 MiB of partials exist at once. The wave
    // size only bounds memory; the partials are always added in chunk order, so it cannot
    // change the result.
    const PARTIAL_BUDGET: usize = 4 << 20; // floats
    let wave = (PARTIAL_BUDGET / wlen).clamp(1, n_chunks);
    let mut partials = vec![0.0f32; wave * wlen];
    // A fully connected geometry's cols and gathered dY are the input and dY themselves, read
    // through strides (the small-gradient kernel needs them copied to contiguous rows).
    let strided_operands = g.is_fully_connected() && wlen > SMALL_WEIGHT_GRADIENT;

    for wave_start in (0..n_chunks).step_by(wave) {
        let this_wave = wave.min(n_chunks - wave_start);
        partials[..this_wave * wlen]
            .par_chunks_mut(wlen)
            .enumerate()
            .for_each(|(j, part)| {
                let first = (wave_start + j) * chunk;
                let count = chunk.min(g.batch - first);
                if strided_operands {
                    // part[co, kk] = Σ_q dY[first+q, co] · X[first+q, kk].
                    let (dy, x) = (&grad_output[first * cout..], &input[first * k..]);
                    gemm(cout, k, count, 1.0, dy, 1, cout, x, k, 1, 0.0, part, k, 1);
                    return;
                }
                with_scratch(k * chunk * p, cout * chunk * p, |cols, dys| {
                    // Lay the chunk's images side by side: cols [K, count*P] and
                    // dY [cout, count*P], so one product reduces over all of them.
                    let ld = count * p;
                    for i in 0..count {
                        let n = first + i;
                        let image = &input[n * in_img..(n + 1) * in_img];
                        im2col_ld(g, image, &mut cols[i * p..], ld);
                        let dy = &grad_output[n * out_img..(n + 1) * out_img];
                        for co in 0..cout {
                            dys[co * ld + i * p..co * ld + (i + 1) * p]
                                .copy_from_slice(&dy[co * p..(co + 1) * p]);
                        }
                    }
                    // part[co, kk] = Σ_q dys[co, q] * cols[kk, q]: both operands have the
                    // reduction contiguous. A small dW is a few hundred long dot products;
                    // a packed GEMM would spend its time transposing the operands.
                    if wlen <= SMALL_WEIGHT_GRADIENT {
                        dot_products(cout, k, ld, &dys[..cout * ld], &cols[..k * ld], part);
                    } else {
                        gemm(cout, k, ld, 1.0, dys, ld, 1, cols, 1, ld, 0.0, part, k, 1);
                    }
                })
            });
        // Add the partials in chunk order; each task owns a block of dW elements.
        const BLOCK: usize = 4096;
        let parts = &partials[..this_wave * wlen];
        grad_weight
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(bi, dw)| {
                let off = bi * BLOCK;
                for (j, part) in parts.chunks_exact(wlen).enumerate() {
                    let src = &part[off..off + dw.len()];
                    if wave_start == 0 && j == 0 {
                        dw.copy_from_slice(src);
                    } else {
                        for (d, s) in dw.iter_mut().zip(src) {
                            *d += s;
                        }
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
