//! The x86-64 forms of the chunk passes: the chunk loops written in AVX-512 intrinsics
//! ([`Avx512`]), and the passes compiled twice, once over those (`avx512_passes`) and once over
//! the plain loops with AVX2 and FMA enabled (`fma_passes`, where `mul_add` becomes one
//! instruction). Each intrinsic loop performs the plain loop's IEEE operations in the same
//! order, so all give the same bits (tested).

use super::{
    backward_chunk, forward_chunk, ChunkMath, Column, DenseLayer, LaneSums, Portable, CHUNK_ROWS,
};

/// The chunk loops in AVX-512 intrinsics.
pub(super) struct Avx512;

/// The AVX-512 loops. Each is an `unsafe` target-feature function, wrapped by the trait.
mod avx512 {
    use super::super::{Column, LaneSums, BLOCKS, DOT_SUMS, LANES};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn row_offsets(width: usize) -> __m512i {
        // SAFETY: AVX-512F is enabled in every caller (all are AVX-512F functions).
        unsafe {
            _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(width as i32),
            )
        }
    }

    /// Lanes `0..valid` set.
    #[inline(always)]
    fn first_lanes(valid: usize) -> __mmask16 {
        ((1u32 << valid.min(LANES)) - 1) as __mmask16
    }

    /// # Safety
    /// AVX-512F; `src` holds `count * width` values, `dst` at least `width` columns,
    /// `count <= CHUNK_ROWS`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]) {
        let offsets = row_offsets(width);
        for block in 0..BLOCKS {
            // Lanes of rows at or past `count` are not read, and are zero.
            let mask = first_lanes(count.saturating_sub(block * LANES));
            let base = src.as_ptr().wrapping_add(block * LANES * width);
            for (i, column) in dst[..width].iter_mut().enumerate() {
                let v = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    offsets,
                    base.wrapping_add(i),
                );
                _mm512_storeu_ps(column.as_mut_ptr().add(block * LANES), v);
            }
        }
    }

    /// # Safety
    /// AVX-512F; `dst` holds `count * width` values, `src` at least `width` columns,
    /// `count <= CHUNK_ROWS`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]) {
        let offsets = row_offsets(width);
        for block in 0..count.div_ceil(LANES) {
            let mask = first_lanes(count - block * LANES);
            let base = dst.as_mut_ptr().wrapping_add(block * LANES * width);
            for (i, column) in src[..width].iter().enumerate() {
                let v = _mm512_loadu_ps(column.as_ptr().add(block * LANES));
                _mm512_mask_i32scatter_ps::<4>(base.wrapping_add(i), mask, offsets, v);
            }
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    ) {
        // The whole chunk's sums live in sixteen registers while the coefficients run.
        let mut acc = [_mm512_setzero_ps(); BLOCKS];
        for (&c, column) in coefficients.iter().zip(columns) {
            let c = _mm512_set1_ps(c);
            for (b, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_loadu_ps(column.as_ptr().add(b * LANES));
                *acc = _mm512_fmadd_ps(c, v, *acc);
            }
        }
        let zero = _mm512_setzero_ps();
        for (b, mut v) in acc.into_iter().enumerate() {
            if let Some(bias) = bias {
                v = _mm512_add_ps(v, _mm512_set1_ps(bias));
            }
            if relu {
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero), v);
            }
            _mm512_storeu_ps(out.as_mut_ptr().add(b * LANES), v);
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn relu_mask(g: &mut Column, h: &Column) {
        let zero = _mm512_setzero_ps();
        for b in 0..BLOCKS {
            let p = g.as_mut_ptr().add(b * LANES);
            let positive =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(h.as_ptr().add(b * LANES)), zero);
            _mm512_storeu_ps(p, _mm512_maskz_mov_ps(positive, _mm512_loadu_ps(p)));
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]) {
        // `g` stays in registers across the columns.
        let mut gv = [_mm512_setzero_ps(); BLOCKS];
        for (b, v) in gv.iter_mut().enumerate() {
            *v = _mm512_loadu_ps(g.as_ptr().add(b * LANES));
        }
        for (sum, column) in sums.iter_mut().zip(columns) {
            let mut partial = [_mm512_setzero_ps(); DOT_SUMS];
            for (b, g) in gv.iter().enumerate() {
                let h = _mm512_loadu_ps(column.as_ptr().add(b * LANES));
                partial[b % DOT_SUMS] = _mm512_fmadd_ps(*g, h, partial[b % DOT_SUMS]);
            }
            let dot = _mm512_add_ps(
                _mm512_add_ps(partial[0], partial[1]),
                _mm512_add_ps(partial[2], partial[3]),
            );
            _mm512_storeu_ps(
                sum.as_mut_ptr(),
                _mm512_add_ps(_mm512_loadu_ps(sum.as_ptr()), dot),
            );
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]) {
        for (t, p) in total.iter_mut().zip(partial) {
            let sum = _mm512_add_ps(_mm512_loadu_ps(t.as_ptr()), _mm512_loadu_ps(p.as_ptr()));
            _mm512_storeu_ps(t.as_mut_ptr(), sum);
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate(g: &Column, sum: &mut LaneSums) {
        let mut acc = _mm512_loadu_ps(sum.as_ptr());
        for b in 0..BLOCKS {
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(g.as_ptr().add(b * LANES)));
        }
        _mm512_storeu_ps(sum.as_mut_ptr(), acc);
    }
}

