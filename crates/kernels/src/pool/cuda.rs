//! Launches of `kernels/pool.cu` on a [`CudaDevice`]: one thread per output element for the
//! forward kernels, one per input pixel for the backward ones (they gather, so no atomics).
//! Max pooling's forward writes each window's argmax to a device buffer its backward reads.
//! Buffers are sized as for the CPU kernels of the same names: `g.input_len()` and
//! `g.output_len()` elements.

use super::Pool2dGeometry;
use crate::cuda::runtime::{CudaDevice, DeviceBuffer, KernelArg, Launch};

/// Max over each window, and the window's argmax (index within the input plane).
pub fn max_pool2d_forward(
    device: &CudaDevice,
    g: &Pool2dGeometry,
    input: &DeviceBuffer<f32>,
    output: &mut DeviceBuffer<f32>,
    argmax: &mut DeviceBuffer<u32>,
) -> Result<(), String> {
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::F32s(input),
        KernelArg::F32sMut(output),
        KernelArg::U32sMut(argmax),
    ]);
    let launch = Launch::elements(g.output_len());
    device.launch("max_pool2d_forward", launch, &mut args)
}

/// `grad_output` routed to the argmax positions. Overwrites `grad_input`.
pub fn max_pool2d_backward(
    device: &CudaDevice,
    g: &Pool2dGeometry,
    grad_output: &DeviceBuffer<f32>,
    argmax: &DeviceBuffer<u32>,
    grad_input: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::F32s(grad_output),
        KernelArg::U32s(argmax),
        KernelArg::F32sMut(grad_input),
    ]);
    let launch = Launch::elements(g.input_len());
    device.launch("max_pool2d_backward", launch, &mut args)
}

/// Mean over each window; the divisor counts the padding when `count_include_pad`.
pub fn avg_pool2d_forward(
    device: &CudaDevice,
    g: &Pool2dGeometry,
    count_include_pad: bool,
    input: &DeviceBuffer<f32>,
    output: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::I32(count_include_pad as i32),
        KernelArg::F32s(input),
        KernelArg::F32sMut(output),
    ]);
    let launch = Launch::elements(g.output_len());
    device.launch("avg_pool2d_forward", launch, &mut args)
}

/// Each window's `grad_output / divisor` added to every input pixel of the window. Overwrites
/// `grad_input`.
pub fn avg_pool2d_backward(
    device: &CudaDevice,
    g: &Pool2dGeometry,
    count_include_pad: bool,
    grad_output: &DeviceBuffer<f32>,
    grad_input: &mut DeviceBuffer<f32>,
) -> Result<(), String> {
    let mut args = geometry_args(g);
    args.extend([
        KernelArg::I32(count_include_pad as i32),
        KernelArg::F32s(grad_output),
        KernelArg::F32sMut(grad_input),
    ]);
    let launch = Launch::elements(g.input_len());
    device.launch("avg_pool2d_backward", launch, &mut args)
}

/// The geometry parameters every pooling kernel starts with:
/// `planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow`.
fn geometry_args<'a>(g: &Pool2dGeometry) -> Vec<KernelArg<'a>> {
    [
        g.batch * g.channels,
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
