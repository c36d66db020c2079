//! 2-D max and average pooling, NCHW.
//!
//!   forward:  y[n,c,i,j] = max / mean of x[n,c, i·s+p-pad, j·s+q-pad] over the KH×KW window
//!             x [N,C,H,W] -> y [N,C,OH,OW],  OH = (H + 2·pad - KH)/stride + 1
//!   backward: max: dx gets dy at the position that won each window (recorded in the forward)
//!             avg: every input of a window gets dy / divisor (KH·KW when padding counts)
//! The kernels live in `strata_kernels::pool`.

use crate::ops::cuda;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::pool::cuda as pool_cuda;
use strata_kernels::pool::{
    avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
    Pool2dGeometry,
};

fn geometry(
    op: &str,
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Pool2dGeometry {
    assert_eq!(
        x.rank(),
        4,
        "{op}: input must be [N, C, H, W] but has shape {:?}",
        x.shape()
    );
    assert!(
        kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0,
        "{op}: kernel {kernel:?} and stride {stride:?} must be positive"
    );
    assert!(
        x.shape()[2] + 2 * padding.0 >= kernel.0 && x.shape()[3] + 2 * padding.1 >= kernel.1,
        "{op}: window {kernel:?} is larger than the padded input (input {:?}, padding {padding:?})",
        x.shape()
    );
    Pool2dGeometry {
        batch: x.shape()[0],
        channels: x.shape()[1],
        in_h: x.shape()[2],
        in_w: x.shape()[3],
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride_h: stride.0,
        stride_w: stride.1,
        pad_h: padding.0,
        pad_w: padding.1,
    }
}

impl Tensor {
    /// Max pooling over `kernel` windows moved by `stride`, padding with -∞.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor {
        let g = geometry("max_pool2d", self, kernel, stride, padding);
        if let Some(device) = self.cuda() {
            return pool_on_device(device, g, self, PoolKind::Max);
        }
        let mut out = crate::buffer_cache::take_for_overwrite(g.output_len());
        let mut argmax = vec![0u32; g.output_len()];
        self.with_contiguous(|x| max_pool2d_forward(&g, x, &mut out, &mut argmax));
        let argmax = Arc::new(argmax);
        let input_shape = self.shape().to_vec();
        let shape = [g.batch, g.channels, g.out_h(), g.out_w()];
        Tensor::from_op(out, &shape, "max_pool2d", &[self], move |dy| {
            let mut dx = crate::buffer_cache::take_for_overwrite(g.input_len());
            dy.with_contiguous(|d| max_pool2d_backward(&g, d, &argmax, &mut dx));
            vec![Some(Tensor::from_vec(dx, &input_shape))]
        })
    }

    /// Average pooling; padded positions count in the divisor (PyTorch's default).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor {
        let g = geometry("avg_pool2d", self, kernel, stride, padding);
        if let Some(device) = self.cuda() {
            return pool_on_device(device, g, self, PoolKind::Average);
        }
        let mut out = crate::buffer_cache::take_for_overwrite(g.output_len());
        self.with_contiguous(|x| avg_pool2d_forward(&g, true, x, &mut out));
        let input_shape = self.shape().to_vec();
        let shape = [g.batch, g.channels, g.out_h(), g.out_w()];
        Tensor::from_op(out, &shape, "avg_pool2d", &[self], move |dy| {
            let mut dx = crate::buffer_cache::take_for_overwrite(g.input_len());
            dy.with_contiguous(|d| avg_pool2d_backward(&g, true, d, &mut dx));
            vec![Some(Tensor::from_vec(dx, &input_shape))]
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    Max,
    Average,
}

/// The CUDA path of both poolings (`kernels/pool.cu`). Max pooling keeps each window's
/// argmax on the device for the backward pass; both backward kernels gather (one thread per
/// input pixel), so no atomics are needed.
fn pool_on_device(
    device: Arc<CudaDevice>,
    g: Pool2dGeometry,
    x: &Tensor,
    kind: PoolKind,
) -> Tensor {
    let name = match kind {
        PoolKind::Max => "max_pool2d",
        PoolKind::Average => "avg_pool2d",
    };
    cuda::check_sizes(name, &[g.input_len(), g.output_len()]);
    let mut out = cuda::zeros(&device, g.output_len());
    let argmax = {
        let xd = cuda::dense(&device, x);
        match kind {
            PoolKind::Max => {
                let mut argmax = cuda::check(name, device.zeros::<u32>(g.output_len()));
                let launched =
                    pool_cuda::max_pool2d_forward(&device, &g, &xd, &mut out, &mut argmax);
                cuda::check(name, launched);
                Some(argmax)
            }
            PoolKind::Average => {
                let launched = pool_cuda::avg_pool2d_forward(&device, &g, true, &xd, &mut out);
                cuda::check(name, launched);
                None
            }
        }
    };
    let y = cuda::tensor(&device, out, &[g.batch, g.channels, g.out_h(), g.out_w()]);
    let input_shape = x.shape().to_vec();
    Tensor::from_result(&y, name, &[x], move |dy| {
        let dyd = cuda::dense(&device, dy);
        let mut dx = cuda::zeros(&device, g.input_len());
        let launched = match &argmax {
            Some(argmax) => pool_cuda::max_pool2d_backward(&device, &g, &dyd, argmax, &mut dx),
            None => pool_cuda::avg_pool2d_backward(&device, &g, true, &dyd, &mut dx),
        };
        cuda::check(name, launched);
        vec![Some(cuda::tensor(&device, dx, &input_shape))]
    })
}
