//! Launch glue for `kernels/batch_norm.cu`: the grid, block and argument list of each kernel.
//!
//! The statistics and the backward sums take one block per channel (a grid-stride loop over
//! channels beyond 65,535 blocks), its threads splitting the channel's `n * spatial` elements.
//! The kernels take γ and β as buffers of `c` values read only when `has_affine` is set, so a
//! caller without them passes any such buffer (the tensor crate passes the identities, 1 and
//! 0). Every buffer must belong to `device`; outputs are overwritten.

use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// Threads per block of the per-channel kernels.
const THREADS: u32 = 256;

/// `batch_norm_forward_train` over `[n, c, spatial]`: the GPU twin of
/// [`super::batch_norm_forward_train`]. `stats` receives `save_mean`, `save_invstd` and
/// `batch_var` (`c` values each).
pub fn forward_train(
    device: &CudaDevice,
    (n, c, spatial): (usize, usize, usize),
    eps: f32,
    input: &DeviceBuffer<f32>,
    (gamma, beta, has_affine): (&DeviceBuffer<f32>, &DeviceBuffer<f32>, bool),
    output: &mut DeviceBuffer<f32>,
    [save_mean, save_invstd, batch_var]: [&mut DeviceBuffer<f32>; 3],
) -> Result<(), String> {
    device.launch(
        "batch_norm_forward_train",
        Launch::rows(c, THREADS),
        &mut [
            KernelArg::I32(n as i32),
            KernelArg::I32(c as i32),
            KernelArg::I32(spatial as i32),
            KernelArg::F32(eps),
            KernelArg::F32s(input),
            KernelArg::F32s(gamma),
            KernelArg::F32s(beta),
            KernelArg::I32(has_affine as i32),
            KernelArg::F32sMut(output),
            KernelArg::F32sMut(save_mean),
            KernelArg::F32sMut(save_invstd),
            KernelArg::F32sMut(batch_var),
        ],
    )
}

/// `batch_norm_backward` over `[n, c, spatial]`: the GPU twin of [`super::batch_norm_backward`]
/// from the statistics [`forward_train`] saved. Overwrites `grad_input`; writes `grad_gamma`
/// and `grad_beta` (`c` values each) only when `want_grad_affine`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    device: &CudaDevice,
    (n, c, spatial): (usize, usize, usize),
    input: &DeviceBuffer<f32>,
    (gamma, has_affine): (&DeviceBuffer<f32>, bool),
    [save_mean, save_invstd]: [&DeviceBuffer<f32>; 2],
    grad_output: &DeviceBuffer<f32>,
    grad_input: &mut DeviceBuffer<f32>,
    (grad_gamma, grad_beta, want_grad_affine): (
        &mut DeviceBuffer<f32>,
        &mut DeviceBuffer<f32>,
        bool,
    ),
) -> Result<(), String> {
    device.launch(
        "batch_norm_backward",
        Launch::rows(c, THREADS),
        &mut [
            KernelArg::I32(n as i32),
            KernelArg::I32(c as i32),
            KernelArg::I32(spatial as i32),
            KernelArg::F32s(input),
            KernelArg::F32s(gamma),
            KernelArg::I32(has_affine as i32),
            KernelArg::F32s(save_mean),
            KernelArg::F32s(save_invstd),
            KernelArg::F32s(grad_output),
            KernelArg::F32sMut(grad_input),
            KernelArg::F32sMut(grad_gamma),
            KernelArg::F32sMut(grad_beta),
            KernelArg::I32(want_grad_affine as i32),
        ],
    )
}
