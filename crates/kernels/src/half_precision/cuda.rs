//! Launch glue for `kernels/half_precision.cu`: the conversions between `f32` and the 16-bit
//! formats (one thread per element, grid-stride) and the GEMM with 16-bit operands and `f32`
//! accumulation (16 x 16 output tiles). Each kernel has an f16 and a bf16 version, picked by
//! [`HalfFormat`]. The caller checks sizes against the kernels' 32-bit indices.

use super::HalfFormat;
use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// The suffix of the kernels for `format`.
fn suffix(format: HalfFormat) -> &'static str {
    match format {
        HalfFormat::F16 => "f16",
        HalfFormat::Bf16 => "bf16",
    }
}

/// `convert_f32_to_f16` / `convert_f32_to_bf16`: the first `n` values of `x` rounded to
/// `format` (to nearest, ties to even, as [`super::f32_to_f16`] and [`super::f32_to_bf16`]).
pub fn narrow(
    device: &CudaDevice,
    format: HalfFormat,
    x: &DeviceBuffer<f32>,
    bits: &mut DeviceBuffer<u16>,
    n: usize,
) -> Result<(), String> {
    device.launch(
        &format!("convert_f32_to_{}", suffix(format)),
        Launch::elements(n),
        &mut [
            KernelArg::F32s(x),
            KernelArg::U16sMut(bits),
            KernelArg::I32(n as i32),
        ],
    )
}

/// `convert_f16_to_f32` / `convert_bf16_to_f32`: the first `n` values of `bits` as `f32`
/// (exact).
pub fn widen(
    device: &CudaDevice,
    format: HalfFormat,
    bits: &DeviceBuffer<u16>,
    out: &mut DeviceBuffer<f32>,
    n: usize,
) -> Result<(), String> {
    device.launch(
        &format!("convert_{}_to_f32", suffix(format)),
        Launch::elements(n),
        &mut [
            KernelArg::U16s(bits),
            KernelArg::F32sMut(out),
            KernelArg::I32(n as i32),
        ],
    )
}

/// A 16-bit GEMM operand: its bits from element 0, and its row and column strides.
#[derive(Clone, Copy, Debug)]
pub struct HalfMatrix<'a> {
    /// The operand's storage.
    pub bits: &'a DeviceBuffer<u16>,
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

/// `hgemm_f16` / `hgemm_bf16`: `C [m, n] = A [m, k] · B [k, n]` with 16-bit operands of
/// `format` and `f32` accumulation into the dense row-major `c` (alpha 1, beta 0), as
/// [`super::gemm_half`] computes it.
///
/// # Panics
/// If `m` needs more than 65,535 row tiles of 16 (the grid's y limit).
pub fn hgemm(
    device: &CudaDevice,
    format: HalfFormat,
    (m, n, k): (usize, usize, usize),
    a: HalfMatrix<'_>,
    b: HalfMatrix<'_>,
    c: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    assert!(
        m.div_ceil(16) <= 65_535,
        "matmul on CUDA: {m} rows need more than 65,535 row tiles of 16"
    );
    let i = |v: usize| KernelArg::I32(v as i32);
    device.launch(
        &format!("hgemm_{}", suffix(format)),
        Launch {
            grid: [n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1],
            block: [16, 16, 1],
        },
        &mut [
            i(m),
            i(n),
            i(k),
            KernelArg::F32(1.0),
            KernelArg::U16s(a.bits),
            i(a.row_stride),
            i(a.col_stride),
            KernelArg::U16s(b.bits),
            i(b.row_stride),
            i(b.col_stride),
            KernelArg::F32(0.0),
            KernelArg::F32sMut(c),
            i(n),
            i(1),
        ],
    )
}
