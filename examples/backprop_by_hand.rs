//! Backpropagation by hand for a two-layer network, next to autograd's answer.
//!
//! The network is `y = W2 · tanh(W1 · x + b1) + b2` on a batch of four examples, with the mean
//! squared error against a target. The backward pass below is the chain rule written out one
//! layer at a time, in shapes; autograd must agree with it to rounding.
//!
//!     cargo run --release --example backprop_by_hand

use strata::prelude::*;

fn main() -> Result<(), String> {
    let g = &mut Generator::seed(1);
    // Batch N = 4, inputs D = 3, hidden H = 5, outputs K = 2. Rows are examples.
    let x = Tensor::normal(&[4, 3], 0.0, 1.0, g);
    let target = Tensor::normal(&[4, 2], 0.0, 1.0, g);
    let w1 = Tensor::normal(&[3, 5], 0.0, 0.5, g).set_requires_grad(true);
    let b1 = Tensor::normal(&[5], 0.0, 0.1, g).set_requires_grad(true);
    let w2 = Tensor::normal(&[5, 2], 0.0, 0.5, g).set_requires_grad(true);
    let b2 = Tensor::normal(&[2], 0.0, 0.1, g).set_requires_grad(true);

    // Forward, keeping every intermediate the backward pass needs.
    let z1 = x.matmul(&w1).add(&b1); //           [4,5]
    let h = z1.tanh(); //                         [4,5]
    let y = h.matmul(&w2).add(&b2); //            [4,2]
    let loss = y.sub(&target).powf(2.0).mean_all(); // scalar: (1/8) Σ (y - t)²
    println!("loss = {:.6}", loss.item());

    // Backward by hand, from the loss down. No graph is recorded here.
    let by_hand = {
        let _guard = no_grad();
        let count = y.numel() as f32;
        let dy = y.sub(&target).mul_scalar(2.0 / count); //        dL/dy   [4,2]
        let dw2 = h.t().matmul(&dy); //                            hᵀ·dy   [5,2]
        let db2 = dy.sum(&[0], false); //                             Σ rows  [2]
        let dh = dy.matmul(&w2.t()); //                            dy·W2ᵀ  [4,5]
        let dz1 = dh.mul(&h.mul(&h).neg().add_scalar(1.0)); //     ⊙ tanh' = 1 - h²
        let dw1 = x.t().matmul(&dz1); //                           xᵀ·dz1  [3,5]
        let db1 = dz1.sum(&[0], false); //                                    [5]
        [dw1, db1, dw2, db2]
    };

    // Autograd's answer for the same graph.
    loss.backward();
    let names = ["W1", "b1", "W2", "b2"];
    let mut worst = 0f32;
    for ((name, parameter), mine) in names.iter().zip([&w1, &b1, &w2, &b2]).zip(&by_hand) {
        let autograd = parameter
            .grad()
            .ok_or(format!("{name} received no gradient"))?;
        let difference = autograd
            .to_vec()
            .iter()
            .zip(mine.to_vec())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "d loss / d {name} {:?}: by hand {:?}",
            parameter.shape(),
            rounded(&mine.to_vec())
        );
        println!(
            "{:>w$}  autograd {:?}   max |difference| {difference:.2e}",
            "",
            rounded(&autograd.to_vec()),
            w = name.len() + 14,
        );
        worst = worst.max(difference);
    }
    if worst > 1e-5 {
        return Err(format!("by hand and autograd differ by {worst:e}"));
    }
    println!("by hand and autograd agree (largest difference {worst:.1e})");
    Ok(())
}

fn rounded(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| (v * 1e4).round() / 1e4).collect()
}
