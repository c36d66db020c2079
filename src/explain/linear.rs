//! A fully connected layer, PyTorch's layout: x [N,in], W [out,in], b [out].
//!
//!   forward:  y[n,o]  = Σ_i x[n,i] · W[o,i] + b[o]          (y = x · Wᵀ + b, [N,out])
//!   backward: dx = dy · W     [N,out]·[out,in] = [N,in]
//!             dW = dyᵀ · x    [out,N]·[N,in]   = [out,in]
//!             db = Σ_n dy[n]  [out]

use super::{backpropagate, check_size, leaf, num, small_integers, sum_of_products, Options, Page};
use strata_nn::layers::Linear;
use strata_nn::Module;
use strata_tensor::Generator;

pub(super) fn explain(options: &Options, page: &mut Page) -> Result<(), String> {
    let n = check_size("--batch", options.batch.unwrap_or(2), 8)?;
    let fin = check_size("--inputs", options.inputs.unwrap_or(3), 8)?;
    let fout = check_size("--outputs", options.outputs.unwrap_or(2), 8)?;
    let mut g = Generator::seed(options.seed.unwrap_or(0));
    let x = small_integers(n * fin, -2, 3, &mut g);
    let w = small_integers(fout * fin, -2, 2, &mut g);
    let b = small_integers(fout, -1, 1, &mut g);

    page.line(format!(
        "linear: y = x · Wᵀ + b for a batch of {n}, {fin} features in, {fout} out"
    ));
    page.line(format!(
        "(x [{n},{fin}]; W [{fout},{fin}], one row per output, as PyTorch stores it; b [{fout}])"
    ));
    page.blank();
    page.matrix(&format!("x [{n},{fin}]:"), &x, n, fin);
    page.matrix(&format!("W [{fout},{fin}]:"), &w, fout, fin);
    page.matrix(&format!("b [{fout}]:"), &b, 1, fout);

    page.heading("Forward: each output is a row of x dotted with a row of W, plus its bias");
    let mut y = vec![0.0; n * fout];
    let mut lines = Vec::new();
    for r in 0..n {
        for o in 0..fout {
            let terms: Vec<(f64, f64)> =
                (0..fin).map(|i| (x[r * fin + i], w[o * fin + i])).collect();
            y[r * fout + o] = terms.iter().map(|(p, q)| p * q).sum::<f64>() + b[o];
            lines.push(format!(
                "y[{r},{o}] = {} + {} = {}",
                sum_of_products(&terms),
                num(b[o]),
                num(y[r * fout + o])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix(&format!("y [{n},{fout}]:"), &y, n, fout);

    let dy = page.upstream("y", &format!("[{n},{fout}]"), n, fout);
    page.line(format!(
        "dL/dx = dL/dy · W: [{n},{fout}]·[{fout},{fin}] = [{n},{fin}]; x[n,i] reached every \
         output o through W[o,i]."
    ));
    let mut dx = vec![0.0; n * fin];
    let mut lines = Vec::new();
    for r in 0..n {
        for i in 0..fin {
            let terms: Vec<(f64, f64)> = (0..fout)
                .map(|o| (dy[r * fout + o], w[o * fin + i]))
                .collect();
            dx[r * fin + i] = terms.iter().map(|(p, q)| p * q).sum();
            lines.push(format!(
                "dx[{r},{i}] = {} = {}",
                sum_of_products(&terms),
                num(dx[r * fin + i])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix("dL/dx:", &dx, n, fin);
    page.blank();
    page.line(format!(
        "dL/dW = dL/dyᵀ · x: [{fout},{n}]·[{n},{fin}] = [{fout},{fin}]; each example adds its \
         own outer product dy[n]ᵀ·x[n]."
    ));
    let mut dw = vec![0.0; fout * fin];
    let mut lines = Vec::new();
    for o in 0..fout {
        for i in 0..fin {
            let terms: Vec<(f64, f64)> =
                (0..n).map(|r| (dy[r * fout + o], x[r * fin + i])).collect();
            dw[o * fin + i] = terms.iter().map(|(p, q)| p * q).sum();
            lines.push(format!(
                "dW[{o},{i}] = {} = {}",
                sum_of_products(&terms),
                num(dw[o * fin + i])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix("dL/dW:", &dw, fout, fin);
    page.blank();
    page.line(format!(
        "dL/db = Σ over the batch of dL/dy: [{fout}]; the bias is added to every example."
    ));
    let db: Vec<f64> = (0..fout)
        .map(|o| (0..n).map(|r| dy[r * fout + o]).sum())
        .collect();
    let lines = (0..fout)
        .map(|o| {
            let parts: Vec<String> = (0..n).map(|r| num(dy[r * fout + o])).collect();
            format!("db[{o}] = {} = {}", parts.join(" + "), num(db[o]))
        })
        .collect();
    page.term_lines(lines);

    page.heading("Check: strata's Linear layer and its autograd");
    let layer = Linear {
        weight: leaf(&w, &[fout, fin]),
        bias: Some(leaf(&b, &[fout])),
    };
    let xt = leaf(&x, &[n, fin]);
    let yt = layer.forward(&xt);
    page.check("y", &y, Some(yt.detach()));
    backpropagate(&yt, &dy);
    page.check("dL/dx", &dx, xt.grad());
    page.check("dL/dW", &dw, layer.weight.grad());
    page.check("dL/db", &db, layer.bias.as_ref().and_then(|b| b.grad()));
    Ok(())
}
