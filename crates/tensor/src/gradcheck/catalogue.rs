//! The catalogue of ops that `strata gradcheck` and the test suite check: every
//! differentiable op, in plain and awkward variants, grouped by family, with the random
//! inputs each needs. The families are drawn from one generator in a fixed order, so a seed
//! always gives the same inputs.

use crate::ops::DenseStage;
use crate::{Generator, Tensor};

/// A random leaf requiring a gradient, values in [-1, 1) bounded away from 0 by `gap` (keeps
/// ReLU and friends away from their kink by more than the check's ε).
fn leaf(shape: &[usize], generator: &mut Generator) -> Tensor {
    away_from_zero(shape, 0.05, generator)
}

fn away_from_zero(shape: &[usize], gap: f32, generator: &mut Generator) -> Tensor {
    let t = Tensor::uniform(shape, -1.0, 1.0, generator);
    let v = t
        .to_vec()
        .into_iter()
        .map(|x| {
            if x.abs() < gap {
                x.signum() * gap + x
            } else {
                x
            }
        })
        .collect();
    Tensor::from_vec(v, shape).set_requires_grad(true)
}

fn positive(shape: &[usize], generator: &mut Generator) -> Tensor {
    Tensor::uniform(shape, 0.5, 2.0, generator).set_requires_grad(true)
}

/// A bias `[out]` for `x · wᵀ` (`x` `[n, in]`, `w` `[out, in]`) that keeps every
/// pre-activation at least 0.1 from ReLU's kink, so that no central difference straddles it:
/// for each output, the value of -0.9, -0.8, ..., 0.9 farthest from every row's `-(x · wᵀ)`.
fn bias_clear_of_relu_kink(x: &Tensor, w: &Tensor) -> Tensor {
    let products = x.matmul(&w.t());
    let (rows, outputs) = (products.shape()[0], products.shape()[1]);
    let p = products.to_vec();
    let bias: Vec<f32> = (0..outputs)
        .map(|o| {
            let clearance = |b: f32| {
                (0..rows)
                    .map(|r| (p[r * outputs + o] + b).abs())
                    .fold(f32::INFINITY, f32::min)
            };
            (-9..=9)
                .map(|k| k as f32 / 10.0)
                .max_by(|&a, &b| clearance(a).total_cmp(&clearance(b)))
                .unwrap()
        })
        .collect();
    for o in 0..outputs {
        let clearance = (0..rows)
            .map(|r| (p[r * outputs + o] + bias[o]).abs())
            .fold(f32::INFINITY, f32::min);
        assert!(clearance >= 0.1, "no bias clears the kink by 0.1");
    }
    Tensor::from_vec(bias, &[outputs]).set_requires_grad(true)
}

/// Distinct values spaced by more than 2ε in random order, so max/max-pool winners are stable.
fn distinct(shape: &[usize], generator: &mut Generator) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    for i in (1..n).rev() {
        v.swap(i, generator.below(i + 1));
    }
    Tensor::from_vec(v, shape).set_requires_grad(true)
}

/// A differentiable function of some tensors.
pub type OpFunction = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// One entry of [`op_catalogue`]: a named function of some inputs, and inputs to check it at.
pub struct OpCase {
    /// The op's name, with the variant in parentheses (e.g. `matmul (batched)`).
    pub name: &'static str,
    /// The function to check: takes `inputs` (or fresh copies of them) and returns a tensor.
    pub function: OpFunction,
    /// Random inputs in the shapes this case needs; those that require a gradient are checked.
    pub inputs: Vec<Tensor>,
}

/// Every differentiable op of strata-tensor, in plain and awkward variants (transposed, sliced
/// and broadcast inputs), with random inputs drawn from `seed`. `strata gradcheck` and the test
/// suite both run this list through [`gradcheck`](super::gradcheck).
pub fn op_catalogue(seed: u64) -> Vec<OpCase> {
    let g = &mut Generator::seed(seed);
    let mut all = elementwise(g);
    all.extend(matmul_and_reductions(g));
    all.extend(views(g));
    all.extend(convolution_and_pooling(g));
    all.extend(softmax_and_losses(g));
    all.extend(dense_chains(g));
    all.extend(normalisation_and_dropout(g));
    all
}

