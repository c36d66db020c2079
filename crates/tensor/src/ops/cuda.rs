//! What the CUDA paths of the ops share: finding the device of an op's operands, moving
//! values, dense operands, and launchers for the elementwise, GEMM and row-reduction kernels
//! that several ops build on. Each op's own kernels are launched in its file, beside its CPU
//! path; the kernels and their launch rules are in `kernels/*.cu`.
//!
//! A failed launch or copy (out of device memory, a driver error) panics with the op's name,
//! as a shape error does on the CPU: ops return tensors, not `Result`s.

use crate::tensor::{Data, DeviceRead};
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::cuda::ops::{binary_code, unary_code};
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};
use strata_kernels::elementwise::{BinaryOp, UnaryOp};
use strata_kernels::strided::{is_contiguous, numel};

/// The elementwise kernels' limit on dimensions (`MAX_DIMS` in kernels/elementwise.cu).
const MAX_DIMS: usize = 6;

/// The CUDA device all of `tensors` live on, or `None` when they are all on the host. Panics,
/// naming `op`, when they are on different devices.
pub(crate) fn device_of(op: &str, tensors: &[&Tensor]) -> Option<Arc<CudaDevice>> {
    let first = tensors[0].device();
    if let Some(other) = tensors.iter().find(|t| t.device() != first) {
        panic!(
            "{op}: operands are on {first} and {}; move them to one device with .to(device)",
            other.device()
        );
    }
    tensors[0].cuda()
}

/// Panics, naming `op`, when a buffer is too large for the kernels' 32-bit indices.
pub(crate) fn check_sizes(op: &str, sizes: &[usize]) {
    check(
        op,
        strata_kernels::cuda::runtime::check_int_sizes(op, sizes),
    );
}

/// Unwraps a device result, panicking with the op's name and the driver's message.
pub(crate) fn check<T>(op: &str, result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// A contiguous host tensor copied onto `device`.
pub(crate) fn upload(device: &Arc<CudaDevice>, host: &Tensor) -> Tensor {
    let buffer = host.with_contiguous(|values| check("upload", device.upload(values)));
    Tensor::from_data(Data::Cuda(device.clone(), buffer), host.shape())
}

/// A device tensor's elements in row-major order, on the host.
pub(crate) fn download(t: &Tensor) -> Vec<f32> {
    let device = t.cuda().expect("download: a host tensor");
    let dense = dense(&device, t);
    let mut values = check("download", device.download(&dense));
    values.truncate(t.numel());
    values
}

/// A new tensor of `shape` over `buffer`, on `device`.
pub(crate) fn tensor(
    device: &Arc<CudaDevice>,
    buffer: DeviceBuffer<f32>,
    shape: &[usize],
) -> Tensor {
    Tensor::from_data(Data::Cuda(device.clone(), buffer), shape)
}

/// `Data` for `Tensor::from_op`.
pub(crate) fn data(device: &Arc<CudaDevice>, buffer: DeviceBuffer<f32>) -> Data {
    Data::Cuda(device.clone(), buffer)
}

/// A new device buffer of `len` zeros (every output is allocated zeroed: kernels that
/// accumulate rely on it, and the others overwrite it).
pub(crate) fn zeros(device: &CudaDevice, len: usize) -> DeviceBuffer<f32> {
    check("alloc", device.zeros(len))
}

/// Small index arrays (shapes, strides) as a device buffer of ints.
pub(crate) fn ints(device: &CudaDevice, values: &[usize]) -> DeviceBuffer<i32> {
    let ints: Vec<i32> = values
        .iter()
        .map(|&v| i32::try_from(v).expect("a shape or stride beyond 2^31 on CUDA"))
        .collect();
    check("upload", device.upload(&ints))
}

/// A tensor's elements as one dense row-major buffer starting at element 0: the tensor's own
/// buffer when it already is one, else a copy.
pub(crate) enum Dense<'a> {
    Borrowed(DeviceRead<'a>),
    Owned(DeviceBuffer<f32>),
}

impl std::ops::Deref for Dense<'_> {
    type Target = DeviceBuffer<f32>;
    fn deref(&self) -> &DeviceBuffer<f32> {
        match self {
            Dense::Borrowed(guard) => guard,
            Dense::Owned(buffer) => buffer,
        }
    }
}

