use crate::module::join;
use crate::Module;
use strata_tensor::Tensor;

/// Applies its children in order. Children are named `0`, `1`, ... (as `nn.Sequential`) or
/// by the names given, which prefix their parameters' names.
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

    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (_, child) in &self.children {
            h = child.forward(&h);
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
