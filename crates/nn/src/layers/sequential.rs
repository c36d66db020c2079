use crate::module::join;
use crate::Module;
use strata_tensor::ops::DenseStage;
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

impl Sequential {
    /// The consecutive fully connected layers (each with the ReLU that follows it) starting at
    /// child `start`, applied to `x` as one chain, and the index of the child after them; none
    /// if child `start` is not such a layer or does not take `x`'s shape (its own `forward`
    /// then says why).
    fn dense_chain_from(&self, start: usize, x: &Tensor) -> Option<(Tensor, usize)> {
        let mut layers = Vec::new();
        let mut width = (x.rank() == 2).then(|| x.shape()[1])?;
        let mut i = start;
        while let Some((weight, bias)) = self.children.get(i).and_then(|c| c.1.dense_parameters()) {
            if weight.rank() != 2 || weight.shape()[1] != width {
                break;
            }
            width = weight.shape()[0];
            let relu = self.children.get(i + 1).is_some_and(|c| c.1.is_relu());
            layers.push((weight, bias, relu));
            i += 1 + relu as usize;
        }
        if layers.is_empty() {
            return None;
        }
        let stages: Vec<DenseStage> = layers
            .iter()
            .map(|(weight, bias, relu)| DenseStage {
                weight,
                bias: bias.as_ref(),
                relu: *relu,
            })
            .collect();
        Some((x.dense_chain(&stages), i))
    }
}

impl Module for Sequential {
    /// Applies the children in order, with two shortcuts:
    ///
    /// - consecutive fully connected layers, with the ReLUs between them, run as one
    ///   [`Tensor::dense_chain`]: on a narrow chain (dnn3's widths 3 and 5) one fused kernel
    ///   instead of five ops per layer, forward and back, equal to the layers one by one up
    ///   to rounding; a chain with a wider layer is the layers' own ops, bit for bit;
    /// - a ReLU directly followed by max pooling runs after it (see
    ///   [`Module::commutes_with_max_pool`]), with the same values and gradients: on LeNet-5's
    ///   first layer that is one pass over 117,600 values per image batch of 100 instead of
    ///   470,400, forward and back.
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        let mut i = 0;
        while i < self.children.len() {
            if let Some((y, next)) = self.dense_chain_from(i, &h) {
                h = y;
                i = next;
                continue;
            }
            let child = &self.children[i].1;
            match self.children.get(i + 1) {
                Some((_, pool)) if child.commutes_with_max_pool() && pool.is_max_pool() => {
                    h = child.forward(&pool.forward(&h));
                    i += 2;
                }
                _ => {
                    h = child.forward(&h);
                    i += 1;
                }
            }
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
