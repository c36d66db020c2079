//! Launch glue for `kernels/softmax_ce.cu`: the grid, block and argument list of each kernel.
//!
//! The row kernels take one block per row (a grid-stride loop over rows beyond 65,535 blocks),
//! its threads sharing the row's max and sum; the cross-entropy backward is elementwise, one
//! thread per element. Buffers are dense `[rows, cols]` row-major and must belong to
//! `device`; outputs are overwritten.

use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// Threads per block of the row kernels.
const THREADS: u32 = 256;

/// `log_softmax_forward`: the GPU twin of [`super::log_softmax_forward`].
pub fn log_softmax_forward(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    input: &DeviceBuffer<f32>,
    output: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    device.launch(
        "log_softmax_forward",
        Launch::rows(rows, THREADS),
        &mut [
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
            KernelArg::F32s(input),
            KernelArg::F32sMut(output),
        ],
    )
}

/// `log_softmax_backward` from the forward's `output`: the GPU twin of
/// [`super::log_softmax_backward`].
pub fn log_softmax_backward(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    output: &DeviceBuffer<f32>,
    grad_output: &DeviceBuffer<f32>,
    grad_input: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    device.launch(
        "log_softmax_backward",
        Launch::rows(rows, THREADS),
        &mut [
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
            KernelArg::F32s(output),
            KernelArg::F32s(grad_output),
            KernelArg::F32sMut(grad_input),
        ],
    )
}

/// `softmax_cross_entropy_forward`: `probs = softmax(logits)` and each row's loss
/// `-log softmax(logits)[label]` into `row_loss` (`rows` values); the caller reduces them to
/// the mean, as [`super::softmax_cross_entropy_forward`] does on the host.
pub fn softmax_cross_entropy_forward(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    logits: &DeviceBuffer<f32>,
    labels: &DeviceBuffer<u32>,
    probs: &mut DeviceBuffer<f32>,
    row_loss: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    device.launch(
        "softmax_cross_entropy_forward",
        Launch::rows(rows, THREADS),
        &mut [
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
            KernelArg::F32s(logits),
            KernelArg::U32s(labels),
            KernelArg::F32sMut(probs),
            KernelArg::F32sMut(row_loss),
        ],
    )
}

/// `softmax_cross_entropy_backward`: `grad_logits = (probs - onehot(label)) * grad_loss /
/// rows`, the GPU twin of [`super::softmax_cross_entropy_backward`].
pub fn softmax_cross_entropy_backward(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    probs: &DeviceBuffer<f32>,
    labels: &DeviceBuffer<u32>,
    grad_loss: f32,
    grad_logits: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    device.launch(
        "softmax_cross_entropy_backward",
        Launch::elements(rows * cols),
        &mut [
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
            KernelArg::F32s(probs),
            KernelArg::U32s(labels),
            KernelArg::F32(grad_loss),
            KernelArg::F32sMut(grad_logits),
        ],
    )
}
