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
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};
use strata_kernels::elementwise::cuda::{self as elementwise, View};
use strata_kernels::elementwise::{BinaryOp, UnaryOp};
use strata_kernels::strided::{is_contiguous, numel};

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

/// Sizes as `int` kernel arguments, in order.
pub(crate) fn int_args<'a>(values: &[usize]) -> Vec<KernelArg<'a>> {
    values.iter().map(|&v| KernelArg::I32(v as i32)).collect()
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
    let mut out = zeros(device, t.numel());
    let source = t.device_buffer();
    let x = View {
        buffer: &source,
        offset: t.offset(),
        strides: t.strides(),
    };
    check(
        "unary",
        elementwise::unary(device, op, t.shape(), x, &mut out),
    );
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
    let mut out = zeros(device, numel(shape));
    let (ga, gb) = (a.device_buffer(), b.device_buffer());
    let (va, vb) = (
        View {
            buffer: &ga,
            offset: a.offset(),
            strides: sa,
        },
        View {
            buffer: &gb,
            offset: b.offset(),
            strides: sb,
        },
    );
    check(
        "binary",
        elementwise::binary(device, op, shape, va, vb, &mut out),
    );
    out
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