fn case(name: &'static str, function: OpFunction, inputs: Vec<Tensor>) -> OpCase {
    OpCase {
        name,
        function,
        inputs,
    }
}

/// Binary ops (plain, broadcast, transposed), unary ops and scalar ops.
fn elementwise(g: &mut Generator) -> Vec<OpCase> {
    vec![
        case(
            "add",
            Box::new(|t| t[0].add(&t[1])),
            vec![leaf(&[3, 4], g), leaf(&[3, 4], g)],
        ),
        case(
            "add (broadcast row)",
            Box::new(|t| t[0].add(&t[1])),
            vec![leaf(&[3, 4], g), leaf(&[4], g)],
        ),
        case(
            "sub (broadcast column)",
            Box::new(|t| t[0].sub(&t[1])),
            vec![leaf(&[2, 3, 4], g), leaf(&[3, 1], g)],
        ),
        case(
            "mul (transposed)",
            Box::new(|t| t[0].t().mul(&t[1])),
            vec![leaf(&[4, 3], g), leaf(&[3, 4], g)],
        ),
        case(
            "div",
            Box::new(|t| t[0].div(&t[1])),
            vec![leaf(&[2, 5], g), positive(&[2, 5], g)],
        ),
        case(
            "div (broadcast both)",
            Box::new(|t| t[0].div(&t[1])),
            vec![leaf(&[3, 1], g), positive(&[1, 4], g)],
        ),
        case("neg", Box::new(|t| t[0].neg()), vec![leaf(&[5], g)]),
        case("exp", Box::new(|t| t[0].exp()), vec![leaf(&[2, 3], g)]),
        case("log", Box::new(|t| t[0].log()), vec![positive(&[2, 3], g)]),
        case(
            "powf",
            Box::new(|t| t[0].powf(2.5)),
            vec![positive(&[4], g)],
        ),
        case(
            "sqrt",
            Box::new(|t| t[0].sqrt()),
            vec![positive(&[3, 2], g)],
        ),
        case("relu", Box::new(|t| t[0].relu()), vec![leaf(&[4, 5], g)]),
        case("tanh", Box::new(|t| t[0].tanh()), vec![leaf(&[4, 5], g)]),
        case(
            "sigmoid",
            Box::new(|t| t[0].sigmoid()),
            vec![leaf(&[4, 5], g)],
        ),
        case(
            "add_scalar",
            Box::new(|t| t[0].add_scalar(3.0)),
            vec![leaf(&[3], g)],
        ),
        case(
            "mul_scalar",
            Box::new(|t| t[0].mul_scalar(-1.5)),
            vec![leaf(&[3], g)],
        ),
    ]
}

/// Matrix products (transposed, batched, broadcast batch) and reductions.
fn matmul_and_reductions(g: &mut Generator) -> Vec<OpCase> {
    vec![
        case(
            "matmul",
            Box::new(|t| t[0].matmul(&t[1])),
            vec![leaf(&[3, 5], g), leaf(&[5, 2], g)],
        ),
        case(
            "matmul (both transposed)",
            Box::new(|t| t[0].t().matmul(&t[1].t())),
            vec![leaf(&[5, 3], g), leaf(&[2, 5], g)],
        ),
        case(
            "matmul (batched)",
            Box::new(|t| t[0].matmul(&t[1])),
            vec![leaf(&[2, 3, 4], g), leaf(&[2, 4, 3], g)],
        ),
        case(
            "matmul (broadcast batch)",
            Box::new(|t| t[0].matmul(&t[1])),
            vec![leaf(&[2, 2, 3, 4], g), leaf(&[4, 2], g)],
        ),
        case(
            "sum (axes, keepdim)",
            Box::new(|t| t[0].sum(&[0, 2], true)),
            vec![leaf(&[2, 3, 4], g)],
        ),
        case(
            "sum (last axis)",
            Box::new(|t| t[0].sum(&[-1], false)),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "sum_all (sliced)",
            Box::new(|t| t[0].narrow(1, 1, 2).sum_all()),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "mean",
            Box::new(|t| t[0].mean(&[1], false)),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "mean_all",
            Box::new(|t| t[0].mean_all()),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "max (axis)",
            Box::new(|t| t[0].max(&[1], false)),
            vec![distinct(&[3, 5], g)],
        ),
        case(
            "max (all, transposed)",
            Box::new(|t| t[0].t().max(&[0, 1], true)),
            vec![distinct(&[3, 4], g)],
        ),
    ]
}

