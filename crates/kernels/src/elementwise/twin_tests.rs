//! `unary_*` and `binary_*` of kernels/elementwise.cu run on the virtual
//! device (NVRTC's PTX, `cuda::sim`, every check on) against their CPU twins in [`crate::elementwise`] and an f64
//! reference, over contiguous, transposed, broadcast and offset views up to 6-D, with grids too
//! small for n (the grid-stride loop) and ragged last blocks. Every guarded buffer is checked
//! for out-of-bounds writes.
//!
//! | op                   | vs f64 reference (device kernel and CPU twin alike)    |
//! |----------------------|--------------------------------------------------------|
//! | every unary, binary  | tol [`REL_TOL`], scale max(|ref|, 1)                   |
//!
//! (f32 libm functions are within a few ulp of the f64 reference.)

use crate::cuda::twin::{self as kernels, Guarded};
use crate::elementwise::cuda::{binary_code, unary_code, ALL_BINARY, ALL_UNARY};
use crate::elementwise::{self, binary_scalar, BinaryOp, UnaryOp};
use crate::strided::{contiguous_strides, numel, Strided};
use crate::test_support::{abs_scale, close, guard, launch, random};
use std::time::Instant;

/// Tolerance of [`compare`]: `|got - ref| <= REL_TOL * max(|ref|, 1)`.
const REL_TOL: f64 = 1e-5;

fn compare(what: &str, got: &[f32], want: &[f64]) {
    close(what, got, want, &abs_scale(want, 1.0), REL_TOL);
}

/// Offset of flat index `i` of `shape` in a view with `strides`.
fn view_offset(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut off = 0;
    for d in (0..shape.len()).rev() {
        off += (i % shape[d]) * strides[d];
        i /= shape[d];
    }
    off
}

fn unary_f64(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Powf(p) => x.powf(p as f64),
        UnaryOp::AddScalar(c) => x + c as f64,
        UnaryOp::MulScalar(c) => x * c as f64,
        UnaryOp::PositiveMask => (x > 0.0) as u8 as f64,
    }
}

fn binary_f64(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        // Comparisons and products of two f32 are exact in f64: take the f32 op.
        _ => binary_scalar(op, a as f32, b as f32) as f64,
    }
}

/// A strided operand: storage, offset and strides viewing `shape`.
struct View {
    data: Vec<f32>,
    offset: usize,
    strides: Vec<usize>,
}

impl View {
    fn strided(&self) -> Strided<'_> {
        Strided::new(&self.data, self.offset, &self.strides)
    }
    fn at(&self, i: usize, shape: &[usize]) -> f32 {
        self.data[self.offset + view_offset(i, shape, &self.strides)]
    }
    fn is_contiguous(&self, shape: &[usize]) -> bool {
        self.offset == 0 && self.strides == contiguous_strides(shape)
    }
}

fn ints(v: &[usize]) -> Guarded<i32> {
    Guarded::new(&v.iter().map(|&s| s as i32).collect::<Vec<_>>(), i32::MIN)
}

fn device_unary(op: UnaryOp, shape: &[usize], x: &View, grid: u32, block: u32) -> Vec<f32> {
    let n = numel(shape);
    let (code, p) = unary_code(op);
    let xs = Guarded::f32(&x.data);
    let out = Guarded::f32(&vec![0.0; n]);
    let contiguous = x.is_contiguous(shape);
    let (dims, strides, off, ndim) = (ints(shape), ints(&x.strides), x.offset, shape.len());
    let name = if contiguous {
        "unary_contiguous"
    } else {
        "unary_strided"
    };
    let (xs, out) = launch(name, (xs, out), move |(xs, out)| {
        // SAFETY: every pointer is a live guarded buffer owned by this closure, of the sizes
        // the kernel reads (n elements, ndim dims).
        unsafe {
            if contiguous {
                kernels::unary_contiguous(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    xs.ptr(),
                    out.mut_ptr(),
                    n as u64,
                    code,
                    p,
                )
            } else {
                kernels::unary_strided(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    xs.ptr(),
                    out.mut_ptr(),
                    n as u64,
                    ndim as i32,
                    dims.ptr(),
                    strides.ptr(),
                    off as u64,
                    code,
                    p,
                )
            }
        }
    });
    guard(&xs, "unary x");
    guard(&out, "unary out");
    out.as_slice().to_vec()
}

fn device_binary(
    op: BinaryOp,
    shape: &[usize],
    a: &View,
    b: &View,
    grid: u32,
    block: u32,
) -> Vec<f32> {
    let n = numel(shape);
    let code = binary_code(op);
    let (ga, gb) = (Guarded::f32(&a.data), Guarded::f32(&b.data));
    let out = Guarded::f32(&vec![0.0; n]);
    let contiguous = a.is_contiguous(shape) && b.is_contiguous(shape);
    let (dims, sa, sb) = (ints(shape), ints(&a.strides), ints(&b.strides));
    let (oa, ob, ndim) = (a.offset as u64, b.offset as u64, shape.len() as i32);
    let name = if contiguous {
        "binary_contiguous"
    } else {
        "binary_strided"
    };
    let out = launch(name, out, move |out| {
        // SAFETY: live guarded buffers owned by this closure, of the sizes the kernel reads.
        unsafe {
            if contiguous {
                kernels::binary_contiguous(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    ga.ptr(),
                    gb.ptr(),
                    out.mut_ptr(),
                    n as u64,
                    code,
                )
            } else {
                kernels::binary_strided(
                    grid,
                    1,
                    1,
                    block,
                    1,
                    1,
                    ga.ptr(),
                    gb.ptr(),
                    out.mut_ptr(),
                    n as u64,
                    ndim,
                    dims.ptr(),
                    sa.ptr(),
                    sb.ptr(),
                    oa,
                    ob,
                    code,
                )
            }
        }
    });
    guard(&out, "binary out");
    out.as_slice().to_vec()
}

