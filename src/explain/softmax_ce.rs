//! Softmax followed by cross-entropy, fused, on logits z [N,C] with labels t [N].
//!
//!   forward:  m_n = max_j z[n,j]   (subtracted so exp never overflows; it cancels)
//!             p[n,j] = exp(z[n,j] − m_n) / Σ_k exp(z[n,k] − m_n)
//!             L = (1/N) Σ_n −log p[n, t_n]
//!   backward: dL/dz[n,j] = (p[n,j] − [j = t_n]) / N

use super::{check_size, leaf, list, num, small_integers, Options, Page};
use strata_tensor::Generator;

pub(super) fn explain(options: &Options, page: &mut Page) -> Result<(), String> {
    let n = check_size("--batch", options.batch.unwrap_or(2), 8)?;
    let c = check_size("--inputs (classes)", options.inputs.unwrap_or(3), 10)?;
    if c < 2 {
        return Err("softmax-cross-entropy needs at least 2 classes (--inputs)".into());
    }
    let mut g = Generator::seed(options.seed.unwrap_or(0));
    let z = small_integers(n * c, -2, 3, &mut g);
    let labels: Vec<usize> = (0..n).map(|_| g.below(c)).collect();

    page.line(format!(
        "softmax-cross-entropy: {n} examples, {c} classes; logits z [{n},{c}], labels [{n}]"
    ));
    page.blank();
    page.matrix(
        &format!("z [{n},{c}] (one row of scores per example):"),
        &z,
        n,
        c,
    );
    page.line(format!(
        "labels: {:?} (the correct class of each row)",
        labels
    ));

    page.heading("Forward, row by row");
    let mut p = vec![0.0; n * c];
    let mut loss = 0.0;
    for r in 0..n {
        let row = &z[r * c..(r + 1) * c];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        for j in 0..c {
            p[r * c + j] = e[j] / sum;
        }
        let nll = -p[r * c + labels[r]].ln();
        loss += nll / n as f64;
        page.line(format!("row {r}: z = {}, label {}", list(row), labels[r]));
        page.line(format!(
            "  subtract the largest score m = {}; exp(z − m) = [{}]",
            num(m),
            e.iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        page.line(format!(
            "  their sum = {sum:.4}; softmax p = exp(z − m) / sum = [{}]",
            (0..c)
                .map(|j| format!("{:.4}", p[r * c + j]))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        page.line(format!(
            "  loss of the row = −log p[{}] = −log {:.4} = {nll:.4}",
            labels[r],
            p[r * c + labels[r]]
        ));
    }
    page.line(format!("L = mean over the {n} rows = {loss:.4}"));

    page.heading("Backward");
    page.line(format!(
        "dL/dz[n,j] = (p[n,j] − 1 if j is the label else p[n,j]) / N, N = {n}: the softmax and the \
         log cancel into 'predicted minus wanted'. Shape [{n},{c}], like z."
    ));
    let mut dz = vec![0.0; n * c];
    let mut lines = Vec::new();
    for r in 0..n {
        for j in 0..c {
            let target = if j == labels[r] { 1.0 } else { 0.0 };
            dz[r * c + j] = (p[r * c + j] - target) / n as f64;
            lines.push(format!(
                "dz[{r},{j}] = ({:.4} − {}) / {n} = {:.4}",
                p[r * c + j],
                num(target),
                dz[r * c + j]
            ));
        }
    }
    page.term_lines(lines);
    page.matrix("dL/dz:", &dz, n, c);
    page.line("(each row of dL/dz sums to 0: raising every score of a row changes nothing)");

    page.heading("Check: the same op through strata and its autograd");
    let zt = leaf(&z, &[n, c]);
    let label_ids: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let lt = zt.softmax_cross_entropy(&label_ids);
    page.check("L", &[loss], Some(lt.detach()));
    lt.backward();
    page.check("dL/dz", &dz, zt.grad());
    Ok(())
}
