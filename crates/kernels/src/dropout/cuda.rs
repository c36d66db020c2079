//! Launch glue for `kernels/dropout.cu`: the same Philox stream as [`super::dropout_mask`] and
//! [`super::dropout_forward`], so the device draws the CPU's mask bit for bit.
//!
//! One thread serves a group of four elements (one Philox block), so the grid covers
//! `ceil(n / 4)` groups in blocks of 256, grid-stride beyond 65,535 blocks.

use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// The launch of both kernels over `n` elements: one thread per group of four.
fn groups(n: usize) -> Launch {
    Launch::elements(n.div_ceil(4))
}

/// `dropout_mask`: `mask[i] = 1/(1-p)` where element `first + i` is kept under `seed`, else 0,
/// for `i < n` (the slice from `first` of a larger tensor's mask). The caller checks `n`
/// against the kernels' 32-bit indices.
pub fn dropout_mask(
    device: &CudaDevice,
    seed: u64,
    p: f32,
    first: u64,
    mask: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    device.launch(
        "dropout_mask",
        groups((first % 4) as usize + n),
        &mut [
            KernelArg::U64(seed),
            KernelArg::F32(p),
            KernelArg::U64(first),
            KernelArg::F32sMut(mask),
            KernelArg::I32(n as i32),
        ],
    )
}

/// `dropout_forward`: `y[i] = x[i] * mask[i]` with the mask of [`dropout_mask`], which it
/// also writes, for `i < n`.
pub fn dropout_forward(
    device: &CudaDevice,
    seed: u64,
    p: f32,
    x: &DeviceBuffer<f32>,
    y: &mut DeviceBuffer<f32>,
    mask: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    device.launch(
        "dropout_forward",
        groups(n),
        &mut [
            KernelArg::U64(seed),
            KernelArg::F32(p),
            KernelArg::F32s(x),
            KernelArg::F32sMut(y),
            KernelArg::F32sMut(mask),
            KernelArg::I32(n as i32),
        ],
    )
}
