//! 16-bit floats: conversions between `f32` and the two half formats, and a GEMM with 16-bit
//! operands and `f32` accumulation. The CPU twins of `kernels/half_precision.cu`.
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
//! ```text
//! narrow:     x [n] f32     -> bits [n] u16        rounded to nearest, ties to even
//! widen:      bits [n] u16  -> x [n] f32           exact
//! gemm_half:  C [m, n] f32  = alpha · A [m, k] 16-bit · B [k, n] 16-bit + beta · C
//! ```
//!
//! Tensors compute in `f32`; these are the kernels a 16-bit storage type is built on. The CUDA
//! launches are in [`cuda`].

pub mod cuda;

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
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
