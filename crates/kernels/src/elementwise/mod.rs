//! Elementwise kernels over strided, broadcast operands.
//!
//! ```text
//! unary:   x [..] (any strides)                  -> out [..] contiguous,  out[i] = f(x[i])
//! binary:  a [..], b [..] (broadcast to one shape) -> out [..] contiguous,  out[i] = f(a[i], b[i])
//! ```
//!
//! `a` and `b` are [`Strided`] views of the output's shape (broadcasting is a stride of 0, done
//! by the caller) and `out` is contiguous.
//!
//! Ops are named by enums rather than closures so a CUDA twin can be selected by the same value;
//! on the CPU each variant is dispatched once per call into a monomorphised loop.
//!
//! Contiguous operands take a flat loop the compiler vectorises; anything else walks rows with
//! the last stride. Large outputs are split over rayon in fixed-size chunks: each element is
//! computed independently, so the result never depends on the thread count.
//!
//! Reading order: this file (the ops and the CPU loops), then `kernels/elementwise.cu` and its
//! launch glue in [`cuda`].

pub mod cuda;

use crate::simd::widest;
use crate::strided::{for_each_row, numel, Strided};
use rayon::prelude::*;

/// Outputs smaller than this run on the calling thread: splitting costs more than it saves.
const PARALLEL_THRESHOLD: usize = 1 << 16;
/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// A function of one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `x` (a strided copy: this is how views become contiguous).
    Identity,
    /// `-x`.
    Neg,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root (NaN for negative `x`).
    Sqrt,
    /// `max(x, 0)`.
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// `1 / (1 + e^-x)`, computed without overflow for large |x|.
    Sigmoid,
    /// `x^p`.
    Powf(f32),
    /// `x + c`.
    AddScalar(f32),
    /// `x * c`.
    MulScalar(f32),
    /// `1` where `x > 0`, else `0`.
    PositiveMask,
}

/// A function of two values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a` where `b > 0`, else 0: the ReLU backward with `a = dy`, `b = x`.
    ReluBackward,
    /// `a * (1 - b²)`: the tanh backward with `a = dy`, `b = tanh(x)`.
    TanhBackward,
    /// `a * b * (1 - b)`: the sigmoid backward with `a = dy`, `b = sigmoid(x)`.
    SigmoidBackward,
}

impl UnaryOp {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Identity => x,
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Tanh => tanh_f32(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Powf(p) => x.powf(p),
            UnaryOp::AddScalar(c) => x + c,
            UnaryOp::MulScalar(c) => x * c,
            UnaryOp::PositiveMask => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

impl BinaryOp {
    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::ReluBackward => {
                if b > 0.0 {
                    a
                } else {
                    0.0
                }
            }
            BinaryOp::TanhBackward => a * (1.0 - b * b),
            BinaryOp::SigmoidBackward => a * b * (1.0 - b),
        }
    }
}

/// `eˣ` in f32 to within about one ulp, written without calls or branches so loops over it
/// vectorise (libm's `expf` is a scalar call). `x = n·ln2 + r` with |r| ≤ ln2/2, then
/// `eˣ = 2ⁿ·e^r` with e^r from its degree-7 Taylor polynomial (truncation below 1e-8).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Below -87 the result is subnormal, above 88 it overflows: clamp to keep 2ⁿ representable.
    let x_unclamped = x;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5·2²³: unlike `f32::round`, which is a
    // libm call on baseline x86-64, this stays a vector add, so the loop vectorises.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // `shifted` lies in [2²³, 2²⁴), where the ulp is 1, so its low mantissa bits hold n: the
    // biased exponent of 2ⁿ comes from integer arithmetic on the bits. (`n as i32` is a
    // saturating conversion that LLVM leaves scalar, one lane at a time.)
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUNDER.to_bits())
        .wrapping_add(127);
    let e = f32::from_bits(biased << 23) * p;
    // Below the clamp the true value is under 1.7e-38: flush it to zero, as GPUs do.
    if x_unclamped < -87.0 {
        0.0
    } else {
        e
    }
}

/// `tanh x` in f32 to within a few ulp, vectorisable like [`exp_f32`]. Near zero the odd Taylor
/// series (|x| < 0.3, error below 1e-8); elsewhere (1 - e^-2|x|)/(1 + e^-2|x|), which has no
/// cancellation once |x| ≥ 0.3. NaN stays NaN.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = exp_f32(-2.0 * a);
    let far = (1.0 - t) / (1.0 + t);
    let a2 = a * a;
    let near = a
        * (1.0
            + a2 * (-1.0 / 3.0
                + a2 * (2.0 / 15.0
                    + a2 * (-17.0 / 315.0 + a2 * (62.0 / 2835.0 + a2 * (-1382.0 / 155_925.0))))));
    let r = if a < 0.3 { near } else { far };
    r.copysign(x)
}