pub(crate) fn dense<'a>(device: &CudaDevice, t: &'a Tensor) -> Dense<'a> {
    if t.offset() == 0 && is_contiguous(t.shape(), t.strides()) {
        Dense::Borrowed(t.device_buffer())
    } else {
        Dense::Owned(map(device, t, UnaryOp::Identity))
    }
}

/// `out[i] = op(t[i])` over `t`'s shape, row-major, by `unary_contiguous` or `unary_strided`.
pub(crate) fn map(device: &CudaDevice, t: &Tensor, op: UnaryOp) -> DeviceBuffer<f32> {
    let n = t.numel();
    let mut out = zeros(device, n);
    let (code, p) = unary_code(op);
    let source = t.device_buffer();
    let result = if t.offset() == 0 && is_contiguous(t.shape(), t.strides()) {
        device.launch(
            "unary_contiguous",
            Launch::elements(n),
            &mut [
                KernelArg::F32s(&source),
                KernelArg::F32sMut(&mut out),
                KernelArg::U64(n as u64),
                KernelArg::I32(code),
                KernelArg::F32(p),
            ],
        )
    } else {
        let (shape, strides) = kernel_layout("unary", t.shape(), &[t.strides()]);
        let (shape, strides) = (ints(device, &shape), ints(device, &strides[0]));
        device.launch(
            "unary_strided",
            Launch::elements(n),
            &mut [
                KernelArg::F32s(&source),
                KernelArg::F32sMut(&mut out),
                KernelArg::U64(n as u64),
                KernelArg::I32(shape.len() as i32),
                KernelArg::I32s(&shape),
                KernelArg::I32s(&strides),
                KernelArg::U64(t.offset() as u64),
                KernelArg::I32(code),
                KernelArg::F32(p),
            ],
        )
    };
    check("unary", result);
    out
}

/// `out[i] = op(a[view_a(i)], b[view_b(i)])` over `shape`, where `sa`/`sb` are the operands'
/// strides broadcast to `shape`.
pub(crate) fn binary(
    device: &CudaDevice,
    shape: &[usize],
    (a, sa): (&Tensor, &[usize]),
    (b, sb): (&Tensor, &[usize]),
    op: BinaryOp,
) -> DeviceBuffer<f32> {
    let n = numel(shape);
    let mut out = zeros(device, n);
    let code = binary_code(op);
    let dense_a = a.offset() == 0 && is_contiguous(shape, sa);
    let dense_b = b.offset() == 0 && is_contiguous(shape, sb);
    let (ga, gb) = (a.device_buffer(), b.device_buffer());
    let result = if dense_a && dense_b {
        device.launch(
            "binary_contiguous",
            Launch::elements(n),
            &mut [
                KernelArg::F32s(&ga),
                KernelArg::F32s(&gb),
                KernelArg::F32sMut(&mut out),
                KernelArg::U64(n as u64),
                KernelArg::I32(code),
            ],
        )
    } else {
        let (kshape, kstrides) = kernel_layout("binary", shape, &[sa, sb]);
        let dims = kshape.len() as i32;
        let (kshape, ka, kb) = (
            ints(device, &kshape),
            ints(device, &kstrides[0]),
            ints(device, &kstrides[1]),
        );
        device.launch(
            "binary_strided",
            Launch::elements(n),
            &mut [
                KernelArg::F32s(&ga),
                KernelArg::F32s(&gb),
                KernelArg::F32sMut(&mut out),
                KernelArg::U64(n as u64),
                KernelArg::I32(dims),
                KernelArg::I32s(&kshape),
                KernelArg::I32s(&ka),
                KernelArg::I32s(&kb),
                KernelArg::U64(a.offset() as u64),
                KernelArg::U64(b.offset() as u64),
                KernelArg::I32(code),
            ],
        )
    };
    check("binary", result);
    out
}

