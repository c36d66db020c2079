//! `dense_chain` against the same layers composed from `matmul`, `add` and `relu`: the fused
//! kernel (narrow chains) agrees to rounding, values and every gradient; wide chains take the
//! composed path and agree bit for bit.

use approx::abs_diff_eq;
use strata_tensor::ops::DenseStage;
use strata_tensor::{Generator, Tensor};

struct Chain {
    x: Tensor,
    weights: Vec<Tensor>,
    biases: Vec<Option<Tensor>>,
    relu: Vec<bool>,
}

impl Chain {
    fn new(rows: usize, widths: &[usize], bias: bool, relu_last: bool, seed: u64) -> Chain {
        let g = &mut Generator::seed(seed);
        let layers = widths.len() - 1;
        Chain {
            x: Tensor::normal(&[rows, widths[0]], 0.0, 1.0, g).set_requires_grad(true),
            weights: (0..layers)
                .map(|l| {
                    Tensor::normal(&[widths[l + 1], widths[l]], 0.0, 0.5, g).set_requires_grad(true)
                })
                .collect(),
            biases: (0..layers)
                .map(|l| {
                    bias.then(|| {
                        Tensor::normal(&[widths[l + 1]], 0.0, 0.5, g).set_requires_grad(true)
                    })
                })
                .collect(),
            relu: (0..layers).map(|l| l + 1 < layers || relu_last).collect(),
        }
    }

    fn fused(&self) -> Tensor {
        let stages: Vec<DenseStage> = (0..self.weights.len())
            .map(|l| DenseStage {
                weight: &self.weights[l],
                bias: self.biases[l].as_ref(),
                relu: self.relu[l],
            })
            .collect();
        self.x.dense_chain(&stages)
    }

    fn composed(&self) -> Tensor {
        let mut h = self.x.clone();
        for l in 0..self.weights.len() {
            h = h.matmul(&self.weights[l].t());
            if let Some(b) = &self.biases[l] {
                h = h.add(b);
            }
            if self.relu[l] {
                h = h.relu();
            }
        }
        h
    }

    /// Output and the gradients of `Σ y·w` for fixed weights `w`.
    fn run(&self, f: impl Fn(&Chain) -> Tensor) -> Vec<Vec<f32>> {
        let leaves: Vec<&Tensor> = std::iter::once(&self.x)
            .chain(&self.weights)
            .chain(self.biases.iter().flatten())
            .collect();
        for t in &leaves {
            t.zero_grad();
        }
        let y = f(self);
        let w = Tensor::normal(y.shape(), 0.0, 1.0, &mut Generator::seed(99));
        y.mul(&w).sum_all().backward();
        let mut all = vec![y.to_vec()];
        all.extend(leaves.iter().map(|t| t.grad().unwrap().to_vec()));
        all
    }
}

#[test]
fn narrow_chains_run_fused_and_agree_with_the_composed_layers() {
    let cases: &[(usize, &[usize], bool, bool)] = &[
        (7000, &[3, 5, 5, 5, 3], true, false), // dnn3
        (300, &[16, 16, 16], true, true),
        (17, &[1, 4, 1], false, false),
        (1, &[2, 3], true, true),
        (1000, &[8, 2, 16, 4], true, false),
    ];
    for (seed, &(rows, widths, bias, relu_last)) in cases.iter().enumerate() {
        let chain = Chain::new(rows, widths, bias, relu_last, seed as u64);
        assert_eq!(chain.fused().op_name(), Some("dense_chain"));
        let fused = chain.run(Chain::fused);
        let composed = chain.run(Chain::composed);
        for (k, (f, c)) in fused.iter().zip(&composed).enumerate() {
            let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in f.iter().zip(c).enumerate() {
                assert!(
                    abs_diff_eq!(a, b, epsilon = 2e-5 * scale),
                    "{widths:?} x {rows}: tensor {k} element {i}: fused {a} vs composed {b}"
                );
            }
        }
    }
}

#[test]
fn wide_chains_are_the_composed_layers_bit_for_bit() {
    let chain = Chain::new(50, &[20, 12, 3], true, false, 5);
    assert_eq!(chain.run(Chain::fused), chain.run(Chain::composed));
}

#[test]
fn the_input_gradient_is_only_computed_when_asked_for() {
    let chain = Chain::new(40, &[3, 5, 2], true, false, 6);
    let x = chain.x.detach();
    let stage = |l: usize| DenseStage {
        weight: &chain.weights[l],
        bias: chain.biases[l].as_ref(),
        relu: chain.relu[l],
    };
    x.dense_chain(&[stage(0), stage(1)]).sum_all().backward();
    assert!(x.grad().is_none());
    assert!(chain.weights[0].grad().is_some());
}

#[test]
#[should_panic(expected = "dense_chain: stage 1's weight [2, 4] does not take 5 features")]
fn stages_that_do_not_chain_are_refused_by_name() {
    let x = Tensor::zeros(&[2, 3]);
    let (w0, w1) = (Tensor::zeros(&[5, 3]), Tensor::zeros(&[2, 4]));
    let stage = |weight| DenseStage {
        weight,
        bias: None,
        relu: false,
    };
    x.dense_chain(&[stage(&w0), stage(&w1)]);
}
