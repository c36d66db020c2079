//! The x86-64 micro-kernels: AVX-512 (14 x 32) and AVX2 + FMA (6 x 16), each instantiated for
//! every edge-tile height. The AVX-512 intrinsics were stabilised in Rust 1.89, the workspace's
//! rust-version.

use super::skinny::avx512_skinny;
use super::{store_scalar, Kernel, Tile};
use std::arch::x86_64::*;

/// Expands `match rows { 1 => f::<1, V>(t), ... }` so that every edge tile height gets its
/// own fully unrolled kernel with exactly that many accumulator rows.
macro_rules! by_rows {
    ($f:ident, $v:literal, $t:expr, [$($r:literal)*]) => {
        match $t.rows {
            $($r => $f::<$r, $v>($t),)*
            _ => unreachable!("tile taller than MR"),
        }
    };
}

/// Defines the hot loop `$name::<R, V>(kc, a, b, ldb)`: `kc` rank-1 updates of an `R x
/// ($lanes*V)` accumulator tile, one vector load of each of the `V` vectors of a `B~` row, one
/// broadcast of each of the `R` values of the `A~` column and `R*V` FMAs per step. A separate
/// function returning the tile by value lets LLVM keep all of it in registers (when the array
/// was also read by the store code, it kept a copy in memory updated every step).
///
/// The generated function's safety contract: `a` must point at `kc` groups of `$mr` floats,
/// `b` at `kc` groups of `$lanes*V` floats `ldb` apart, and the CPU must have `$features`.
macro_rules! micro_loop {
    ($name:ident, $features:literal, $vec:ty, $lanes:literal, $mr:expr,
     [$zero:ident, $load:ident, $set1:ident, $fmadd:ident]) => {
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn $name<const R: usize, const V: usize>(
            kc: usize,
            mut a: *const f32,
            mut b: *const f32,
            ldb: usize,
        ) -> [[$vec; V]; R] {
            let mut acc = [[$zero(); V]; R];
            let mut bv = [$zero(); V];
            for _ in 0..kc {
                // SAFETY: a and b advance by one group per iteration, kc groups are there.
                unsafe {
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = $load(b.add($lanes * v));
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        let ai = $set1(*a.add(i));
                        for (x, &bx) in row.iter_mut().zip(&bv) {
                            *x = $fmadd(ai, bx, *x);
                        }
                    }
                }
                a = a.wrapping_add($mr);
                b = b.wrapping_add(ldb);
            }
            acc
        }
    };
}

// ----- AVX-512: 14 x 32 -----

const MR512: usize = 14;
const NR512: usize = 32;

pub(super) const AVX512: Kernel = Kernel {
    name: "avx512 14x32",
    mr: MR512,
    nr: NR512,
    run: avx512_tile,
    skinny: Some(avx512_skinny),
};

/// # Safety
/// See [`Kernel::run`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn avx512_tile(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe {
        if t.cols > 16 {
            by_rows!(avx512_kernel, 2, t, [1 2 3 4 5 6 7 8 9 10 11 12 13 14])
        } else {
            by_rows!(avx512_kernel, 1, t, [1 2 3 4 5 6 7 8 9 10 11 12 13 14])
        }
    }
}

micro_loop!(
    avx512_loop,
    "avx512f",
    __m512,
    16,
    MR512,
    [
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    ]
);

