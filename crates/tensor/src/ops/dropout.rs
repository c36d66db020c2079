//! Inverted dropout.
//!
//!   train:    y = x · mask / (1 - p),  mask ~ Bernoulli(1 - p) drawn from the seeded generator
//!   backward: dx = dy · mask / (1 - p)   (the backward of the product with a constant mask)
//!   eval:     y = x
//! Scaling at training time keeps the expected activation unchanged, so evaluation needs no
//! rescaling.

use crate::{Generator, Tensor};

impl Tensor {
    /// Zeroes each element with probability `p` and scales the survivors by `1/(1-p)` when
    /// `training`; the identity otherwise. The mask comes from `generator`, so a seed fixes it.
    pub fn dropout(&self, p: f32, training: bool, generator: &mut Generator) -> Tensor {
        assert!(
            (0.0..=1.0).contains(&p),
            "dropout: probability {p} is outside [0, 1]"
        );
        if !training || p == 0.0 {
            return self.clone();
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let mask: Vec<f32> = (0..self.numel())
            .map(|_| if generator.uniform() >= p { scale } else { 0.0 })
            .collect();
        self.mul(&Tensor::from_vec(mask, self.shape()))
    }
}
