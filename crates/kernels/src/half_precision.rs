//! 16-bit floats: conversions between `f32` and the two half formats, and a GEMM with 16-bit
//! operands and `f32` accumulation. The CPU twins of `kernels/half.cu`.
//!
//! | format | sign | exponent | mantissa | range | digits |
//! |---|---|---|---|---|---|
//! | f16 (IEEE binary16) | 1 | 5 (bias 15) | 10 | ±65504, subnormals to 2⁻²⁴ | 3–4 |
//! | bf16 (bfloat16) | 1 | 8 (bias 127) | 7 | as `f32` | 2–3 |
//!
//! Values travel as raw `u16` bits. `f32 → 16 bits` rounds to nearest, ties to even (overflow
//! gives infinity, NaN stays NaN); `16 bits → f32` is exact. The rounding is the `half`
//! crate's, and the CUDA kernels match it bit for bit.
//!
//! Tensors still store `f32`; these are the kernels a 16-bit storage type is built on.

use crate::gemm::gemm;
use half::{bf16, f16};
use rayon::prelude::*;

/// Slices at least this long are converted in parallel.
const PARALLEL_THRESHOLD: usize = 1 << 16;
/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn check(op: &str, src: usize, dst: usize) {
    assert_eq!(
        src, dst,
        "{op}: source has {src} elements but destination has {dst}"
    );
}

/// Applies `f` element by element from `src` to `dst`, in parallel for long slices.
fn convert<S: Copy + Sync, D: Send>(op: &str, src: &[S], dst: &mut [D], f: impl Fn(S) -> D + Sync) {
    check(op, src.len(), dst.len());
    let body = |(d, s): (&mut [D], &[S])| {
        for (d, &s) in d.iter_mut().zip(s) {
            *d = f(s);
        }
    };
    if src.len() >= PARALLEL_THRESHOLD {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(body);
    } else {
        body((dst, src));
    }
}

/// `dst[i] = f16 bits of src[i]`, rounded to nearest even.
///
/// ```
/// use strata_kernels::half_precision::{f16_to_f32, f32_to_f16};
/// let mut bits = [0u16; 3];
/// f32_to_f16(&[1.0, 65504.0, 1e6], &mut bits);
/// assert_eq!(bits, [0x3c00, 0x7bff, 0x7c00]); // one, the largest finite f16, infinity
/// let mut back = [0.0f32; 3];
/// f16_to_f32(&bits, &mut back);
/// assert_eq!(back, [1.0, 65504.0, f32::INFINITY]);
/// ```
///
/// # Panics
/// If the slices differ in length.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    convert("f32_to_f16", src, dst, |x| f16::from_f32(x).to_bits());
}

/// `dst[i] = src[i]` (f16 bits) as `f32`, exactly.
///
/// # Panics
/// If the slices differ in length.
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    convert("f16_to_f32", src, dst, |h| f16::from_bits(h).to_f32());
}

/// `dst[i] = bf16 bits of src[i]`, rounded to nearest even.
///
/// # Panics
/// If the slices differ in length.
pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) {
    convert("f32_to_bf16", src, dst, |x| bf16::from_f32(x).to_bits());
}

/// `dst[i] = src[i]` (bf16 bits) as `f32`, exactly.
///
/// # Panics
/// If the slices differ in length.
pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) {
    convert("bf16_to_f32", src, dst, |b| bf16::from_bits(b).to_f32());
}

/// Which 16-bit format a GEMM's operands are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfFormat {
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

impl HalfFormat {
    /// `values` rounded to this format's bits (to nearest, ties to even).
    pub fn narrow(self, values: &[f32]) -> Vec<u16> {
        let mut bits = vec![0; values.len()];
        match self {
            HalfFormat::F16 => f32_to_f16(values, &mut bits),
            HalfFormat::Bf16 => f32_to_bf16(values, &mut bits),
        }
        bits
    }

    /// This format's `bits` as `f32` values (exact).
    pub fn widen(self, bits: &[u16]) -> Vec<f32> {
        let mut out = vec![0.0; bits.len()];
        match self {
            HalfFormat::F16 => f16_to_f32(bits, &mut out),
            HalfFormat::Bf16 => bf16_to_f32(bits, &mut out),
        }
        out
    }
}

