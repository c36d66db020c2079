//! The AVX-512 variant of the argmax over many short rows (an argmax over a few classes),
//! bit-identical to the portable `max_of_row` row by row.

/// Sixteen rows per step, one row per lane, a column of the rows per gather: the same choice
/// as [`super::max_of_row`] lane by lane.
///
/// # Safety
/// The CPU must have AVX-512F; `rows` must hold `out.len() * width` values, `index` as many as
/// `out`, and `1 <= width <= 16`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn max_of_short_rows_avx512(
    rows: &[f32],
    width: usize,
    out: &mut [f32],
    index: &mut [u32],
) {
    use std::arch::x86_64::*;
    let offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(width as i32),
    );
    for block in (0..out.len()).step_by(16) {
        let valid = (out.len() - block).min(16);
        let lanes = ((1u32 << valid) - 1) as __mmask16;
        let base = rows.as_ptr().wrapping_add(block * width);
        let column = |j: usize| {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, base.wrapping_add(j))
        };
        let mut best = column(0);
        let mut best_index = _mm512_setzero_si512();
        // A lane whose best is NaN has its answer.
        let mut settled = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
        for j in 1..width {
            let v = column(j);
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let take = !settled & (_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | nan);
            best = _mm512_mask_mov_ps(best, take, v);
            best_index = _mm512_mask_mov_epi32(best_index, take, _mm512_set1_epi32(j as i32));
            settled |= take & nan;
        }
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(block), lanes, best);
        _mm512_mask_storeu_epi32(index.as_mut_ptr().add(block).cast(), lanes, best_index);
    }
}
