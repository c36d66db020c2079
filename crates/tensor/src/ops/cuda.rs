//! Launch glue the CUDA paths of several ops share: the elementwise, GEMM and row-reduction
//! kernels, and kernel-argument helpers. Each op's own kernels are launched in its file,
//! beside its CPU path; the kernels and their launch rules are in `kernels/*.cu`. The
//! device-buffer helpers (allocation, copies, dense operands, the operands' device) live with
//! the storage and are re-exported here, so an op's CUDA path reaches all it needs as `cuda::`.
//!
//! A failed launch or copy (out of device memory, a driver error) panics with the op's name,
//! as a shape error does on the CPU: ops return tensors, not `Result`s.

use crate::tensor::layout::kernel_layout;
pub(crate) use crate::tensor::storage::{
    check, data, dense, device_of, ints, tensor, upload, zeros,
};
use crate::Tensor;
use strata_kernels::cuda::ops::{binary_code, unary_code};
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};
use strata_kernels::elementwise::{BinaryOp, UnaryOp};
use strata_kernels::strided::{is_contiguous, numel};

/// Panics, naming `op`, when a buffer is too large for the kernels' 32-bit indices.
pub(crate) fn check_sizes(op: &str, sizes: &[usize]) {
    check(
        op,
        strata_kernels::cuda::runtime::check_int_sizes(op, sizes),
    );
}

/// Sizes as `int` kernel arguments, in order.
pub(crate) fn int_args<'a>(values: &[usize]) -> Vec<KernelArg<'a>> {
    values.iter().map(|&v| KernelArg::I32(v as i32)).collect()
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
