//! Launch glue for `kernels/reduce.cu`: one block per row of a dense `[rows, cols]` buffer (a
//! grid-stride loop over rows beyond 65,535 blocks), its threads splitting the row. The tensor
//! crate moves the reduced axes last and makes the view dense, so every reduction is a row
//! reduction here. Every buffer must belong to `device`.

use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// Threads per block.
const THREADS: u32 = 256;

/// `reduce_sum_rows`: `out[r] = Σ_c x[r, c]` (`rows` values). `out` must hold zeros: with no
/// columns nothing is launched, and zero is the sum.
pub fn sum_rows(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    x: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    if cols == 0 {
        return Ok(());
    }
    device.launch(
        "reduce_sum_rows",
        Launch::rows(rows, THREADS),
        &mut [
            KernelArg::F32s(x),
            KernelArg::F32sMut(out),
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
        ],
    )
}

/// `reduce_max_rows`: `out[r] = max_c x[r, c]` and `argmax[r]` the first `c` attaining it (a
/// NaN wins), as [`super::reduce`] with [`super::ReduceOp::Max`] over the last axis.
pub fn max_rows(
    device: &CudaDevice,
    (rows, cols): (usize, usize),
    x: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
    argmax: &mut DeviceBuffer<u32>,
) -> Result<(), String> {
    device.launch(
        "reduce_max_rows",
        Launch::rows(rows, THREADS),
        &mut [
            KernelArg::F32s(x),
            KernelArg::F32sMut(out),
            KernelArg::U32sMut(argmax),
            KernelArg::I32(rows as i32),
            KernelArg::I32(cols as i32),
        ],
    )
}