/// Views and the copies that undo them, each multiplied by a second input so every element
/// of the view gets its own gradient.
fn views(g: &mut Generator) -> Vec<OpCase> {
    vec![
        case(
            "reshape",
            Box::new(|t| t[0].reshape(&[6, 2]).mul(&t[1])),
            vec![leaf(&[3, 4], g), leaf(&[6, 2], g)],
        ),
        case(
            "reshape (of transposed)",
            Box::new(|t| t[0].t().reshape(&[12]).mul(&t[1])),
            vec![leaf(&[3, 4], g), leaf(&[12], g)],
        ),
        case(
            "permute",
            Box::new(|t| t[0].permute(&[2, 0, 1]).mul(&t[1])),
            vec![leaf(&[2, 3, 4], g), leaf(&[4, 2, 3], g)],
        ),
        case(
            "transpose",
            Box::new(|t| t[0].transpose(0, -1).mul(&t[1])),
            vec![leaf(&[2, 3, 4], g), leaf(&[4, 3, 2], g)],
        ),
        case(
            "narrow",
            Box::new(|t| t[0].narrow(0, 1, 2).mul(&t[1])),
            vec![leaf(&[4, 3], g), leaf(&[2, 3], g)],
        ),
        case(
            "expand",
            Box::new(|t| t[0].expand(&[3, 2, 4]).mul(&t[1])),
            vec![leaf(&[2, 1], g), leaf(&[3, 2, 4], g)],
        ),
        case(
            "squeeze",
            Box::new(|t| t[0].squeeze(1).mul(&t[1])),
            vec![leaf(&[3, 1, 2], g), leaf(&[3, 2], g)],
        ),
        case(
            "unsqueeze",
            Box::new(|t| t[0].unsqueeze(0).mul(&t[1])),
            vec![leaf(&[3, 2], g), leaf(&[1, 3, 2], g)],
        ),
        case(
            "contiguous",
            Box::new(|t| t[0].t().contiguous().mul(&t[1])),
            vec![leaf(&[3, 2], g), leaf(&[2, 3], g)],
        ),
        case(
            "flatten_from",
            Box::new(|t| t[0].flatten_from(1).mul(&t[1])),
            vec![leaf(&[2, 2, 3], g), leaf(&[2, 6], g)],
        ),
    ]
}

/// Convolution (strided, padded, of a sliced input) and max and average pooling.
fn convolution_and_pooling(g: &mut Generator) -> Vec<OpCase> {
    vec![
        case(
            "conv2d",
            Box::new(|t| t[0].conv2d(&t[1], Some(&t[2]), (1, 1), (0, 0))),
            vec![
                leaf(&[2, 2, 5, 5], g),
                leaf(&[3, 2, 3, 3], g),
                leaf(&[3], g),
            ],
        ),
        case(
            "conv2d (stride 2, pad 1, no bias)",
            Box::new(|t| t[0].conv2d(&t[1], None, (2, 2), (1, 1))),
            vec![leaf(&[2, 3, 6, 5], g), leaf(&[2, 3, 3, 2], g)],
        ),
        case(
            "conv2d (sliced input)",
            Box::new(|t| t[0].narrow(3, 1, 4).conv2d(&t[1], None, (1, 1), (1, 1))),
            vec![leaf(&[1, 2, 4, 6], g), leaf(&[2, 2, 3, 3], g)],
        ),
        case(
            "max_pool2d",
            Box::new(|t| t[0].max_pool2d((2, 2), (2, 2), (0, 0))),
            vec![distinct(&[2, 2, 4, 4], g)],
        ),
        case(
            "max_pool2d (overlapping, padded)",
            Box::new(|t| t[0].max_pool2d((3, 3), (2, 2), (1, 1))),
            vec![distinct(&[1, 2, 5, 5], g)],
        ),
        case(
            "avg_pool2d",
            Box::new(|t| t[0].avg_pool2d((2, 2), (2, 2), (0, 0))),
            vec![leaf(&[2, 2, 4, 4], g)],
        ),
        case(
            "avg_pool2d (overlapping, padded)",
            Box::new(|t| t[0].avg_pool2d((3, 3), (2, 2), (1, 1))),
            vec![leaf(&[1, 2, 5, 5], g)],
        ),
    ]
}