/// The shape and operand strides as the strided kernels take them: dimensions of size 1
/// dropped and neighbours that step alike in every operand merged, so any view of up to
/// `MAX_DIMS` effective dimensions fits; a scalar becomes one dimension of size 1.
fn kernel_layout(op: &str, shape: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
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

/// `out[r] = Σ_c x[r, c]` for a dense `[rows, cols]` buffer (`reduce_sum_rows`).
pub(crate) fn sum_rows(
    device: &CudaDevice,
    x: &DeviceBuffer<f32>,
    rows: usize,
    cols: usize,
) -> DeviceBuffer<f32> {
    let mut out = zeros(device, rows);
    if cols > 0 {
        check(
            "sum",
            device.launch(
                "reduce_sum_rows",
                Launch::rows(rows, 256),
                &mut [
                    KernelArg::F32s(x),
                    KernelArg::F32sMut(&mut out),
                    KernelArg::I32(rows as i32),
                    KernelArg::I32(cols as i32),
                ],
            ),
        );
    }
    out
}

/// One operand of [`gemm`]: a buffer, the element where the first matrix starts, and its
/// batch, row and column strides.
pub(crate) struct Operand<'a> {
    pub buffer: &'a DeviceBuffer<f32>,
    pub batch_stride: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    pub(crate) fn new(
        buffer: &'a DeviceBuffer<f32>,
        batch_stride: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Operand<'a> {
        Operand {
            buffer,
            batch_stride,
            row_stride,
            col_stride,
        }
    }
}

/// `C_b = A_b · B_b` for `b < batch`, into a new dense `[batch, m, n]` buffer, by
/// `sgemm_register_blocked` (one matrix) or `sgemm_batched`. The operands start at element 0
/// of their buffers (callers pass dense buffers or views at offset 0).
pub(crate) fn gemm(
    device: &CudaDevice,
    (batch, m, n, k): (usize, usize, usize, usize),
    a: Operand,
    b: Operand,
) -> DeviceBuffer<f32> {
    let mut c = zeros(device, batch * m * n);
    if m == 0 || n == 0 || batch == 0 {
        return c;
    }
    let fits = |x: usize| i32::try_from(x).is_ok();
    assert!(
        [a.buffer.len(), b.buffer.len(), batch * m * n]
            .into_iter()
            .all(fits),
        "matmul on CUDA: an operand has 2^31 elements or more (the kernels index with int)"
    );
    assert!(
        m.div_ceil(128) <= 65_535,
        "matmul on CUDA: {m} rows need more than 65,535 row tiles of 128 (the grid's y limit)"
    );
    let i = |x: usize| KernelArg::I32(x as i32);
    let result = if batch == 1 {
        let blocks = |len: usize| len.div_ceil(128) as u32;
        device.launch(
            "sgemm_register_blocked",
            Launch {
                grid: [blocks(n), blocks(m), 1],
                block: [256, 1, 1],
            },
            &mut [
                i(m),
                i(n),
                i(k),
                KernelArg::F32(1.0),
                KernelArg::F32s(a.buffer),
                i(a.row_stride),
                i(a.col_stride),
                KernelArg::F32s(b.buffer),
                i(b.row_stride),
                i(b.col_stride),
                KernelArg::F32(0.0),
                KernelArg::F32sMut(&mut c),
                i(n),
                i(1),
            ],
        )
    } else {
        let blocks = |len: usize| len.div_ceil(128) as u32;
        assert!(
            batch <= 65_535,
            "matmul on CUDA: a batch of {batch} matrices exceeds 65,535"
        );
        device.launch(
            "sgemm_batched",
            Launch {
                grid: [blocks(n), blocks(m), batch as u32],
                block: [256, 1, 1],
            },
            &mut [
                i(batch),
                i(m),
                i(n),
                i(k),
                KernelArg::F32(1.0),
                KernelArg::F32s(a.buffer),
                i(a.batch_stride),
                i(a.row_stride),
                i(a.col_stride),
                KernelArg::F32s(b.buffer),
                i(b.batch_stride),
                i(b.row_stride),
                i(b.col_stride),
                KernelArg::F32(0.0),
                KernelArg::F32sMut(&mut c),
                i(m * n),
                i(n),
                i(1),
            ],
        )
    };
    check("matmul", result);
    c
}