/// `C = alpha * A * B + beta * C` with `A` and `B` given as 16-bit bits of `format` and `C`
/// in `f32`, strided as [`gemm`]. Every 16-bit value is exactly an `f32`, so this is the `f32`
/// GEMM on the widened operands: sums are accumulated in `f32`, as the CUDA kernels
/// (`hgemm_f16`, `hgemm_bf16`) do.
///
/// # Panics
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_half(
    format: HalfFormat,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[u16],
    rsa: usize,
    csa: usize,
    b: &[u16],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    let (a, b) = (format.widen(a), format.widen(b));
    gemm(
        m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, c, rsc, csc,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_the_formats_edge_cases() {
        let cases = [
            // (value, f16 bits, bf16 bits)
            (0.0f32, 0x0000u16, 0x0000u16),
            (-0.0, 0x8000, 0x8000),
            (1.0, 0x3c00, 0x3f80),
            (65504.0, 0x7bff, 0x4780),        // bf16 keeps 8 bits: 65536
            (65520.0, 0x7c00, 0x4780),        // halfway to 65536: ties to even, infinity for f16
            (5.960_464_5e-8, 0x0001, 0x3380), // 2^-24, the smallest f16 subnormal
            (2.980_232_2e-8, 0x0000, 0x3300), // 2^-25: a tie, rounds to the even zero
            (f32::INFINITY, 0x7c00, 0x7f80),
            (1.0 + 1.0 / 256.0, 0x3c04, 0x3f80), // bf16 tie (1 + 2^-8) rounds to even 1.0
        ];
        for (value, want_f16, want_bf16) in cases {
            let (mut h, mut b) = ([0u16], [0u16]);
            f32_to_f16(&[value], &mut h);
            f32_to_bf16(&[value], &mut b);
            assert_eq!((h[0], b[0]), (want_f16, want_bf16), "{value:e}");
        }
        let (mut h, mut b) = ([0u16], [0u16]);
        f32_to_f16(&[f32::NAN], &mut h);
        f32_to_bf16(&[f32::NAN], &mut b);
        let (mut hf, mut bf) = ([0.0f32], [0.0f32]);
        f16_to_f32(&h, &mut hf);
        bf16_to_f32(&b, &mut bf);
        assert!(hf[0].is_nan() && bf[0].is_nan());
    }

    #[test]
    fn every_f16_value_survives_the_round_trip() {
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let mut wide = vec![0.0f32; bits.len()];
        f16_to_f32(&bits, &mut wide);
        let mut back = vec![0u16; bits.len()];
        f32_to_f16(&wide, &mut back);
        for (&b, (&w, &r)) in bits.iter().zip(wide.iter().zip(&back)) {
            if w.is_nan() {
                assert!(f16::from_bits(r).is_nan(), "{b:#06x}");
            } else {
                assert_eq!(r, b, "{b:#06x} -> {w:e}");
            }
        }
    }

    #[test]
    fn half_gemm_is_the_f32_gemm_of_the_widened_operands() {
        let (m, n, k) = (5, 7, 9);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.61).cos()).collect();
        for format in [HalfFormat::F16, HalfFormat::Bf16] {
            let (ah, bh) = (format.narrow(&a), format.narrow(&b));
            let (aw, bw) = (format.widen(&ah), format.widen(&bh));
            let mut want = vec![0.0; m * n];
            gemm(m, n, k, 1.0, &aw, k, 1, &bw, n, 1, 0.0, &mut want, n, 1);
            let mut got = vec![f32::NAN; m * n];
            gemm_half(
                format, m, n, k, 1.0, &ah, k, 1, &bh, n, 1, 0.0, &mut got, n, 1,
            );
            assert_eq!(got, want, "{format:?}");
            // And the 16-bit rounding is visible against the f32 product.
            let mut exact = vec![0.0; m * n];
            gemm(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut exact, n, 1);
            assert!(got.iter().zip(&exact).any(|(g, e)| g != e), "{format:?}");
        }
    }
}
