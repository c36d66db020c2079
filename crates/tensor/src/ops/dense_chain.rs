//! A chain of fully connected layers, each with an optional bias and ReLU, as one op.
//!
//! ```text
//! forward:  h_0 = x;  h_{l+1} = relu?(h_l · W_lᵀ + b_l)     [N, o_l] = [N, i_l] · [i_l, o_l]
//! backward: g = dy;  for l = L-1 .. 0:
//!           g ⊙= [h_{l+1} > 0] (ReLU layers);  dW_l = gᵀ · h_l   [o_l, i_l]
//!           db_l = Σ_rows g   [o_l];  g = g · W_l   [N, i_l]  (dx at the end)
//! ```
//!
//! When every width is at most `strata_kernels::dense_chain::MAX_WIDTH` and the tensors are f32
//! on the CPU, one fused kernel runs the whole chain, forward and back (it recomputes the
//! activations instead of keeping them). Otherwise the chain is composed of `matmul`, `add` and
//! `relu`, exactly as `Linear` and `ReLU` layers compute it one at a time.

use crate::{DType, Tensor};
use strata_kernels::dense_chain::{self, DenseGradients, DenseLayer, MAX_WIDTH};

/// One layer of [`Tensor::dense_chain`].
#[derive(Clone, Copy, Debug)]
pub struct DenseStage<'a> {
    /// `[out, in]` (PyTorch's `Linear.weight` layout).
    pub weight: &'a Tensor,
    /// `[out]`, or none.
    pub bias: Option<&'a Tensor>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

impl Tensor {
    /// `self` (`[N, in]`) through each stage in turn: `relu?(h · Wᵀ + b)`. Differentiable in
    /// `self` and every weight and bias.
    ///
    /// Narrow chains (every width at most 16, f32 on the CPU, a CPU with FMA) run as one fused
    /// kernel; the result then differs from the layer-by-layer composition by rounding only.
    /// Panics naming the shapes if the stages do not chain.
    ///
    /// ```
    /// use strata_tensor::ops::DenseStage;
    /// use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, -2.0], &[1, 2]);
    /// let w = Tensor::from_vec(vec![1.0, 1.0, 2.0, 0.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![0.5, 0.0], &[2]);
    /// let stage = DenseStage { weight: &w, bias: Some(&b), relu: true };
    /// // [1 - 2 + 0.5, 2 + 0] = [-0.5, 2] -> ReLU -> [0, 2]
    /// assert_eq!(x.dense_chain(&[stage]).to_vec(), vec![0.0, 2.0]);
    /// ```
    pub fn dense_chain(&self, stages: &[DenseStage]) -> Tensor {
        check_stages(self, stages);
        if !fusable(self, stages) {
            return stages.iter().fold(self.clone(), |h, stage| {
                let mut y = h.matmul(&stage.weight.t());
                if let Some(b) = stage.bias {
                    y = y.add(b);
                }
                if stage.relu {
                    y = y.relu();
                }
                y
            });
        }
        let rows = self.shape()[0];
        let weights: Vec<Vec<f32>> = stages.iter().map(|s| s.weight.to_vec()).collect();
        let biases: Vec<Option<Vec<f32>>> =
            stages.iter().map(|s| s.bias.map(Tensor::to_vec)).collect();
        let shapes: Vec<(usize, usize, bool)> = stages
            .iter()
            .map(|s| (s.weight.shape()[1], s.weight.shape()[0], s.relu))
            .collect();
        let out_width = shapes[shapes.len() - 1].1;
        let mut out = crate::buffer_cache::take_for_overwrite(rows * out_width);
        self.with_contiguous(|x| {
            let layers = dense_layers(&shapes, &weights, &biases);
            dense_chain::forward(&layers, x, rows, &mut out);
        });

        let mut inputs: Vec<&Tensor> = vec![self];
        for s in stages {
            inputs.push(s.weight);
            inputs.extend(s.bias);
        }
        let x = self.detach();
        let x_needs_grad = self.requires_grad();
        Tensor::from_op(out, &[rows, out_width], "dense_chain", &inputs, move |dy| {
            let mut weight_grads: Vec<Vec<f32>> =
                weights.iter().map(|w| vec![0.0; w.len()]).collect();
            let mut bias_grads: Vec<Option<Vec<f32>>> = biases
                .iter()
                .map(|b| b.as_ref().map(|b| vec![0.0; b.len()]))
                .collect();
            let mut dx = x_needs_grad.then(|| crate::buffer_cache::take_for_overwrite(x.numel()));
            let layers = dense_layers(&shapes, &weights, &biases);
            let mut grads: Vec<DenseGradients> = weight_grads
                .iter_mut()
                .zip(bias_grads.iter_mut())
                .map(|(weight, bias)| DenseGradients {
                    weight,
                    bias: bias.as_deref_mut(),
                })
                .collect();
            x.with_contiguous(|x| {
                dy.with_contiguous(|dy| {
                    dense_chain::backward(&layers, x, dy, rows, &mut grads, dx.as_deref_mut())
                })
            });
            let mut result = vec![dx.map(|dx| Tensor::from_vec(dx, x.shape()))];
            for ((w, b), (inputs, outputs, _)) in
                weight_grads.into_iter().zip(bias_grads).zip(&shapes)
            {
                result.push(Some(Tensor::from_vec(w, &[*outputs, *inputs])));
                if let Some(b) = b {
                    result.push(Some(Tensor::from_vec(b, &[*outputs])));
                }
            }
            result
        })
    }
}

/// The kernel's view of the stages.
fn dense_layers<'a>(
    shapes: &[(usize, usize, bool)],
    weights: &'a [Vec<f32>],
    biases: &'a [Option<Vec<f32>>],
) -> Vec<DenseLayer<'a>> {
    shapes
        .iter()
        .zip(weights.iter().zip(biases))
        .map(|(&(inputs, outputs, relu), (weight, bias))| DenseLayer {
            weight,
            bias: bias.as_deref(),
            inputs,
            outputs,
            relu,
        })
        .collect()
}

/// Panics, naming the stage and the shapes, unless the stages chain from `x`.
fn check_stages(x: &Tensor, stages: &[DenseStage]) {
    assert!(!stages.is_empty(), "dense_chain: no stages");
    assert_eq!(
        x.rank(),
        2,
        "dense_chain: input of shape {:?} is not [N, features]",
        x.shape()
    );
    let mut width = x.shape()[1];
    for (l, s) in stages.iter().enumerate() {
        let w = s.weight.shape();
        assert!(
            w.len() == 2 && w[1] == width,
            "dense_chain: stage {l}'s weight {w:?} does not take {width} features (input {:?})",
            x.shape()
        );
        if let Some(b) = s.bias {
            assert_eq!(
                b.shape(),
                &[w[0]],
                "dense_chain: stage {l}'s bias {:?} does not match weight {w:?}",
                b.shape()
            );
        }
        width = w[0];
    }
}

/// Whether the fused kernel runs this chain.
fn fusable(x: &Tensor, stages: &[DenseStage]) -> bool {
    let tensors = std::iter::once(x)
        .chain(stages.iter().map(|s| s.weight))
        .chain(stages.iter().filter_map(|s| s.bias));
    dense_chain::available()
        && x.shape()[0] > 0
        && (1..=MAX_WIDTH).contains(&x.shape()[1])
        && stages
            .iter()
            .all(|s| (1..=MAX_WIDTH).contains(&s.weight.shape()[0]))
        && tensors
            .into_iter()
            .all(|t| t.dtype() == DType::F32 && t.cuda().is_none())
}
