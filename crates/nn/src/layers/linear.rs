use crate::init;
use crate::Module;
use strata_tensor::{Generator, Tensor};

/// `y = x · Wᵀ + b`, x `[N, in]`, W `[out, in]` (PyTorch's layout), b `[out]`.
pub struct Linear {
    /// `[out_features, in_features]`, trainable.
    pub weight: Tensor,
    /// `[out_features]`, trainable; `None` for a layer made by [`Linear::without_bias`].
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default initialisation: W and b from U(-1/√in, 1/√in).
    pub fn new(in_features: usize, out_features: usize, generator: &mut Generator) -> Linear {
        let weight = init::pytorch_default_weight(&[out_features, in_features], generator);
        let bias = init::pytorch_default_bias(out_features, in_features, generator);
        Linear {
            weight: weight.set_requires_grad(true),
            bias: Some(bias.set_requires_grad(true)),
        }
    }

    /// Without the bias term.
    pub fn without_bias(
        in_features: usize,
        out_features: usize,
        generator: &mut Generator,
    ) -> Linear {
        let weight = init::pytorch_default_weight(&[out_features, in_features], generator);
        Linear {
            weight: weight.set_requires_grad(true),
            bias: None,
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        assert!(
            x.rank() == 2 && x.shape()[1] == self.weight.shape()[1],
            "Linear: input of shape {:?} does not match weight {:?} (expected [N, {}])",
            x.shape(),
            self.weight.shape(),
            self.weight.shape()[1]
        );
        // Wᵀ is a strided view: the GEMM reads W in place.
        let y = x.matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y.add(b),
            None => y,
        }
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            p.push(("bias".to_string(), b.clone()));
        }
        p
    }

    fn describe(&self) -> String {
        format!(
            "Linear({}, {}{})",
            self.weight.shape()[1],
            self.weight.shape()[0],
            if self.bias.is_some() {
                ""
            } else {
                ", bias=false"
            }
        )
    }
}
