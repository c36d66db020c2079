//! Skinny products: at most 16 columns in `C`, and either at most 16 rows or a shared dimension
//! of at most 16. A small multilayer perceptron lives here: `[7000, 5] x [5, 5]` forward and
//! `[5, 7000] x [7000, 3]` for a weight gradient.
//!
//! Packing makes no sense for these: each packed element would be used at most 16 times, and
//! with 5 columns the 14 x 32 micro-kernel wastes 27 of its 32 lanes. Instead one `zmm`
//! register holds a whole row of `C` (the `n <= 16` columns, masked), and:
//!
//! * short `k`: the `k` rows of `B` are loaded into registers once, and every row of `C` is
//!   `k` broadcast-FMAs of `A`'s row against them, eight rows at a time so that eight
//!   independent FMA chains hide the FMA latency;
//! * short `m`: the `m` rows of `C` stay in registers while the kernel walks `k`, one masked
//!   load of `B`'s row and `m` broadcast-FMAs per step.
//!
//! Every element is the same chain of FMAs, in the same `k` order and split into the same
//! `KC` slices, as in the packed kernels, and it is stored by the same
//! `alpha * ab + beta * c`: switching between this path and the packed one changes no bits.

use super::{blocks, store_scalar, CPtr, Operand, Product, KC, PAR_THRESHOLD};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// The widest `C` (and the shortest other side) this path takes: one `zmm` register of floats.
pub(super) const LANES: usize = 16;

/// Whether the skinny kernels take an `m x n x k` product.
pub(super) fn applies(m: usize, n: usize, k: usize) -> bool {
    n <= LANES && (k <= LANES || m <= LANES)
}

/// Rows of `C` per task when a short-`k` product is split over threads.
const ROWS_PER_TASK: usize = 512;

/// `C = alpha * A B + beta * C` for a skinny product (see [`applies`]), `k > 0`.
///
/// # Safety
/// As `gemm_unchecked`: every `c + i*rsc + j*csc` (i < m, j < n) valid, distinct and ours for
/// the call; `a`, `b` cover their `m x k`, `k x n` index ranges. AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_skinny(p: Product, parallel: bool) {
    let (m, n, k, a, b) = (p.m, p.n, p.k, p.a, p.b);
    let out = Out {
        c: p.c,
        rsc: p.rsc,
        csc: p.csc,
        n,
        alpha: p.alpha,
        beta: p.beta,
    };
    if k <= LANES {
        let work = m.saturating_mul(n).saturating_mul(k);
        if parallel && rayon::current_num_threads() > 1 && work >= PAR_THRESHOLD {
            let starts: Vec<usize> = (0..m).step_by(ROWS_PER_TASK).collect();
            starts.into_par_iter().for_each(|i0| {
                let rows = ROWS_PER_TASK.min(m - i0);
                // SAFETY: row ranges are disjoint between tasks; the rest is forwarded.
                unsafe { short_k(i0, rows, k, a, b, &out) }
            });
        } else {
            // SAFETY: forwarded.
            unsafe { short_k(0, m, k, a, b, &out) }
        }
    } else {
        // SAFETY: forwarded; m <= LANES since `applies` held and k > LANES.
        unsafe { short_m(m, k, a, b, &out) }
    }
}

/// Where and how the rows of `C` are written.
struct Out {
    c: CPtr,
    rsc: usize,
    csc: usize,
    n: usize,
    alpha: f32,
    beta: f32,
}

/// Row `p` of `B` (its first `n` columns) in one register, zero beyond `n`.
#[target_feature(enable = "avx512f")]
#[inline]
fn load_b_row(b: Operand, p: usize, n: usize) -> __m512 {
    let start = p * b.rs;
    if b.cs == 1 {
        let row = &b.data[start..start + n];
        // SAFETY: the masked load reads only the `n` lanes of `row`.
        unsafe { _mm512_maskz_loadu_ps(mask(n), row.as_ptr()) }
    } else {
        let mut row = [0.0f32; LANES];
        for (j, x) in row.iter_mut().enumerate().take(n) {
            *x = b.data[start + j * b.cs];
        }
        // SAFETY: `row` holds 16 floats.
        unsafe { _mm512_loadu_ps(row.as_ptr()) }
    }
}

fn mask(n: usize) -> __mmask16 {
    (((1u32 << n) - 1) & 0xffff) as u16
}

/// Writes `alpha * acc + beta * C` to row `i` of `C`, as the packed kernels store a tile row.
///
/// # Safety
/// Row `i` of `C` must be valid and ours; AVX-512F available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_row(out: &Out, i: usize, acc: __m512, beta: f32) {
    let c = out.c.at(i * out.rsc);
    // SAFETY: the caller vouches for row i; masked accesses touch only its n elements.
    unsafe {
        if out.csc == 1 {
            let m = mask(out.n);
            let mut r = _mm512_mul_ps(_mm512_set1_ps(out.alpha), acc);
            if beta != 0.0 {
                let old = _mm512_maskz_loadu_ps(m, c);
                r = _mm512_add_ps(r, _mm512_mul_ps(_mm512_set1_ps(beta), old));
            }
            _mm512_mask_storeu_ps(c, m, r);
        } else {
            let mut tmp = [0.0f32; LANES];
            _mm512_storeu_ps(tmp.as_mut_ptr(), acc);
            for (j, &ab) in tmp.iter().enumerate().take(out.n) {
                store_scalar(c.add(j * out.csc), ab, out.alpha, beta);
            }
        }
    }
}