// `Avx512` is only used where `Isa::detected()` found AVX-512F (in `avx512_passes`, and for
// `backward_with`'s sums under `Isa::Avx512`); sizes are as `check_chain` and callers ensure.
impl ChunkMath for Avx512 {
    #[inline(always)]
    fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]) {
        assert!(count <= CHUNK_ROWS && src.len() >= count * width && dst.len() >= width);
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::load_columns(src, width, count, dst) }
    }
    #[inline(always)]
    fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]) {
        assert!(count <= CHUNK_ROWS && dst.len() >= count * width && src.len() >= width);
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::store_columns(src, width, count, dst) }
    }
    #[inline(always)]
    fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    ) {
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::combine(coefficients, columns, bias, relu, out) }
    }
    #[inline(always)]
    fn relu_mask(g: &mut Column, h: &Column) {
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::relu_mask(g, h) }
    }
    #[inline(always)]
    fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]) {
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::accumulate_dots(g, columns, sums) }
    }
    #[inline(always)]
    fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]) {
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::add_sums(total, partial) }
    }
    #[inline(always)]
    fn accumulate(g: &Column, sum: &mut LaneSums) {
        // SAFETY: AVX-512F is there (see above); the sizes are checked or fixed.
        unsafe { avx512::accumulate(g, sum) }
    }
}

/// Defines module `$name` with `forward` and `backward`: [`forward_chunk`] and
/// [`backward_chunk`] over `$math`, inlined into functions compiled with `$features` enabled
/// (the plain loops' `mul_add` becomes one instruction only where FMA is enabled).
macro_rules! compiled_passes {
    ($name:ident, $features:literal, $math:ty) => {
        pub(super) mod $name {
            use super::*;

            /// # Safety
            /// The CPU must have the features named above.
            #[target_feature(enable = $features)]
            pub unsafe fn forward(
                layers: &[DenseLayer],
                x: &[f32],
                rows: usize,
                out: &mut [f32],
                scratch: &mut [Column],
            ) {
                forward_chunk::<$math>(layers, x, rows, out, scratch)
            }

            /// # Safety
            /// The CPU must have the features named above.
            #[target_feature(enable = $features)]
            pub unsafe fn backward(
                layers: &[DenseLayer],
                x: &[f32],
                dy: &[f32],
                rows: usize,
                grads: &mut [LaneSums],
                dx: Option<&mut [f32]>,
                scratch: &mut [Column],
            ) {
                backward_chunk::<$math>(layers, x, dy, rows, grads, dx, scratch)
            }
        }
    };
}

compiled_passes!(avx512_passes, "avx512f", Avx512);
compiled_passes!(fma_passes, "avx2,fma", Portable);