/// Log-softmax, softmax and the losses.
fn softmax_and_losses(g: &mut Generator) -> Vec<OpCase> {
    let labels3: Vec<u32> = vec![2, 0, 1];
    let labels4: Vec<u32> = vec![1, 4, 0, 3];
    vec![
        case(
            "log_softmax",
            Box::new(|t| t[0].log_softmax(-1)),
            vec![leaf(&[3, 5], g)],
        ),
        case(
            "log_softmax (axis 0)",
            Box::new(|t| t[0].log_softmax(0)),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "softmax",
            Box::new(|t| t[0].softmax(1)),
            vec![leaf(&[2, 4], g)],
        ),
        case(
            "softmax_cross_entropy",
            Box::new(move |t| t[0].softmax_cross_entropy(&labels3)),
            vec![leaf(&[3, 4], g)],
        ),
        case(
            "nll_loss",
            Box::new(move |t| t[0].log_softmax(-1).nll_loss(&labels4)),
            vec![leaf(&[4, 5], g)],
        ),
        case(
            "mse_loss",
            Box::new(|t| t[0].mse_loss(&t[1])),
            vec![leaf(&[3, 4], g), leaf(&[3, 4], g)],
        ),
    ]
}

/// The fused narrow-MLP chain and the composed path it falls back to.
fn dense_chains(g: &mut Generator) -> Vec<OpCase> {
    vec![
        {
            let (x, w0, w1, b1) = (
                leaf(&[4, 3], g),
                leaf(&[5, 3], g),
                leaf(&[2, 5], g),
                leaf(&[2], g),
            );
            let b0 = bias_clear_of_relu_kink(&x, &w0);
            case(
                "dense_chain (fused: 3 -> 5 -> 2, ReLU between)",
                Box::new(|t| {
                    t[0].dense_chain(&[
                        DenseStage {
                            weight: &t[1],
                            bias: Some(&t[2]),
                            relu: true,
                        },
                        DenseStage {
                            weight: &t[3],
                            bias: Some(&t[4]),
                            relu: false,
                        },
                    ])
                }),
                vec![x, w0, b0, w1, b1],
            )
        },
        case(
            "dense_chain (composed: 20 wide, no bias)",
            Box::new(|t| {
                t[0].dense_chain(&[
                    DenseStage {
                        weight: &t[1],
                        bias: None,
                        relu: true,
                    },
                    DenseStage {
                        weight: &t[2],
                        bias: None,
                        relu: true,
                    },
                ])
            }),
            vec![leaf(&[3, 20], g), leaf(&[4, 20], g), leaf(&[2, 4], g)],
        ),
    ]
}

/// Batch normalisation (train and eval) and dropout.
fn normalisation_and_dropout(g: &mut Generator) -> Vec<OpCase> {
    vec![
        case(
            "batch_norm (train, 2-d)",
            Box::new(|t| t[0].batch_norm_train(Some(&t[1]), Some(&t[2]), 1e-5).0),
            vec![leaf(&[2, 3, 3, 2], g), positive(&[3], g), leaf(&[3], g)],
        ),
        case(
            "batch_norm (train, 1-d, no affine)",
            Box::new(|t| t[0].batch_norm_train(None, None, 1e-5).0),
            vec![leaf(&[6, 4], g)],
        ),
        case(
            "batch_norm (eval)",
            Box::new(|t| {
                let mean = Tensor::from_vec(vec![0.1, -0.2], &[2]);
                let var = Tensor::from_vec(vec![0.5, 2.0], &[2]);
                t[0].batch_norm_eval(&mean, &var, Some(&t[1]), Some(&t[2]), 1e-5)
            }),
            vec![leaf(&[3, 2, 2, 2], g), leaf(&[2], g), leaf(&[2], g)],
        ),
        case(
            "dropout",
            Box::new(|t| t[0].dropout(0.3, true, &mut Generator::seed(5))),
            vec![leaf(&[4, 6], g)],
        ),
    ]
}