/// Rows `i0..i0 + rows` of `C` when `k <= 16`: `B` sits in `k` registers.
///
/// # Safety
/// As [`avx512_skinny`], for those rows.
#[target_feature(enable = "avx512f")]
unsafe fn short_k(i0: usize, rows: usize, k: usize, a: Operand, b: Operand, out: &Out) {
    let mut bv = [_mm512_setzero_ps(); LANES];
    for (p, v) in bv.iter_mut().enumerate().take(k) {
        *v = load_b_row(b, p, out.n);
    }
    let end = i0 + rows;
    let mut i = i0;
    while i + 8 <= end {
        // SAFETY: rows i..i+8 are inside the caller's range.
        unsafe { rows_short_k::<8>(i, k, a, &bv, out) };
        i += 8;
    }
    // SAFETY: as above, for the remaining rows.
    unsafe {
        match end - i {
            0 => {}
            1 => rows_short_k::<1>(i, k, a, &bv, out),
            2 => rows_short_k::<2>(i, k, a, &bv, out),
            3 => rows_short_k::<3>(i, k, a, &bv, out),
            4 => rows_short_k::<4>(i, k, a, &bv, out),
            5 => rows_short_k::<5>(i, k, a, &bv, out),
            6 => rows_short_k::<6>(i, k, a, &bv, out),
            7 => rows_short_k::<7>(i, k, a, &bv, out),
            _ => unreachable!(),
        }
    }
}

/// `R` rows of `C` from `k` broadcast-FMAs each against the preloaded rows of `B`.
///
/// # Safety
/// Rows `i..i+R` of `C` valid and ours; AVX-512F available.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_short_k<const R: usize>(
    i: usize,
    k: usize,
    a: Operand,
    bv: &[__m512; LANES],
    out: &Out,
) {
    let mut acc = [_mm512_setzero_ps(); R];
    for (p, &bp) in bv.iter().enumerate().take(k) {
        for (r, x) in acc.iter_mut().enumerate() {
            let air = _mm512_set1_ps(a.data[(i + r) * a.rs + p * a.cs]);
            *x = _mm512_fmadd_ps(air, bp, *x);
        }
    }
    if out.csc == 1 && out.beta == 0.0 {
        // The common case, inline: `alpha * acc` with one masked store per row.
        let (m, alpha) = (mask(out.n), _mm512_set1_ps(out.alpha));
        for (r, &x) in acc.iter().enumerate() {
            // SAFETY: row i + r of C is ours (forwarded); the mask covers its n elements.
            unsafe {
                _mm512_mask_storeu_ps(out.c.at((i + r) * out.rsc), m, _mm512_mul_ps(alpha, x))
            };
        }
        return;
    }
    for (r, &x) in acc.iter().enumerate() {
        // SAFETY: forwarded.
        unsafe { store_row(out, i + r, x, out.beta) };
    }
}

/// All `m <= 16` rows of `C` when `k` is long: `C` sits in `m` registers.
///
/// # Safety
/// As [`avx512_skinny`].
#[target_feature(enable = "avx512f")]
unsafe fn short_m(m: usize, k: usize, a: Operand, b: Operand, out: &Out) {
    // SAFETY: forwarded.
    unsafe {
        match m {
            1 => rows_short_m::<1>(k, a, b, out),
            2 => rows_short_m::<2>(k, a, b, out),
            3 => rows_short_m::<3>(k, a, b, out),
            4 => rows_short_m::<4>(k, a, b, out),
            5 => rows_short_m::<5>(k, a, b, out),
            6 => rows_short_m::<6>(k, a, b, out),
            7 => rows_short_m::<7>(k, a, b, out),
            8 => rows_short_m::<8>(k, a, b, out),
            9 => rows_short_m::<9>(k, a, b, out),
            10 => rows_short_m::<10>(k, a, b, out),
            11 => rows_short_m::<11>(k, a, b, out),
            12 => rows_short_m::<12>(k, a, b, out),
            13 => rows_short_m::<13>(k, a, b, out),
            14 => rows_short_m::<14>(k, a, b, out),
            15 => rows_short_m::<15>(k, a, b, out),
            16 => rows_short_m::<16>(k, a, b, out),
            _ => unreachable!("short_m with m = {m}"),
        }
    }
}

/// `R` rows of `C`, accumulated over `k` in the packed kernels' `KC` slices: the first slice
/// applies the caller's `beta`, the later ones add to what the earlier ones stored.
///
/// # Safety
/// As [`avx512_skinny`] with `m == R`.
#[target_feature(enable = "avx512f")]
unsafe fn rows_short_m<const R: usize>(k: usize, a: Operand, b: Operand, out: &Out) {
    for (slice, (pc, kc)) in blocks(k, KC, 1).enumerate() {
        let mut acc = [_mm512_setzero_ps(); R];
        for p in pc..pc + kc {
            let bp = load_b_row(b, p, out.n);
            for (r, x) in acc.iter_mut().enumerate() {
                let arp = _mm512_set1_ps(a.data[r * a.rs + p * a.cs]);
                *x = _mm512_fmadd_ps(arp, bp, *x);
            }
        }
        let beta = if slice == 0 { out.beta } else { 1.0 };
        for (r, &x) in acc.iter().enumerate() {
            // SAFETY: forwarded.
            unsafe { store_row(out, r, x, beta) };
        }
    }
}
