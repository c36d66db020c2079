//! Launch glue for `kernels/elementwise.cu`: the integer op codes the kernels share with
//! [`UnaryOp`] and [`BinaryOp`], and one function per kernel that lays out its arguments.
//!
//! The CUDA twin of each op is selected by the same enum value as the CPU loop; a unit test
//! checks the codes against the `#define UNARY_*` / `BINARY_*` lines of the kernel source.
//! Operands are views of a device buffer (offset, shape, strides in elements, broadcasting as
//! stride 0); outputs are contiguous row-major buffers of `numel(shape)` elements.

use super::{BinaryOp, UnaryOp};
use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};
use crate::strided::{is_contiguous, numel};

/// The strided kernels' limit on dimensions (`MAX_DIMS` in kernels/elementwise.cu).
pub const MAX_DIMS: usize = 6;

/// `(op code, scalar)` for the `op`/`p` parameters of the unary kernels.
pub fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Identity => (0, 0.0),
        UnaryOp::Neg => (1, 0.0),
        UnaryOp::Exp => (2, 0.0),
        UnaryOp::Log => (3, 0.0),
        UnaryOp::Sqrt => (4, 0.0),
        UnaryOp::Relu => (5, 0.0),
        UnaryOp::Tanh => (6, 0.0),
        UnaryOp::Sigmoid => (7, 0.0),
        UnaryOp::Powf(p) => (8, p),
        UnaryOp::AddScalar(c) => (9, c),
        UnaryOp::MulScalar(c) => (10, c),
        UnaryOp::PositiveMask => (11, 0.0),
    }
}

/// The `op` parameter of the binary kernels.
pub fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::ReluBackward => 4,
        BinaryOp::TanhBackward => 5,
        BinaryOp::SigmoidBackward => 6,
    }
}

/// Every unary op once (scalar-carrying ops with a sample scalar), for tests.
pub const ALL_UNARY: &[UnaryOp] = &[
    UnaryOp::Identity,
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Relu,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Powf(1.5),
    UnaryOp::AddScalar(0.25),
    UnaryOp::MulScalar(-3.0),
    UnaryOp::PositiveMask,
];

/// Every binary op once, for tests.
pub const ALL_BINARY: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::ReluBackward,
    BinaryOp::TanhBackward,
    BinaryOp::SigmoidBackward,
];

/// A view of a device buffer: the element where it starts and its strides over a shape the
/// caller gives alongside.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The buffer the view reads.
    pub buffer: &'a DeviceBuffer<f32>,
    /// Index of the view's first element in `buffer`.
    pub offset: usize,
    /// Stride of each dimension, in elements (0 where broadcast).
    pub strides: &'a [usize],
}

/// `out[i] = op(x[view(i)])` over `shape`: `unary_contiguous` when the view is dense from
/// element 0, else `unary_strided`.
pub fn unary(
    device: &CudaDevice,
    op: UnaryOp,
    shape: &[usize],
    x: View<'_>,
    out: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    if x.offset == 0 && is_contiguous(shape, x.strides) {
        unary_contiguous(device, op, x.buffer, out, numel(shape))
    } else {
        unary_strided(device, op, shape, x, out)
    }
}

/// `out[i] = op(a[view_a(i)], b[view_b(i)])` over `shape`: `binary_contiguous` when both views
/// are dense from element 0, else `binary_strided`.
pub fn binary(
    device: &CudaDevice,
    op: BinaryOp,
    shape: &[usize],
    a: View<'_>,
    b: View<'_>,
    out: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let dense_a = a.offset == 0 && is_contiguous(shape, a.strides);
    let dense_b = b.offset == 0 && is_contiguous(shape, b.strides);
    if dense_a && dense_b {
        binary_contiguous(device, op, a.buffer, b.buffer, out, numel(shape))
    } else {
        binary_strided(device, op, shape, a, b, out)
    }
}

/// `unary_contiguous`: `out[i] = op(x[i])` for `i < n`.
pub fn unary_contiguous(
    device: &CudaDevice,
    op: UnaryOp,
    x: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    let (code, p) = unary_code(op);
    device.launch(
        "unary_contiguous",
        Launch::elements(n),
        &mut [
            KernelArg::F32s(x),
            KernelArg::F32sMut(out),
            KernelArg::U64(n as u64),
            KernelArg::I32(code),
            KernelArg::F32(p),
        ],
    )
}

/// `unary_strided`: `out[i] = op(x[view(i)])` over `shape`, the view's layout merged by
/// [`kernel_layout`] and uploaded as two small int arrays.
pub fn unary_strided(
    device: &CudaDevice,
    op: UnaryOp,
    shape: &[usize],
    x: View<'_>,
    out: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let n = numel(shape);
    let (code, p) = unary_code(op);
    let (kshape, kstrides) = kernel_layout("unary", shape, &[x.strides]);
    let (kshape, kx) = (ints(device, &kshape)?, ints(device, &kstrides[0])?);
    device.launch(
        "unary_strided",
        Launch::elements(n),
        &mut [
            KernelArg::F32s(x.buffer),
            KernelArg::F32sMut(out),
            KernelArg::U64(n as u64),
            KernelArg::I32(kshape.len() as i32),
            KernelArg::I32s(&kshape),
            KernelArg::I32s(&kx),
            KernelArg::U64(x.offset as u64),
            KernelArg::I32(code),
            KernelArg::F32(p),
        ],
    )
}

