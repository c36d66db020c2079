//! AVX-512 max pooling over 2x2 tiles at stride 2: the same values and argmax indices as the
//! scalar loop in `mod.rs`, sixteen outputs at a time; the caller checks
//! [`has_avx512`](crate::simd::has_avx512) first.

use std::arch::x86_64::*;

/// [`max_pool_2x2`](super::max_pool_2x2) sixteen outputs at a time: each output row's two
/// input rows are loaded (masked at the row's end), split into even and odd columns by one
/// permute each, and the four candidates of every tile compared in reading order with the same
/// rule as the scalar loop, so values and argmax indices are identical to it.
///
/// # Safety
/// The CPU must support AVX-512F; `x` must hold the plane's `2·oh` input rows of `in_w`
/// floats (`in_w >= 2·ow`), `y` and `argmax` its `oh·ow` outputs.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn max_pool_2x2_avx512(
    in_w: usize,
    ow: usize,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let oh = y.len() / ow.max(1);
    assert!(x.len() >= 2 * oh * in_w && in_w >= 2 * ow && argmax.len() == y.len());
    // Lane l's even column 2l: both the permute pattern and each tile's first index offset.
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    let first = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
    // Even and odd columns of the 2n floats starting at `p`.
    let split = |p: *const f32, n: usize| {
        let lo = _mm512_maskz_loadu_ps(first(2 * n), p);
        let hi = _mm512_maskz_loadu_ps(first((2 * n).saturating_sub(16)), p.wrapping_add(16));
        (
            _mm512_permutex2var_ps(lo, evens, hi),
            _mm512_permutex2var_ps(lo, odds, hi),
        )
    };
    for oy in 0..oh {
        let top = 2 * oy * in_w;
        let bottom = top + in_w;
        for ox0 in (0..ow).step_by(16) {
            let n = (ow - ox0).min(16);
            let (te, to) = split(x.as_ptr().add(top + 2 * ox0), n);
            let (be, bo) = split(x.as_ptr().add(bottom + 2 * ox0), n);
            let start = _mm512_add_epi32(_mm512_set1_epi32((top + 2 * ox0) as i32), evens);
            let (mut best, mut best_i) = (te, start);
            for (v, offset) in [(to, 1), (be, in_w), (bo, in_w + 1)] {
                let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
                let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                let best_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
                let take = greater | (v_nan & !best_nan);
                best = _mm512_mask_mov_ps(best, take, v);
                let index = _mm512_add_epi32(start, _mm512_set1_epi32(offset as i32));
                best_i = _mm512_mask_mov_epi32(best_i, take, index);
            }
            let out = oy * ow + ox0;
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(out), first(n), best);
            _mm512_mask_storeu_epi32(argmax.as_mut_ptr().add(out) as *mut i32, first(n), best_i);
        }
    }
}
