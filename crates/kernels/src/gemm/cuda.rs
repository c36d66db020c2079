//! Launch glue for `kernels/gemm.cu`: the rungs of its GEMM ladder (naive, tiled,
//! register-blocked) with the launch each kernel's comment prescribes, and [`sgemm`], the
//! strided (optionally batched) product the tensor crate's CUDA matmul and convolution run.

use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// The rungs of the GEMM ladder in `kernels/gemm.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// One thread per element of C, operands from global memory.
    Naive,
    /// 32x32 tiles staged in shared memory.
    Tiled,
    /// 128x128 tiles, each thread an 8x8 block of C in registers (the default).
    RegisterBlocked,
}

impl GemmKernel {
    /// Every rung, slowest first.
    pub const LADDER: [GemmKernel; 3] = [
        GemmKernel::Naive,
        GemmKernel::Tiled,
        GemmKernel::RegisterBlocked,
    ];

    /// The `__global__` function's name.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Naive => "sgemm_naive",
            GemmKernel::Tiled => "sgemm_tiled",
            GemmKernel::RegisterBlocked => "sgemm_register_blocked",
        }
    }

    /// The launch the kernel's comment in `kernels/gemm.cu` prescribes for an `m x n` C.
    pub fn launch(self, m: usize, n: usize) -> Launch {
        let blocks = |len: usize, tile: usize| len.div_ceil(tile) as u32;
        let (grid, block) = match self {
            GemmKernel::Naive => ([blocks(n, 16), blocks(m, 16), 1], [16, 16, 1]),
            GemmKernel::Tiled => ([blocks(n, 32), blocks(m, 32), 1], [32, 32, 1]),
            GemmKernel::RegisterBlocked => ([blocks(n, 128), blocks(m, 128), 1], [256, 1, 1]),
        };
        Launch { grid, block }
    }
}

/// One operand of [`sgemm`]: a buffer whose first matrix starts at element 0, and its batch,
/// row and column strides (element `(b, r, c)` at `b*batch_stride + r*row_stride +
/// c*col_stride`).
#[derive(Clone, Copy, Debug)]
pub struct DeviceOperand<'a> {
    /// The elements.
    pub buffer: &'a DeviceBuffer<f32>,
    /// Elements between consecutive matrices of a batch (0 broadcasts one matrix).
    pub batch_stride: usize,
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

impl<'a> DeviceOperand<'a> {
    /// The operand `buffer` with the given strides.
    pub fn new(
        buffer: &'a DeviceBuffer<f32>,
        batch_stride: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> DeviceOperand<'a> {
        DeviceOperand {
            buffer,
            batch_stride,
            row_stride,
            col_stride,
        }
    }
}

/// `C_b = A_b · B_b` for `b < batch` into the dense `[batch, m, n]` buffer `c`, by
/// `sgemm_register_blocked` (one matrix) or `sgemm_batched` (128 x 128 tiles of C, 256
/// threads each, one grid layer per matrix). Queued on the device's stream.
///
/// `Err` when an operand is too large for the kernels' `int` indices or the grid would exceed
/// its limits (65,535 row tiles, 65,535 matrices), and for a failed launch.
pub fn sgemm(
    device: &CudaDevice,
    (batch, m, n, k): (usize, usize, usize, usize),
    a: DeviceOperand,
    b: DeviceOperand,
    c: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    if m == 0 || n == 0 || batch == 0 {
        return Ok(());
    }
    let fits = |x: usize| i32::try_from(x).is_ok();
    if ![a.buffer.len(), b.buffer.len(), batch * m * n]
        .into_iter()
        .all(fits)
    {
        return Err("an operand has 2^31 elements or more (the kernels index with int)".into());
    }
    if m.div_ceil(128) > 65_535 {
        return Err(format!(
            "{m} rows need more than 65,535 row tiles of 128 (the grid's y limit)"
        ));
    }
    let i = |x: usize| KernelArg::I32(x as i32);
    let one = GemmKernel::RegisterBlocked.launch(m, n);
    if batch == 1 {
        return device.launch(
            GemmKernel::RegisterBlocked.name(),
            one,
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
                KernelArg::F32sMut(c),
                i(n),
                i(1),
            ],
        );
    }
    if batch > 65_535 {
        return Err(format!("a batch of {batch} matrices exceeds 65,535"));
    }
    let batched = Launch {
        grid: [one.grid[0], one.grid[1], batch as u32],
        block: one.block,
    };
    device.launch(
        "sgemm_batched",
        batched,
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
            KernelArg::F32sMut(c),
            i(m * n),
            i(n),
            i(1),
        ],
    )
}
