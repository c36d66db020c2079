//! A differentiable op of your own: SiLU (also called swish), `x · sigmoid(x)`, written as a
//! user of the library would, with its forward and backward passes. It joins the graph like a
//! built-in op, trains inside a network, and passes the same numerical gradient check.
//!
//!     cargo run --release --example custom_op

use strata::prelude::*;
use strata::tensor::gradcheck::{gradcheck, GradcheckOptions};

/// silu(x) = x · σ(x);  d silu / dx = σ(x) · (1 + x · (1 - σ(x))).
struct Silu;

impl Function for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }

    fn forward(&self, ctx: &mut Context, inputs: &[Tensor]) -> Tensor {
        let x = &inputs[0];
        let s = x.sigmoid();
        ctx.save_for_backward(&[x, &s]);
        x.mul(&s)
    }

    fn backward(&self, ctx: &Context, grad_output: &Tensor) -> Vec<Option<Tensor>> {
        let [x, s] = ctx.saved_tensors() else {
            unreachable!("forward saved x and σ(x)")
        };
        let one_minus_s = s.neg().add_scalar(1.0);
        let local = s.mul(&x.mul(&one_minus_s).add_scalar(1.0));
        vec![Some(grad_output.mul(&local))]
    }
}

/// The op as a layer, so it can sit in a `Sequential`.
struct SiluLayer;

impl Module for SiluLayer {
    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::apply(Silu, &[x])
    }
    fn describe(&self) -> String {
        "SiLU()".into()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The numerical check: central differences against the hand-written backward.
    let g = &mut Generator::seed(5);
    let x = Tensor::normal(&[3, 4], 0.0, 2.0, g).set_requires_grad(true);
    let report = gradcheck(
        |t| Tensor::apply(Silu, &[&t[0]]),
        &[x],
        &GradcheckOptions::default(),
    )?;
    println!(
        "gradcheck: {} elements, largest error {:.2e}",
        report.elements_checked, report.max_abs_error
    );

    // 2. Inside a network: fit y = sin(x) on [-3, 3] with a SiLU hidden layer.
    let xs: Vec<f32> = (0..64).map(|i| -3.0 + 6.0 * i as f32 / 63.0).collect();
    let ys: Vec<f32> = xs.iter().map(|v| v.sin()).collect();
    let (inputs, targets) = (
        Tensor::from_vec(xs, &[64, 1]),
        Tensor::from_vec(ys, &[64, 1]),
    );
    let model = Sequential::new(vec![
        Box::new(Linear::new(1, 32, g)),
        Box::new(SiluLayer),
        Box::new(Linear::new(32, 1, g)),
    ]);
    println!("{}", model.describe());
    let mut adam = Adam::new(model.parameters(), 0.02);
    let mut first = None;
    let mut loss_value = 0.0;
    for step in 0..400 {
        let loss = model.forward(&inputs).mse_loss(&targets);
        loss_value = loss.item();
        first.get_or_insert(loss_value);
        adam.zero_grad();
        loss.backward();
        adam.step();
        if step % 100 == 0 {
            println!("step {step:>3}: mse {loss_value:.5}");
        }
    }
    let first = first.unwrap_or(f32::NAN);
    println!("mse fell from {first:.4} to {loss_value:.5}");
    if loss_value >= 0.05 * first {
        return Err("the network with the custom op did not learn sin(x)".into());
    }
    Ok(())
}
