//! The container that applies its children in order.

mod plan;

use crate::module::join;
use crate::Module;
use strata_tensor::Tensor;

/// Applies its children in order. Children are named `0`, `1`, ... (as `nn.Sequential`) or
/// by the names given, which prefix their parameters' names.
///
/// ```
/// use strata_nn::layers::{Linear, ReLU, Sequential};
/// use strata_nn::{Generator, Module, ModuleExt, Tensor};
///
/// let g = &mut Generator::seed(0);
/// let mlp = Sequential::named(vec![
///     ("fc1", Box::new(Linear::new(4, 8, g))),
///     ("relu", Box::new(ReLU)),
///     ("fc2", Box::new(Linear::new(8, 3, g))),
/// ]);
/// let logits = mlp.forward(&Tensor::zeros(&[2, 4])); // a batch of 2
/// assert_eq!(logits.shape(), &[2, 3]);
/// assert_eq!(mlp.num_parameters(), 4 * 8 + 8 + 8 * 3 + 3);
/// let names: Vec<String> = mlp.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
/// ```
pub struct Sequential {
    children: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    /// Children named by position.
    pub fn new(children: Vec<Box<dyn Module>>) -> Sequential {
        Sequential {
            children: children
                .into_iter()
                .enumerate()
                .map(|(i, m)| (i.to_string(), m))
                .collect(),
        }
    }

    /// Children with explicit names (`conv1`, `fc1`, ...).
    pub fn named(children: Vec<(&str, Box<dyn Module>)>) -> Sequential {
        Sequential {
            children: children
                .into_iter()
                .map(|(n, m)| (n.to_string(), m))
                .collect(),
        }
    }

    /// Number of direct children (a nested `Sequential` counts as one).
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// `true` with no children; such a `Sequential` is the identity.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    /// Applies the children in order, with two shortcuts that keep the values and gradients:
    /// consecutive fully connected layers, with the ReLUs between them, run as one
    /// [`Tensor::dense_chain`], and a ReLU directly followed by max pooling runs after it.
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        let mut i = 0;
        while i < self.children.len() {
            let (step, next) = plan::plan_step(&self.children, i, &h);
            h = step.run(&h);
            i = next;
        }
        h
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.children
            .iter()
            .flat_map(|(name, c)| {
                c.parameters()
                    .into_iter()
                    .map(move |(n, t)| (join(name, &n), t))
            })
            .collect()
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        self.children
            .iter()
            .flat_map(|(name, c)| {
                c.buffers()
                    .into_iter()
                    .map(move |(n, t)| (join(name, &n), t))
            })
            .collect()
    }

    fn set_training(&self, training: bool) {
        for (_, c) in &self.children {
            c.set_training(training);
        }
    }

    fn reseed(&self, seed: u64) {
        for (i, (_, c)) in self.children.iter().enumerate() {
            // SplitMix64's increment and finaliser: distinct, well-mixed seeds per child.
            let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            c.reseed(z ^ (z >> 31));
        }
    }

    fn describe(&self) -> String {
        format!("Sequential({} layers)", self.children.len())
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.children
            .iter()
            .map(|(n, c)| (n.clone(), c.as_ref()))
            .collect()
    }
}
