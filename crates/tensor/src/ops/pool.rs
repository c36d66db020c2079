//! 2-D max and average pooling, NCHW.
//!
//!   forward:  y[n,c,i,j] = max / mean of x[n,c, i·s+p-pad, j·s+q-pad] over the KH×KW window
//!             x [N,C,H,W] -> y [N,C,OH,OW],  OH = (H + 2·pad - KH)/stride + 1
//!   backward: max: dx gets dy at the position that won each window (recorded in the forward)
//!             avg: every input of a window gets dy / divisor (KH·KW when padding counts)
//! The kernels live in `strata_kernels::pool`.

use crate::Tensor;
use std::sync::Arc;
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
        let mut out = crate::pool::take_for_overwrite(g.output_len());
        let mut argmax = vec![0u32; g.output_len()];
        self.with_contiguous(|x| max_pool2d_forward(&g, x, &mut out, &mut argmax));
        let argmax = Arc::new(argmax);
        let input_shape = self.shape().to_vec();
        let shape = [g.batch, g.channels, g.out_h(), g.out_w()];
        Tensor::from_op(out, &shape, "max_pool2d", &[self], move |dy| {
            let mut dx = crate::pool::take_for_overwrite(g.input_len());
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
        let mut out = crate::pool::take_for_overwrite(g.output_len());
        self.with_contiguous(|x| avg_pool2d_forward(&g, true, x, &mut out));
        let input_shape = self.shape().to_vec();
        let shape = [g.batch, g.channels, g.out_h(), g.out_w()];
        Tensor::from_op(out, &shape, "avg_pool2d", &[self], move |dy| {
            let mut dx = crate::pool::take_for_overwrite(g.input_len());
            dy.with_contiguous(|d| avg_pool2d_backward(&g, true, d, &mut dx));
            vec![Some(Tensor::from_vec(dx, &input_shape))]
        })
    }
}
