//! Sequential's planning step: which children run together, and how.
//!
//! Two rewrites do less work for the same values and gradients:
//!
//! - consecutive fully connected layers, with the ReLUs between them, run as one
//!   [`Tensor::dense_chain`]: on a narrow chain (dnn3's widths 3 and 5) one fused kernel
//!   instead of five ops per layer, forward and back, equal to the layers one by one up to
//!   rounding; a chain with a wider layer is the layers' own ops, bit for bit;
//! - a ReLU directly followed by max pooling runs after it: on LeNet-5's first layer that is
//!   one pass over 117,600 values per image batch of 100 instead of 470,400, forward and back.
//!
//! The planner recognises [`Linear`], [`ReLU`] and [`MaxPool2d`] by their concrete type
//! (through [`Any`]), so a layer written elsewhere only implements forward, parameters and
//! describe, and runs on its own.

use std::any::Any;

use crate::layers::{Linear, MaxPool2d, ReLU};
use crate::Module;
use strata_tensor::ops::DenseStage;
use strata_tensor::Tensor;

/// One step of a planned forward pass.
pub(super) enum Step<'a> {
    /// Fully connected layers, each with the ReLU that follows it if any, as one dense chain.
    Dense(Vec<DenseStage<'a>>),
    /// Max pooling, then the ReLU that precedes it in the list. `max(x, 0)` is non-decreasing,
    /// so the window's largest input stays largest, and its gradient is zero where it clips:
    /// pooling first picks the same element, or one whose gradient is zero either way (for
    /// inputs without NaN).
    PoolThenRelu {
        pool: &'a dyn Module,
        relu: &'a dyn Module,
    },
    /// One child on its own.
    Single(&'a dyn Module),
}

impl Step<'_> {
    /// Applies the step to `x`.
    pub(super) fn run(&self, x: &Tensor) -> Tensor {
        match self {
            Step::Dense(stages) => x.dense_chain(stages),
            Step::PoolThenRelu { pool, relu } => relu.forward(&pool.forward(x)),
            Step::Single(child) => child.forward(x),
        }
    }
}

fn linear(m: &dyn Module) -> Option<&Linear> {
    (m as &dyn Any).downcast_ref::<Linear>()
}

fn is<T: Module>(m: &dyn Module) -> bool {
    (m as &dyn Any).is::<T>()
}

/// The step that starts at child `start` for the input `x` it receives, and the index of the
/// child after it.
pub(super) fn plan_step<'a>(
    children: &'a [(String, Box<dyn Module>)],
    start: usize,
    x: &Tensor,
) -> (Step<'a>, usize) {
    if let Some((stages, next)) = dense_chain_from(children, start, x) {
        return (Step::Dense(stages), next);
    }
    let child = children[start].1.as_ref();
    match children.get(start + 1) {
        Some((_, pool)) if is::<ReLU>(child) && is::<MaxPool2d>(pool.as_ref()) => (
            Step::PoolThenRelu {
                pool: pool.as_ref(),
                relu: child,
            },
            start + 2,
        ),
        _ => (Step::Single(child), start + 1),
    }
}

/// The consecutive fully connected layers (each with the ReLU that follows it) starting at
/// child `start`, and the index of the child after them; none if child `start` is not such a
/// layer or does not take `x`'s shape (its own `forward` then says why).
fn dense_chain_from<'a>(
    children: &'a [(String, Box<dyn Module>)],
    start: usize,
    x: &Tensor,
) -> Option<(Vec<DenseStage<'a>>, usize)> {
    let mut stages = Vec::new();
    let mut width = (x.rank() == 2).then(|| x.shape()[1])?;
    let mut i = start;
    while let Some(layer) = children.get(i).and_then(|c| linear(c.1.as_ref())) {
        let weight = &layer.weight;
        if weight.rank() != 2 || weight.shape()[1] != width {
            break;
        }
        width = weight.shape()[0];
        let relu = children
            .get(i + 1)
            .is_some_and(|c| is::<ReLU>(c.1.as_ref()));
        stages.push(DenseStage {
            weight,
            bias: layer.bias.as_ref(),
            relu,
        });
        i += 1 + relu as usize;
    }
    (!stages.is_empty()).then_some((stages, i))
}
