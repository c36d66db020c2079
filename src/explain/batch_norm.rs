//! Batch normalisation in training mode on x [N,C]: statistics per channel (column).
//!
//!   forward:  μ = (1/N) Σ_n x[n],  σ² = (1/N) Σ_n (x[n] − μ)²   (biased, as in training)
//!             x̂ = (x − μ) / √(σ² + ε),  y = γ · x̂ + β
//!   backward: dβ = Σ_n dy,  dγ = Σ_n dy · x̂
//!             dx = γ / (N √(σ² + ε)) · (N · dy − Σ_n dy − x̂ · Σ_n dy · x̂)

use super::{
    backpropagate, check_size, factor, leaf, list, num, small_integers, sum_expression,
    upstream_gradient, Options, Page,
};
use strata_tensor::Generator;

const EPS: f64 = 1e-5;

fn decimals(values: impl IntoIterator<Item = f64>) -> String {
    let parts: Vec<String> = values.into_iter().map(|v| format!("{v:.4}")).collect();
    format!("[{}]", parts.join(", "))
}

pub(super) fn explain(options: &Options, page: &mut Page) -> Result<(), String> {
    let n = check_size("--batch", options.batch.unwrap_or(4), 8)?;
    let c = check_size("--inputs (channels)", options.inputs.unwrap_or(2), 6)?;
    if n < 2 {
        return Err("batch_norm in training mode needs a batch of at least 2 (--batch)".into());
    }
    let mut g = Generator::seed(options.seed.unwrap_or(0));
    let x = small_integers(n * c, -2, 5, &mut g);
    let gamma = small_integers(c, 1, 3, &mut g);
    let beta = small_integers(c, -1, 1, &mut g);
    let dy = upstream_gradient(n * c);

    page.line(format!(
        "batch_norm (training mode): x [{n},{c}], a batch of {n} with {c} channels; each channel \
         (column) is normalised with its own batch mean and variance, ε = {EPS:e}"
    ));
    page.line("(for images [N,C,H,W] the statistics run over N·H·W values per channel)");
    page.blank();
    page.matrix(&format!("x [{n},{c}]:"), &x, n, c);
    page.line(format!(
        "γ (weight) = {}, β (bias) = {}",
        list(&gamma),
        list(&beta)
    ));
    page.matrix(
        &format!("dL/dy [{n},{c}], the gradient arriving from the layers above:"),
        &dy,
        n,
        c,
    );

    let mut y = vec![0.0; n * c];
    let mut dx = vec![0.0; n * c];
    let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let col: Vec<f64> = (0..n).map(|r| x[r * c + ch]).collect();
        let d: Vec<f64> = (0..n).map(|r| dy[r * c + ch]).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let std = (var + EPS).sqrt();
        let xhat: Vec<f64> = col.iter().map(|v| (v - mean) / std).collect();
        page.heading(&format!("Channel {ch}: forward"));
        page.line(format!("  values {}", list(&col)));
        page.line(format!(
            "  μ = ({}) / {n} = {mean:.4}",
            sum_expression(&col)
        ));
        page.line(format!(
            "  σ² = mean of (x − μ)² = mean of {} = {var:.4}",
            decimals(col.iter().map(|v| (v - mean).powi(2)))
        ));
        page.line(format!("  √(σ² + ε) = {std:.4}"));
        page.line(format!(
            "  x̂ = (x − μ) / √(σ² + ε) = {}",
            decimals(xhat.iter().copied())
        ));
        page.line(format!(
            "  y = γ·x̂ + β = {}·x̂ + {} = {}",
            num(gamma[ch]),
            num(beta[ch]),
            decimals(xhat.iter().map(|h| gamma[ch] * h + beta[ch]))
        ));
        for r in 0..n {
            y[r * c + ch] = gamma[ch] * xhat[r] + beta[ch];
        }

        page.heading(&format!("Channel {ch}: backward"));
        let sum_dy: f64 = d.iter().sum();
        let sum_dy_xhat: f64 = d.iter().zip(&xhat).map(|(a, b)| a * b).sum();
        dbeta[ch] = sum_dy;
        dgamma[ch] = sum_dy_xhat;
        page.line(format!(
            "  dL/dβ = Σ dy = {} = {}",
            sum_expression(&d),
            num(sum_dy)
        ));
        page.line(format!("  dL/dγ = Σ dy · x̂ = {sum_dy_xhat:.4}"));
        page.line(
            "  dL/dx = γ / (N·√(σ² + ε)) · (N·dy − Σdy − x̂·Σ(dy·x̂)): every x moved μ and σ², \
             which moved every output of the channel, hence the two sums",
        );
        let scale = gamma[ch] / (n as f64 * std);
        page.line(format!(
            "  with γ / (N·√(σ² + ε)) = {} / ({n}·{std:.4}) = {scale:.4}:",
            num(gamma[ch])
        ));
        for r in 0..n {
            dx[r * c + ch] = scale * (n as f64 * d[r] - sum_dy - xhat[r] * sum_dy_xhat);
            page.line(format!(
                "    dx[{r},{ch}] = {scale:.4} · ({n}·{} − {} − {}·{}) = {:.4}",
                factor(d[r]),
                factor(sum_dy),
                factor(xhat[r]),
                factor(sum_dy_xhat),
                dx[r * c + ch]
            ));
        }
    }
    page.blank();
    page.matrix(&format!("y [{n},{c}]:"), &y, n, c);
    page.matrix(&format!("dL/dx [{n},{c}]:"), &dx, n, c);

    page.heading("Check: the same op through strata and its autograd");
    let xt = leaf(&x, &[n, c]);
    let gt = leaf(&gamma, &[c]);
    let bt = leaf(&beta, &[c]);
    let (yt, _) = xt.batch_norm_train(Some(&gt), Some(&bt), EPS as f32);
    page.check("y", &y, Some(yt.detach()));
    backpropagate(&yt, &dy);
    page.check("dL/dx", &dx, xt.grad());
    page.check("dL/dγ", &dgamma, gt.grad());
    page.check("dL/dβ", &dbeta, bt.grad());
    Ok(())
}
