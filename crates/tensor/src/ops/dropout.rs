//! Inverted dropout.
//!
//!   train:    y = x · mask / (1 - p),  mask ~ Bernoulli(1 - p) from a counter-based generator
//!             (Philox4x32-10, `strata_kernels::dropout`) whose seed comes from the caller's
//!             generator, so the CPU and the CUDA kernel draw the same mask
//!   backward: dx = dy · mask / (1 - p)   (the backward of the product with a constant mask)
//!   eval:     y = x
//! Scaling at training time keeps the expected activation unchanged, so evaluation needs no
//! rescaling.

use crate::ops::cuda;
use crate::{Generator, Tensor};
use strata_kernels::dropout::dropout_mask;

impl Tensor {
    /// Zeroes each element with probability `p` and scales the survivors by `1/(1-p)` when
    /// `training`; the identity otherwise. The mask comes from `generator`, so a seed fixes it.
    pub fn dropout(&self, p: f32, training: bool, generator: &mut Generator) -> Tensor {
        self.dropout_rows_from(p, training, generator, 0)
    }

    /// [`Tensor::dropout`] of rows `first_row..` of a larger batch: the mask is the part of the
    /// whole batch's mask (same generator state) that falls on these rows, so a data-parallel
    /// rank holding rows `first_row..first_row + n` drops exactly what one process holding the
    /// whole batch drops there. Rows are the first dimension; `first_row = 0` is `dropout`.
    pub fn dropout_rows_from(
        &self,
        p: f32,
        training: bool,
        generator: &mut Generator,
        first_row: usize,
    ) -> Tensor {
        assert!(
            (0.0..=1.0).contains(&p),
            "dropout: probability {p} is outside [0, 1]"
        );
        if !training || p == 0.0 {
            return self.clone();
        }
        let seed = generator.next_u64();
        let row_len = if self.rank() == 0 {
            1
        } else {
            self.numel() / self.shape()[0].max(1)
        };
        let first = (first_row * row_len) as u64;
        if let Some(device) = self.cuda() {
            // The same Philox stream on the device: the mask equals the CPU's bit for bit.
            let n = self.numel();
            cuda::check_sizes("dropout", &[n]);
            let mut mask = cuda::zeros(&device, n);
            cuda::check(
                "dropout",
                strata_kernels::dropout::cuda::dropout_mask(&device, seed, p, first, &mut mask, n),
            );
            return self.mul(&cuda::tensor(&device, mask, self.shape()));
        }
        let mut mask = crate::buffer_cache::take_for_overwrite(self.numel());
        dropout_mask(seed, p, first, &mut mask);
        self.mul(&Tensor::from_vec(mask, self.shape()))
    }
}
