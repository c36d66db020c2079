//! The weight and bias gradients: sums over the whole batch, so unlike the forward pass and the
//! input gradient they need a fixed reduction order to stay independent of the thread count.
//!
//! ```text
//! dW [cout, K] = Σ_n dY_n [cout, P] · cols_nᵀ [P, K]
//! db [cout]    = Σ_{n,oy,ox} dY
//! ```
//!
//! The batch is split into chunks whose size depends only on the geometry; each chunk is one
//! product with its images side by side along the reduction axis, and the chunks' partial sums
//! are added in chunk order.

use super::{check_len, im2col_ld, with_scratch, Conv2dGeometry, GROUP_COLS_BUDGET, GROUP_COLUMNS};
use crate::gemm::gemm;
#[cfg(target_arch = "x86_64")]
use crate::simd::has_avx512;
use rayon::prelude::*;

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
pub(super) fn dot_products(m: usize, n: usize, len: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * len && b.len() >= n * len && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU supports AVX-512F (checked above); the lengths are asserted.
            return unsafe { super::x86::dot_products_avx512(m, n, len, a, b, c) };
        }
    }
    dot_products_portable(m, n, len, a, b, c);
}

/// [`dot_products`] for any CPU.
pub(super) fn dot_products_portable(
    m: usize,
    n: usize,
    len: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
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

/// `Σ_i (Σ_t segments[i][t])` in f64, every segment summed in order from 0, then the
/// segments' sums added in order: exactly one segment after another. Eight segments run side
/// by side, their sums independent chains, so the additions overlap instead of each waiting
/// on the last (four cycles apiece).
pub(super) fn sum_of_sums(segments: &[&[f32]]) -> f64 {
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
