//! Launch glue for `kernels/optim.cu`: the fused `sgd_step` and `adam_step` kernels, which
//! apply the CPU twins' expressions ([`super::sgd_step`], [`super::adam_step`]) element by
//! element. One thread per element, blocks of 256, grid-stride beyond 65,535 blocks. The
//! caller checks `n` against the kernels' 32-bit indices.

use super::{adam_scalars, AdamConfig, SgdConfig};
use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// `sgd_step` over the first `n` elements of `param`, `grad` and `momentum_buffer`. With
/// momentum 0 the kernel never touches `momentum_buffer`, so any buffer may stand in for it.
pub fn sgd_step(
    device: &CudaDevice,
    config: &SgdConfig,
    first_step: bool,
    param: &mut DeviceBuffer<f32>,
    grad: &DeviceBuffer<f32>,
    momentum_buffer: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    let c = *config;
    device.launch(
        "sgd_step",
        Launch::elements(n),
        &mut [
            KernelArg::I32(n as i32),
            KernelArg::F32(c.lr),
            KernelArg::F32(c.momentum),
            KernelArg::F32(c.dampening),
            KernelArg::F32(c.weight_decay),
            KernelArg::I32(c.nesterov as i32),
            KernelArg::I32(first_step as i32),
            KernelArg::F32sMut(param),
            KernelArg::F32s(grad),
            KernelArg::F32sMut(momentum_buffer),
        ],
    )
}

/// `adam_step` number `step` (counting from 1) over the first `n` elements of the buffers.
/// The bias corrections depend only on the step number, so they are computed here, exactly
/// as the CPU twin computes them, and passed in.
#[allow(clippy::too_many_arguments)] // the kernel's four buffers beside its configuration
pub fn adam_step(
    device: &CudaDevice,
    config: &AdamConfig,
    step: u64,
    param: &mut DeviceBuffer<f32>,
    grad: &DeviceBuffer<f32>,
    exp_avg: &mut DeviceBuffer<f32>,
    exp_avg_sq: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    let c = *config;
    let (step_size, bias2_sqrt) = adam_scalars(&c, step);
    device.launch(
        "adam_step",
        Launch::elements(n),
        &mut [
            KernelArg::I32(n as i32),
            KernelArg::F32(c.lr),
            KernelArg::F32(c.beta1),
            KernelArg::F32(c.beta2),
            KernelArg::F32(c.eps),
            KernelArg::F32(c.weight_decay),
            KernelArg::I32(c.decoupled_weight_decay as i32),
            KernelArg::F32(step_size),
            KernelArg::F32(bias2_sqrt),
            KernelArg::F32sMut(param),
            KernelArg::F32s(grad),
            KernelArg::F32sMut(exp_avg),
            KernelArg::F32sMut(exp_avg_sq),
        ],
    )
}