fn input_range(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Powf(_) => (0.01, 10.0),
        UnaryOp::Exp => (-20.0, 20.0),
        _ => (-30.0, 30.0),
    }
}

/// Shapes with views: (shape, storage len, offset, strides).
fn unary_views() -> Vec<(Vec<usize>, usize, usize, Vec<usize>)> {
    vec![
        // contiguous, ragged against 128/256-thread blocks
        (vec![1000], 1000, 0, vec![1]),
        (vec![3, 7, 5], 105, 0, vec![35, 5, 1]),
        // transposed [7, 5] of a [5, 7] buffer, offset 3
        (vec![7, 5], 38, 3, vec![1, 7]),
        // broadcast row: [4, 33] from 33 values
        (vec![4, 33], 33, 0, vec![0, 1]),
        // 6-D with a broadcast, a reversed-order and an offset
        (vec![2, 1, 3, 2, 3, 5], 400, 7, vec![180, 0, 1, 90, 3, 18]),
    ]
}

#[test]
fn elementwise_unary_matches_cpu_twin() {
    let start = Instant::now();
    for (vi, (shape, len, offset, strides)) in unary_views().into_iter().enumerate() {
        for (oi, &op) in ALL_UNARY.iter().enumerate() {
            let (lo, hi) = input_range(op);
            let x = View {
                data: random(len, lo, hi, (vi * 100 + oi) as u64),
                offset,
                strides: strides.clone(),
            };
            let n = numel(&shape);
            let want: Vec<f64> = (0..n)
                .map(|i| unary_f64(op, x.at(i, &shape) as f64))
                .collect();
            let mut twin = vec![0.0; n];
            elementwise::unary(op, &shape, x.strided(), &mut twin);
            compare(&format!("CPU twin {op:?} {shape:?}"), &twin, &want);
            // A grid too small for n exercises the grid-stride loop; the last block is ragged.
            for (grid, block) in [(3, 128), (n.div_ceil(96) as u32, 96)] {
                let got = device_unary(op, &shape, &x, grid, block);
                compare(
                    &format!("cuda-sim {op:?} {shape:?} grid {grid} block {block}"),
                    &got,
                    &want,
                );
            }
        }
    }
    println!("unary: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn elementwise_binary_matches_cpu_twin_with_broadcast_and_transposes() {
    let start = Instant::now();
    // (shape, a view, b view) as (len, offset, strides)
    type Spec = (usize, usize, Vec<usize>);
    let cases: Vec<(Vec<usize>, Spec, Spec)> = vec![
        (vec![777], (777, 0, vec![1]), (777, 0, vec![1])),
        // [5, 9] + bias row [9], and a column [5, 1] broadcast
        (vec![5, 9], (45, 0, vec![9, 1]), (9, 0, vec![0, 1])),
        (vec![5, 9], (5, 0, vec![1, 0]), (45, 0, vec![9, 1])),
        // a transposed: [9, 5] viewed as [5, 9]
        (vec![5, 9], (45, 0, vec![1, 5]), (46, 1, vec![9, 1])),
        // 6-D: a permuted with an offset, b broadcast over three dims
        (
            vec![2, 3, 1, 4, 2, 3],
            (160, 4, vec![1, 2, 0, 6, 72, 24]),
            (24, 0, vec![0, 8, 0, 2, 1, 0]),
        ),
    ];
    for (ci, (shape, (la, oa, sa), (lb, ob, sb))) in cases.into_iter().enumerate() {
        for (oi, &op) in ALL_BINARY.iter().enumerate() {
            let seed = (ci * 100 + oi) as u64;
            let a = View {
                data: random(la, -4.0, 4.0, seed),
                offset: oa,
                strides: sa.clone(),
            };
            // Divisors away from zero.
            let (blo, bhi) = if op == BinaryOp::Div {
                (0.5, 4.0)
            } else {
                (-1.0, 1.0)
            };
            let b = View {
                data: random(lb, blo, bhi, seed + 7),
                offset: ob,
                strides: sb.clone(),
            };
            let n = numel(&shape);
            let want: Vec<f64> = (0..n)
                .map(|i| binary_f64(op, a.at(i, &shape) as f64, b.at(i, &shape) as f64))
                .collect();
            let mut twin = vec![0.0; n];
            elementwise::binary(op, &shape, a.strided(), b.strided(), &mut twin);
            compare(&format!("CPU twin {op:?} {shape:?}"), &twin, &want);
            for (grid, block) in [(2, 64), (n.div_ceil(256) as u32, 256)] {
                let got = device_binary(op, &shape, &a, &b, grid, block);
                compare(&format!("cuda-sim {op:?} {shape:?} case {ci}"), &got, &want);
            }
        }
    }
    println!("binary: {:.2} s", start.elapsed().as_secs_f64());
}
