//! Launches of `kernels/conv.cu` on a [`CudaDevice`]: im2col and col2im over a whole batch,
//! the batch along `blockIdx.y`. The tensor crate builds the CUDA convolution from these and
//! the GEMM kernels:
//!
//! ```text
//! forward   Y_n = W · cols_n                  cols in the stacked layout
//! dX        dX_n = col2im(Wᵀ · dY_n)           dcols in the stacked layout
//! dW        dY' · colsᵀ, [cout, N·P]·[N·P, K]   cols in the side-by-side layout
//! ```
//!
//! The cols buffer holds column `q` of row `r` of image `b` at `cols[b·image_stride + r·ld + q]`:
//! `(ld, image_stride) = (P, K·P)` stacks the images' `[K, P]` matrices, `(N·P, P)` lays them
//! side by side as one `[K, N·P]` matrix.

use super::Conv2dGeometry;
use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// `cols <- im2col(images)` for every image of the batch, in the layout `(ld, image_stride)`
/// (see the module documentation). `images` holds `g.input_len()` floats; `cols` must cover
/// `(batch-1)·image_stride + (K-1)·ld + P` elements, every one of which (for the two layouts
/// above) is overwritten.
pub fn im2col(
    device: &CudaDevice,
    g: &Conv2dGeometry,
    images: &DeviceBuffer<f32>,
    cols: &mut DeviceBuffer<f32>,
    (ld, image_stride): (usize, usize),
) -> Result<(), String> {
    let (k, p) = (g.col_rows(), g.col_cols());
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::F32s(images),
        KernelArg::F32sMut(cols),
        KernelArg::I32(ld as i32),
        KernelArg::I32(image_stride as i32),
    ]);
    device.launch("im2col", batch_launch(k * p, g.batch), &mut args)
}

/// `images += col2im(cols)` for every image of the batch, `cols` in the layout
/// `(ld, image_stride)`. Accumulates, so zero `images` (`g.input_len()` floats) first for a
/// plain col2im.
pub fn col2im(
    device: &CudaDevice,
    g: &Conv2dGeometry,
    cols: &DeviceBuffer<f32>,
    (ld, image_stride): (usize, usize),
    images: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::F32s(cols),
        KernelArg::I32(ld as i32),
        KernelArg::I32(image_stride as i32),
        KernelArg::F32sMut(images),
    ]);
    device.launch("col2im", batch_launch(g.image_len(), g.batch), &mut args)
}

/// The geometry parameters `im2col` and `col2im` share:
/// `cin, h, w, kh, kw, sh, sw, ph, pw, oh, ow`.
fn geometry_args<'a>(g: &Conv2dGeometry) -> Vec<KernelArg<'a>> {
    [
        g.in_channels,
        g.in_h,
        g.in_w,
        g.kernel_h,
        g.kernel_w,
        g.stride_h,
        g.stride_w,
        g.pad_h,
        g.pad_w,
        g.out_h(),
        g.out_w(),
    ]
    .into_iter()
    .map(|v| KernelArg::I32(v as i32))
    .collect()
}

/// One thread per element of each image's part, the batch along `blockIdx.y`.
fn batch_launch(per_image: usize, batch: usize) -> Launch {
    assert!(
        batch <= 65_535,
        "conv2d on CUDA: a batch of {batch} images exceeds 65,535"
    );
    let mut launch = Launch::elements(per_image);
    launch.grid[1] = batch as u32;
    launch
}