/// An `R x 16V` tile: `R*V` zmm accumulators.
///
/// # Safety
/// See [`Kernel::run`]; `R == t.rows`, `16(V-1) < t.cols <= 16V`; AVX-512F available.
#[target_feature(enable = "avx512f")]
unsafe fn avx512_kernel<const R: usize, const V: usize>(t: &Tile) {
    assert!(t.a.len() >= t.kc * MR512 && t.b.len() >= (t.kc - 1) * t.ldb + NR512);
    // Start pulling the C tile into cache now, so the stores at the end do not stall on
    // it (with large power-of-two row strides its rows also compete for the same L1 sets).
    for i in 0..R {
        for v in 0..V {
            let p = t.c.wrapping_add(i * t.rsc + 16 * v * t.csc);
            // A prefetch is only a hint: it never faults, whatever the address (safe fn).
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        }
    }
    // SAFETY: the assert above shows kc groups of MR (resp. NR) floats are in the panels.
    let acc = unsafe { avx512_loop::<R, V>(t.kc, t.a.as_ptr(), t.b.as_ptr(), t.ldb) };

    let (alpha, beta) = (_mm512_set1_ps(t.alpha), _mm512_set1_ps(t.beta));
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            let lanes = (t.cols - 16 * v).min(16);
            // SAFETY: column 16v < cols is inside the tile, which the caller guarantees is
            // ours; the masked load/store touch only the `lanes` valid columns.
            unsafe {
                let c = t.c.add(i * t.rsc + 16 * v * t.csc);
                if t.csc == 1 {
                    let mask: __mmask16 = (((1u32 << lanes) - 1) & 0xffff) as u16;
                    let mut r = _mm512_mul_ps(alpha, x);
                    if t.beta != 0.0 {
                        let old = _mm512_maskz_loadu_ps(mask, c);
                        r = _mm512_add_ps(r, _mm512_mul_ps(beta, old));
                    }
                    _mm512_mask_storeu_ps(c, mask, r);
                } else {
                    let mut tmp = [0.0f32; 16];
                    _mm512_storeu_ps(tmp.as_mut_ptr(), x);
                    for (j, &ab) in tmp.iter().enumerate().take(lanes) {
                        store_scalar(c.add(j * t.csc), ab, t.alpha, t.beta);
                    }
                }
            }
        }
    }
}

// ----- AVX2 + FMA: 6 x 16 -----

const MR256: usize = 6;
const NR256: usize = 16;

pub(super) const AVX2: Kernel = Kernel {
    name: "avx2 6x16",
    mr: MR256,
    nr: NR256,
    run: avx2_tile,
    skinny: None,
};

/// # Safety
/// See [`Kernel::run`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe {
        if t.cols > 8 {
            by_rows!(avx2_kernel, 2, t, [1 2 3 4 5 6])
        } else {
            by_rows!(avx2_kernel, 1, t, [1 2 3 4 5 6])
        }
    }
}

micro_loop!(
    avx2_loop,
    "avx2,fma",
    __m256,
    8,
    MR256,
    [
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    ]
);

/// An `R x 8V` tile: `R*V` ymm accumulators.
///
/// # Safety
/// See [`Kernel::run`]; `R == t.rows`, `8(V-1) < t.cols <= 8V`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_kernel<const R: usize, const V: usize>(t: &Tile) {
    assert!(t.a.len() >= t.kc * MR256 && t.b.len() >= (t.kc - 1) * t.ldb + NR256);
    // SAFETY: the assert above shows the panels hold what the loop reads.
    let acc = unsafe { avx2_loop::<R, V>(t.kc, t.a.as_ptr(), t.b.as_ptr(), t.ldb) };

    let (alpha, beta) = (_mm256_set1_ps(t.alpha), _mm256_set1_ps(t.beta));
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            let lanes = (t.cols - 8 * v).min(8);
            // SAFETY: full vectors are only stored when all 8 columns are in the tile;
            // partial ones go element by element; the tile is ours by contract.
            unsafe {
                let c = t.c.add(i * t.rsc + 8 * v * t.csc);
                if t.csc == 1 && lanes == 8 {
                    let mut r = _mm256_mul_ps(alpha, x);
                    if t.beta != 0.0 {
                        r = _mm256_add_ps(r, _mm256_mul_ps(beta, _mm256_loadu_ps(c)));
                    }
                    _mm256_storeu_ps(c, r);
                } else {
                    let mut tmp = [0.0f32; 8];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), x);
                    for (j, &ab) in tmp.iter().enumerate().take(lanes) {
                        store_scalar(c.add(j * t.csc), ab, t.alpha, t.beta);
                    }
                }
            }
        }
    }
}
