//! Log-softmax and softmax along one axis.
//!
//!   forward:  y = x - max(x) - log Σ exp(x - max(x))        [rows, C] -> [rows, C]
//!   backward: dx = dy - softmax(x) · Σ_C dy,  softmax(x) = exp(y)
//! Other axes are moved last, computed, and moved back (views, so only the kernel copies).

use crate::ops::cuda;
use crate::shape::normalize_axis;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::softmax_ce::{
    self, log_softmax_backward, log_softmax_forward, softmax_forward,
};

impl Tensor {
    /// `log(softmax(x))` along `axis`, computed stably (no overflow for large logits).
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        let axis = normalize_axis("log_softmax", axis, self.rank());
        let last = self.rank() - 1;
        if axis != last {
            return self
                .transpose(axis as isize, last as isize)
                .log_softmax(-1)
                .transpose(axis as isize, last as isize);
        }
        let cols = self.shape()[last];
        let rows = self.numel() / cols.max(1);
        if let Some(device) = self.cuda() {
            return self.log_softmax_on_device(device, rows, cols);
        }
        let mut out = crate::buffer_cache::take_for_overwrite(self.numel());
        self.with_contiguous(|x| log_softmax_forward(rows, cols, x, &mut out));
        let y = Tensor::from_vec(out, self.shape());
        let y_saved = y.clone();
        Tensor::from_result(&y, "log_softmax", &[self], move |dy| {
            let mut dx = crate::buffer_cache::take_for_overwrite(y_saved.numel());
            y_saved.with_contiguous(|yd| {
                dy.with_contiguous(|g| log_softmax_backward(rows, cols, yd, g, &mut dx))
            });
            vec![Some(Tensor::from_vec(dx, y_saved.shape()))]
        })
    }

    /// The CUDA path of `log_softmax` over the last axis: `log_softmax_forward` and
    /// `log_softmax_backward`, one block per row.
    fn log_softmax_on_device(&self, device: Arc<CudaDevice>, rows: usize, cols: usize) -> Tensor {
        const OP: &str = "log_softmax";
        cuda::check_sizes(OP, &[rows * cols]);
        let mut out = cuda::zeros(&device, rows * cols);
        {
            let x = cuda::dense(&device, self);
            cuda::check(
                OP,
                softmax_ce::cuda::log_softmax_forward(&device, (rows, cols), &x, &mut out),
            );
        }
        let y = cuda::tensor(&device, out, self.shape());
        let y_saved = y.clone();
        Tensor::from_result(&y, OP, &[self], move |dy| {
            let mut dx = cuda::zeros(&device, rows * cols);
            let (yd, g) = (cuda::dense(&device, &y_saved), cuda::dense(&device, dy));
            cuda::check(
                OP,
                softmax_ce::cuda::log_softmax_backward(&device, (rows, cols), &yd, &g, &mut dx),
            );
            vec![Some(cuda::tensor(&device, dx, y_saved.shape()))]
        })
    }

    /// `softmax(x)` along `axis`. Differentiable as `exp(log_softmax(x))`; when no gradient is
    /// needed it runs the direct kernel.
    pub fn softmax(&self, axis: isize) -> Tensor {
        let axis_n = normalize_axis("softmax", axis, self.rank());
        let on_device = self.cuda().is_some();
        if self.requires_grad() && crate::is_grad_enabled()
            || axis_n != self.rank() - 1
            || on_device
        {
            return self.log_softmax(axis).exp();
        }
        let cols = self.shape()[axis_n];
        let rows = self.numel() / cols.max(1);
        let mut out = crate::buffer_cache::take_for_overwrite(self.numel());
        self.with_contiguous(|x| softmax_forward(rows, cols, x, &mut out));
        Tensor::from_vec(out, self.shape())
    }
}