/// The logistic function. `e = exp(-|x|)` never overflows, and each side uses the form without
/// cancellation: `1 / (1 + e)` for x ≥ 0, `e / (1 + e)` below. Branch-free, so it vectorises.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `out = op(src)` over `shape`; `out` is contiguous row-major with `numel(shape)` elements.
pub fn unary(op: UnaryOp, shape: &[usize], src: Strided<'_>, out: &mut [f32]) {
    check_out("unary", shape, out.len());
    src.check_bounds("unary", shape);
    // One `match` per call, then a loop specialised for the op.
    macro_rules! run {
        ($($variant:pat => $f:expr),* $(,)?) => {
            match op { $($variant => map1(shape, src, out, $f)),* }
        };
    }
    run!(
        UnaryOp::Identity => |x| x,
        UnaryOp::Neg => |x| -x,
        UnaryOp::Exp => f32::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Relu => |x| UnaryOp::Relu.apply(x),
        UnaryOp::Tanh => tanh_f32,
        UnaryOp::Sigmoid => sigmoid,
        UnaryOp::Powf(p) => move |x: f32| x.powf(p),
        UnaryOp::AddScalar(c) => move |x| x + c,
        UnaryOp::MulScalar(c) => move |x| x * c,
        UnaryOp::PositiveMask => |x| UnaryOp::PositiveMask.apply(x),
    );
}

/// `out = op(a, b)` over `shape`; both operands are views of exactly `shape` (already broadcast).
pub fn binary(op: BinaryOp, shape: &[usize], a: Strided<'_>, b: Strided<'_>, out: &mut [f32]) {
    check_out("binary", shape, out.len());
    a.check_bounds("binary (lhs)", shape);
    b.check_bounds("binary (rhs)", shape);
    macro_rules! run {
        ($($variant:path),* $(,)?) => {
            match op { $($variant => map2(shape, a, b, out, |x, y| $variant.apply(x, y))),* }
        };
    }
    run!(
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::ReluBackward,
        BinaryOp::TanhBackward,
        BinaryOp::SigmoidBackward,
    );
}

/// Plain scalar reference used by tests and the CUDA twins: the op applied to one value.
pub fn unary_scalar(op: UnaryOp, x: f32) -> f32 {
    op.apply(x)
}

/// Plain scalar reference for a binary op.
pub fn binary_scalar(op: BinaryOp, a: f32, b: f32) -> f32 {
    op.apply(a, b)
}

fn check_out(op: &str, shape: &[usize], out_len: usize) {
    assert_eq!(
        out_len,
        numel(shape),
        "{op}: output has {out_len} elements but shape {shape:?} needs {}",
        numel(shape)
    );
}

fn map1(shape: &[usize], src: Strided<'_>, out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let n = out.len();
    if n == 0 {
        return;
    }
    if src.is_contiguous(shape) {
        let src = &src.data[src.offset..src.offset + n];
        let body = |(o, s): (&mut [f32], &[f32])| {
            widest(|| {
                for (o, &s) in o.iter_mut().zip(s) {
                    *o = f(s);
                }
            })
        };
        if n >= PARALLEL_THRESHOLD {
            out.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(body);
        } else {
            body((out, src));
        }
        return;
    }
    let row_len = *shape.last().unwrap_or(&1);
    let last_stride = *src.strides.last().unwrap_or(&0);
    let run_rows = |first_row: usize, rows: &mut [f32]| {
        let count = rows.len() / row_len;
        for_each_row(
            shape,
            [src.strides],
            [src.offset],
            first_row,
            count,
            |r, [start]| {
                let o = &mut rows[(r - first_row) * row_len..(r - first_row + 1) * row_len];
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(src.data[start + j * last_stride]);
                }
            },
        );
    };
    split_rows(n, row_len, out, run_rows);
}

