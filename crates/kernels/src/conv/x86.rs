//! AVX-512 variants of the convolution's inner loops: im2col and col2im for layers at most 16
//! pixels wide (one masked register per row segment), and the weight gradient's blocked dot
//! products. Each computes exactly what its portable loop in `mod.rs` or `weight_gradient.rs`
//! computes, in the same order, so results are bit-identical; the callers check
//! [`has_avx512`] before calling them.

use super::{valid_range, Conv2dGeometry};
use crate::simd::has_avx512;
use std::arch::x86_64::*;

/// Whether a layer's output rows fit one AVX-512 register (at most 16 wide, stride 1), so
/// im2col can move each row segment with one masked load and one masked store. (col2im
/// stays scalar: its read-add-write of image rows that the previous segment just stored
/// stalls on masked stores, which the CPU cannot forward to the next load.)
/// Row segments of 7 to 16 floats are too short for `memcpy`/`memset`, whose call overhead
/// was most of im2col's time on CNN3L's 14x14 layer.
pub(super) fn narrow_rows(g: &Conv2dGeometry) -> bool {
    g.stride_w == 1 && g.out_w() <= 16 && has_avx512()
}

/// The lanes `lo..hi` of a 16-lane mask.
fn lane_mask(lo: usize, hi: usize) -> u16 {
    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
}

/// [`im2col_ld`](super::im2col_ld) for [`narrow_rows`] geometries: each output row segment is one masked load
/// (lanes over the padding read as zero, and are never touched in memory) and one masked store.
///
/// # Safety
/// The CPU must support AVX-512F; the geometry must satisfy [`narrow_rows`]; `image` and
/// `cols` must be sized as for [`im2col_ld`](super::im2col_ld).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn im2col_narrow_avx512(
    g: &Conv2dGeometry,
    image: &[f32],
    cols: &mut [f32],
    ld: usize,
) {
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
pub(super) fn narrow_gather(g: &Conv2dGeometry) -> bool {
    g.stride_h == 1 && g.stride_w == 1 && g.in_w <= 16 && g.out_w() <= 16 && has_avx512()
}

/// [`col2im_ld`](super::col2im_ld) for [`narrow_gather`] geometries, as a gather: each image row is one register
/// that collects its `kh·kw` shifted column segments (one masked load and one masked add
/// each) and is stored once. A pixel receives its terms in the scalar loop's order (kernel row,
/// then kernel column, added to what the image held), so the sums are bit-identical; the
/// scatter's read-add-write of short rows is what this avoids.
///
/// # Safety
/// The CPU must support AVX-512F; the geometry must satisfy [`narrow_gather`]; `cols` and
/// `image` must be sized as for [`col2im_ld`](super::col2im_ld).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn col2im_gather_avx512(
    g: &Conv2dGeometry,
    cols: &[f32],
    ld: usize,
    image: &mut [f32],
) {
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

/// [`dot_products`](super::weight_gradient::dot_products) with AVX-512: 4 rows of `A` by 4
/// rows of `B` per pass, sixteen
/// accumulators of sixteen lanes sharing eight loads per step. The four rows of `B` (the
/// larger operand, im2col rows) stay in L1 while every row of `A` passes over them, so `B` is
/// read from memory once; `A` (a few filters' gradients) stays in L2. Each output is still one
/// sequential sum over `len` in sixteen lanes, reduced once: the blocking does not change
/// the result.
///
/// # Safety
/// The CPU must support AVX-512F; `a`, `b`, `c` must hold `m·len`, `n·len`, `m·n` floats.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dot_products_avx512(
    m: usize,
    n: usize,
    len: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
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