/// `binary_contiguous`: `out[i] = op(a[i], b[i])` for `i < n`.
pub fn binary_contiguous(
    device: &CudaDevice,
    op: BinaryOp,
    a: &DeviceBuffer<f32>,
    b: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    device.launch(
        "binary_contiguous",
        Launch::elements(n),
        &mut [
            KernelArg::F32s(a),
            KernelArg::F32s(b),
            KernelArg::F32sMut(out),
            KernelArg::U64(n as u64),
            KernelArg::I32(binary_code(op)),
        ],
    )
}

/// `binary_strided`: `out[i] = op(a[view_a(i)], b[view_b(i)])` over `shape`.
pub fn binary_strided(
    device: &CudaDevice,
    op: BinaryOp,
    shape: &[usize],
    a: View<'_>,
    b: View<'_>,
    out: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let n = numel(shape);
    let (kshape, kstrides) = kernel_layout("binary", shape, &[a.strides, b.strides]);
    let dims = kshape.len() as i32;
    let (kshape, ka, kb) = (
        ints(device, &kshape)?,
        ints(device, &kstrides[0])?,
        ints(device, &kstrides[1])?,
    );
    device.launch(
        "binary_strided",
        Launch::elements(n),
        &mut [
            KernelArg::F32s(a.buffer),
            KernelArg::F32s(b.buffer),
            KernelArg::F32sMut(out),
            KernelArg::U64(n as u64),
            KernelArg::I32(dims),
            KernelArg::I32s(&kshape),
            KernelArg::I32s(&ka),
            KernelArg::I32s(&kb),
            KernelArg::U64(a.offset as u64),
            KernelArg::U64(b.offset as u64),
            KernelArg::I32(binary_code(op)),
        ],
    )
}

/// A shape or strides as a device array of ints.
fn ints(device: &CudaDevice, values: &[usize]) -> Result<DeviceBuffer<i32>, String> {
    let ints: Vec<i32> = values
        .iter()
        .map(|&v| i32::try_from(v).expect("a shape or stride beyond 2^31 on CUDA"))
        .collect();
    device.upload(&ints)
}

/// The shape and operand strides as the strided kernels take them: dimensions of size 1
/// dropped and neighbours that step alike in every operand merged, so any view of up to
/// [`MAX_DIMS`] effective dimensions fits; a scalar becomes one dimension of size 1.
///
/// # Panics
/// If more than [`MAX_DIMS`] dimensions remain, naming `op`.
pub fn kernel_layout(
    op: &str,
    shape: &[usize],
    strides: &[&[usize]],
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| *o.last().unwrap() == s[d] * shape[d]);
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for o in out_strides.iter_mut() {
            o.push(0);
        }
    }
    assert!(
        out_shape.len() <= MAX_DIMS,
        "{op}: a view of {} dimensions that do not merge; the CUDA kernels take at most \
         {MAX_DIMS} (shape {shape:?})",
        out_shape.len()
    );
    (out_shape, out_strides)
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::*;

    fn defined(prefix: &str) -> Vec<(String, i32)> {
        let src = crate::cuda::sources::source("elementwise.cu").unwrap();
        src.lines()
            .filter_map(|l| {
                let mut t = l.split_whitespace();
                (t.next()? == "#define").then_some(())?;
                let name = t.next()?;
                let value = t.next()?.parse().ok()?;
                name.starts_with(prefix).then(|| (name.to_string(), value))
            })
            .collect()
    }

    fn screaming(debug: &str) -> String {
        let name = debug.split('(').next().unwrap();
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn codes_match_the_kernel_source() {
        let unary = defined("UNARY_");
        assert_eq!(unary.len(), ALL_UNARY.len(), "{unary:?}");
        for &op in ALL_UNARY {
            let want = format!("UNARY_{}", screaming(&format!("{op:?}")));
            let code = unary_code(op).0;
            assert!(unary.contains(&(want.clone(), code)), "{want} != {code}");
        }
        let binary = defined("BINARY_");
        assert_eq!(binary.len(), ALL_BINARY.len(), "{binary:?}");
        for &op in ALL_BINARY {
            let want = format!("BINARY_{}", screaming(&format!("{op:?}")));
            assert!(binary.contains(&(want.clone(), binary_code(op))), "{want}");
        }
    }

    #[test]
    fn layout_merges_dense_neighbours_and_drops_unit_dimensions() {
        // A [2, 1, 3, 4] row-major tensor beside a broadcast row: the unit dimension goes, the
        // two leading dimensions step alike in both and merge, the row does not.
        let (shape, strides) = kernel_layout("t", &[2, 1, 3, 4], &[&[12, 12, 4, 1], &[0, 0, 0, 1]]);
        assert_eq!(shape, [6, 4]);
        assert_eq!(strides, [vec![4, 1], vec![0, 1]]);
        let (shape, strides) = kernel_layout("t", &[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!((shape, strides), (vec![24], vec![vec![1]]));
        let (shape, strides) = kernel_layout("t", &[], &[&[]]);
        assert_eq!((shape, strides), (vec![1], vec![vec![0]]));
    }
}