fn map2(
    shape: &[usize],
    a: Strided<'_>,
    b: Strided<'_>,
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    if a.is_contiguous(shape) && b.is_contiguous(shape) {
        let a = &a.data[a.offset..a.offset + n];
        let b = &b.data[b.offset..b.offset + n];
        let body = |((o, a), b): ((&mut [f32], &[f32]), &[f32])| {
            widest(|| {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = f(a, b);
                }
            })
        };
        if n >= PARALLEL_THRESHOLD {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .zip(b.par_chunks(CHUNK))
                .for_each(body);
        } else {
            body(((out, a), b));
        }
        return;
    }
    // One operand contiguous, the other one block repeated along the leading dimensions (a
    // bias row added to a batch, a scalar): expand the block once into a buffer a few hundred
    // floats long and run flat loops against it. Rows of 5 would otherwise cost a call each.
    let (ka, kb) = (repeated_block(shape, &a), repeated_block(shape, &b));
    if let (Some(ka), Some(kb)) = (ka, kb) {
        if ka == n || kb == n {
            let (flat, rep, block, flat_is_a) = if ka == n {
                (&a.data[a.offset..a.offset + n], &b, kb, true)
            } else {
                (&b.data[b.offset..b.offset + n], &a, ka, false)
            };
            let period = block * (REPEAT_LEN / block).max(1);
            let repeated: Vec<f32> = rep.data[rep.offset..rep.offset + block]
                .iter()
                .copied()
                .cycle()
                .take(period)
                .collect();
            let body = |(o, x): (&mut [f32], &[f32])| {
                widest(|| {
                    for (o, x) in o.chunks_mut(period).zip(x.chunks(period)) {
                        if flat_is_a {
                            for ((o, &x), &y) in o.iter_mut().zip(x).zip(&repeated) {
                                *o = f(x, y);
                            }
                        } else {
                            for ((o, &y), &x) in o.iter_mut().zip(x).zip(&repeated) {
                                *o = f(x, y);
                            }
                        }
                    }
                })
            };
            if n >= PARALLEL_THRESHOLD {
                // Whole periods per task, so every task starts at the block's first element.
                let chunk = CHUNK.div_ceil(period) * period;
                out.par_chunks_mut(chunk)
                    .zip(flat.par_chunks(chunk))
                    .for_each(body);
            } else {
                body((out, flat));
            }
            return;
        }
    }
    let row_len = *shape.last().unwrap_or(&1);
    let sa = *a.strides.last().unwrap_or(&0);
    let sb = *b.strides.last().unwrap_or(&0);
    let run_rows = |first_row: usize, rows: &mut [f32]| {
        let count = rows.len() / row_len;
        for_each_row(
            shape,
            [a.strides, b.strides],
            [a.offset, b.offset],
            first_row,
            count,
            |r, [start_a, start_b]| {
                let o = &mut rows[(r - first_row) * row_len..(r - first_row + 1) * row_len];
                // The common broadcast cases (a row of `b` repeated, or one value of `b` per
                // row) get slice loops the compiler vectorises; anything else walks strides.
                match (sa, sb) {
                    (1, 1) => {
                        let (ra, rb) = (
                            &a.data[start_a..start_a + row_len],
                            &b.data[start_b..start_b + row_len],
                        );
                        for ((o, &x), &y) in o.iter_mut().zip(ra).zip(rb) {
                            *o = f(x, y);
                        }
                    }
                    (1, 0) => {
                        let (ra, y) = (&a.data[start_a..start_a + row_len], b.data[start_b]);
                        for (o, &x) in o.iter_mut().zip(ra) {
                            *o = f(x, y);
                        }
                    }
                    _ => {
                        for (j, o) in o.iter_mut().enumerate() {
                            *o = f(a.data[start_a + j * sa], b.data[start_b + j * sb]);
                        }
                    }
                }
            },
        );
    };
    split_rows(n, row_len, out, run_rows);
}

/// Length of the expanded block in the repeated-operand path of [`map2`].
const REPEAT_LEN: usize = 512;

/// When `x` is one contiguous block (the trailing dimensions, row-major) repeated for every
/// index of the leading dimensions (stride 0 there), the block's length: `numel(shape)` for a
/// contiguous operand, 1 for a broadcast scalar, the row length for a broadcast row.
fn repeated_block(shape: &[usize], x: &Strided<'_>) -> Option<usize> {
    let mut block = 1;
    let mut d = shape.len();
    while d > 0 && (shape[d - 1] == 1 || x.strides[d - 1] == block) {
        block *= shape[d - 1];
        d -= 1;
    }
    let leading_repeat = shape[..d]
        .iter()
        .zip(&x.strides[..d])
        .all(|(&len, &stride)| len == 1 || stride == 0);
    (leading_repeat && block > 0).then_some(block)
}

/// Runs `run_rows(first_row, rows_slice)` over blocks of whole rows, in parallel when large.
fn split_rows(
    n: usize,
    row_len: usize,
    out: &mut [f32],
    run_rows: impl Fn(usize, &mut [f32]) + Sync,
) {
    if row_len == 0 {
        return;
    }
    if n >= PARALLEL_THRESHOLD {
        let rows_per_task = CHUNK.div_ceil(row_len).max(1);
        out.par_chunks_mut(rows_per_task * row_len)
            .enumerate()
            .for_each(|(t, rows)| run_rows(t * rows_per_task, rows));
    } else {
        run_rows(0, out);
    }
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
