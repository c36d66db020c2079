//! Launch glue the CUDA paths of several ops share: the elementwise, GEMM and row-reduction
//! kernels, and kernel-argument helpers. Each op's own kernels are launched in its file,
//! beside its CPU path; the kernels and their launch rules are in `kernels/*.cu`. The
//! device-buffer helpers (allocation, copies, dense operands, the operands' device) live with
//! the storage and are re-exported here, so an op's CUDA path reaches all it needs as `cuda::`.
//!
//! A failed launch or copy (out of device memory, a driver error) panics with the op's name,
//! as a shape error does on the CPU: ops return tensors, not `Result`s.

pub(crate) use crate::tensor::storage::{check, data, dense, device_of, tensor, upload, zeros};
use crate::Tensor;
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer};
use strata_kernels::elementwise::cuda::{self as elementwise, View};
use strata_kernels::elementwise::{BinaryOp, UnaryOp};
use strata_kernels::strided::numel;

/// Panics, naming `op`, when a buffer is too large for the kernels' 32-bit indices.
pub(crate) fn check_sizes(op: &str, sizes: &[usize]) {
    check(
        op,
        strata_kernels::cuda::runtime::check_int_sizes(op, sizes),
    );
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
    check(
        "sum",
        strata_kernels::reduce::cuda::sum_rows(device, (rows, cols), x, &mut out),
    );
    out
}

/// One operand of [`gemm`]: a buffer and its batch, row and column strides.
pub(crate) use strata_kernels::gemm::cuda::DeviceOperand as Operand;

/// `C_b = A_b · B_b` for `b < batch`, into a new dense `[batch, m, n]` buffer, by
/// `strata_kernels::gemm::cuda::sgemm`. The operands start at element 0 of their buffers
/// (callers pass dense buffers or views at offset 0).
pub(crate) fn gemm(
    device: &CudaDevice,
    shape: (usize, usize, usize, usize),
    a: Operand,
    b: Operand,
) -> DeviceBuffer<f32> {
    let (batch, m, n, _) = shape;
    let mut c = zeros(device, batch * m * n);
    let result = strata_kernels::gemm::cuda::sgemm(device, shape, a, b, &mut c);
    check("matmul on CUDA", result);
    c
}
