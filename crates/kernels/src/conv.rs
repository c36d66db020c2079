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
//! Parallelism: the batch. One image's GEMM is small (LeNet-5 conv2: M=16, K=150, N=100),
//! so each rayon task handles whole images and calls `gemm`, which stays single-threaded at
//! such sizes (and parallelises internally, deterministically, when an image is big).
//! A 1x1, stride-1, unpadded convolution needs no im2col: the image already is `cols`.
//!
//! Determinism: forward and input-gradient write disjoint per-image outputs, so thread count
//! cannot matter. The weight gradient sums over the batch; it is split into chunks whose size
//! depends only on the geometry (never on the thread count), each chunk is one GEMM with the
//! chunk's images side by side along the reduction axis, and the chunk partials are added in
//! chunk order. The bias gradient is one sequential f64 sum per output channel.

use rayon::prelude::*;

use crate::gemm::gemm;

/// Sizes of a 2-D convolution. Input `[batch, in_channels, in_h, in_w]`, weight
/// `[out_channels, in_channels, kernel_h, kernel_w]`, output `[batch, out_channels, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
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
fn col2im_ld(g: &Conv2dGeometry, cols: &[f32], ld: usize, image: &mut [f32]) {
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

/// `y[n,co,oy,ox] = Σ_{ci,ki,kj} W[co,ci,ki,kj] * x[n,ci,oy*sh+ki-ph,ox*sw+kj-pw] + b[co]`
/// (out-of-range input reads as 0). Overwrites `output`.
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
    let pointwise = g.is_pointwise();
    output
        .par_chunks_mut(cout * p)
        .zip(input.par_chunks(g.image_len()))
        .for_each_init(
            || vec![0.0f32; if pointwise { 0 } else { k * p }],
            |cols, (y, x)| {
                let b_mat: &[f32] = if pointwise {
                    x
                } else {
                    im2col_ld(g, x, cols, p);
                    cols
                };
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
                gemm(cout, p, k, 1.0, weight, k, 1, b_mat, p, 1, beta, y, p, 1);
            },
        );
}

/// `dX = col2im(Wᵀ · dY)` per image. Overwrites `grad_input`.
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
    let pointwise = g.is_pointwise();
    grad_input
        .par_chunks_mut(g.image_len())
        .zip(grad_output.par_chunks(cout * p))
        .for_each_init(
            || vec![0.0f32; if pointwise { 0 } else { k * p }],
            |dcols, (dx, dy)| {
                // Wᵀ is read in place: element (kk, co) of Wᵀ is weight[co*K + kk].
                if pointwise {
                    gemm(k, p, cout, 1.0, weight, 1, k, dy, p, 1, 0.0, dx, p, 1);
                } else {
                    gemm(k, p, cout, 1.0, weight, 1, k, dy, p, 1, 0.0, dcols, p, 1);
                    dx.fill(0.0);
                    col2im_ld(g, dcols, p, dx);
                }
            },
        );
}

/// Images per weight-gradient chunk. Four images already give each GEMM a long reduction
/// (4*oh*ow) while batch 100 still yields 25 chunks to spread over threads; fewer images when
/// one image's im2col is large, so a chunk's scratch stays around 8 MiB. It depends only on
/// the geometry, never on the thread count: that is what makes the summation order, and so
/// the bits of dW, the same at any thread count.
fn wgrad_chunk_images(g: &Conv2dGeometry) -> usize {
    const MAX_IMAGES: usize = 4;
    const COLS_BUDGET: usize = 2 << 20; // floats
    let per_image = (g.col_rows() * g.col_cols()).max(1);
    (COLS_BUDGET / per_image).clamp(1, MAX_IMAGES)
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
        // One channel per task, summed sequentially in f64: fixed order, little rounding.
        db.par_iter_mut().enumerate().for_each(|(co, d)| {
            let mut s = 0.0f64;
            for img in grad_output.chunks_exact(out_img) {
                s += img[co * p..(co + 1) * p]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            *d = s as f32;
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

    for wave_start in (0..n_chunks).step_by(wave) {
        let this_wave = wave.min(n_chunks - wave_start);
        partials[..this_wave * wlen]
            .par_chunks_mut(wlen)
            .enumerate()
            .for_each_init(
                || (vec![0.0f32; k * chunk * p], vec![0.0f32; cout * chunk * p]),
                |(cols, dys), (j, part)| {
                    let first = (wave_start + j) * chunk;
                    let count = chunk.min(g.batch - first);
                    // Lay the chunk's images side by side: cols [K, count*P] and
                    // dY [cout, count*P], so one GEMM reduces over all of them.
                    let ld = count * p;
                    for i in 0..count {
                        let n = first + i;
                        im2col_ld(
                            g,
                            &input[n * in_img..(n + 1) * in_img],
                            &mut cols[i * p..],
                            ld,
                        );
                        let dy = &grad_output[n * out_img..(n + 1) * out_img];
                        for co in 0..cout {
                            dys[co * ld + i * p..co * ld + (i + 1) * p]
                                .copy_from_slice(&dy[co * p..(co + 1) * p]);
                        }
                    }
                    // part[co, kk] = Σ_q dys[co, q] * cols[kk, q]: cols read transposed.
                    gemm(cout, k, ld, 1.0, dys, ld, 1, cols, 1, ld, 0.0, part, k, 1);
                },
            );
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
