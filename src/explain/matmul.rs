//! Matrix product C = A · B, A [M,K], B [K,N], C [M,N].
//!
//!   forward:  C[i,j]  = Σ_k A[i,k] · B[k,j]
//!   backward: dA = dC · Bᵀ   [M,N]·[N,K] = [M,K]
//!             dB = Aᵀ · dC   [K,M]·[M,N] = [K,N]

use super::{backpropagate, check_size, leaf, num, small_integers, sum_of_products, Options, Page};
use strata_tensor::Generator;

pub(super) fn explain(options: &Options, page: &mut Page) -> Result<(), String> {
    let m = check_size("--batch (M)", options.batch.unwrap_or(2), 8)?;
    let kk = check_size("--inputs (K)", options.inputs.unwrap_or(3), 8)?;
    let n = check_size("--outputs (N)", options.outputs.unwrap_or(2), 8)?;
    let mut g = Generator::seed(options.seed.unwrap_or(0));
    let a = small_integers(m * kk, -2, 3, &mut g);
    let b = small_integers(kk * n, -2, 3, &mut g);

    page.line(format!(
        "matmul: C = A · B with A [{m},{kk}] and B [{kk},{n}], so C is [{m},{n}]"
    ));
    page.line("(the inner sizes must agree: A's columns meet B's rows)");
    page.blank();
    page.matrix(&format!("A [{m},{kk}]:"), &a, m, kk);
    page.matrix(&format!("B [{kk},{n}]:"), &b, kk, n);

    page.heading("Forward: row i of A times column j of B, summed");
    let mut c = vec![0.0; m * n];
    let mut lines = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let terms: Vec<(f64, f64)> = (0..kk).map(|p| (a[i * kk + p], b[p * n + j])).collect();
            c[i * n + j] = terms.iter().map(|(x, y)| x * y).sum();
            lines.push(format!(
                "C[{i},{j}] = {} = {}",
                sum_of_products(&terms),
                num(c[i * n + j])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix(&format!("C [{m},{n}]:"), &c, m, n);

    let dc = page.upstream("C", &format!("[{m},{n}]"), m, n);
    page.line(format!(
        "dL/dA = dL/dC · Bᵀ: [{m},{n}]·[{n},{kk}] = [{m},{kk}], A's shape. A[i,k] met B[k,j] in \
         every C[i,j], so dA[i,k] = Σ_j dC[i,j] · B[k,j]."
    ));
    let mut da = vec![0.0; m * kk];
    let mut lines = Vec::new();
    for i in 0..m {
        for p in 0..kk {
            let terms: Vec<(f64, f64)> = (0..n).map(|j| (dc[i * n + j], b[p * n + j])).collect();
            da[i * kk + p] = terms.iter().map(|(x, y)| x * y).sum();
            lines.push(format!(
                "dA[{i},{p}] = {} = {}",
                sum_of_products(&terms),
                num(da[i * kk + p])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix("dL/dA:", &da, m, kk);
    page.blank();
    page.line(format!(
        "dL/dB = Aᵀ · dL/dC: [{kk},{m}]·[{m},{n}] = [{kk},{n}], B's shape; dB[k,j] = Σ_i A[i,k] · \
         dC[i,j]."
    ));
    let mut db = vec![0.0; kk * n];
    let mut lines = Vec::new();
    for p in 0..kk {
        for j in 0..n {
            let terms: Vec<(f64, f64)> = (0..m).map(|i| (a[i * kk + p], dc[i * n + j])).collect();
            db[p * n + j] = terms.iter().map(|(x, y)| x * y).sum();
            lines.push(format!(
                "dB[{p},{j}] = {} = {}",
                sum_of_products(&terms),
                num(db[p * n + j])
            ));
        }
    }
    page.term_lines(lines);
    page.matrix("dL/dB:", &db, kk, n);

    page.heading("Check: the same op through strata and its autograd");
    let at = leaf(&a, &[m, kk]);
    let bt = leaf(&b, &[kk, n]);
    let ct = at.matmul(&bt);
    page.check("C", &c, Some(ct.detach()));
    backpropagate(&ct, &dc);
    page.check("dL/dA", &da, at.grad());
    page.check("dL/dB", &db, bt.grad());
    Ok(())
}
