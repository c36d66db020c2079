//! softmax, log-softmax and fused softmax cross-entropy against f64 references.

use crate::softmax_ce::{
    log_softmax_backward, log_softmax_forward, softmax_cross_entropy_backward,
    softmax_cross_entropy_forward, softmax_forward,
};
use approx::relative_eq;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// f64 log-softmax of one row, the textbook way (stable because of the max shift).
fn naive_log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

/// Within `tol` absolutely or relatively, element by element.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            relative_eq!(g as f64, w, epsilon = tol, max_relative = tol),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn forward_kernels_match_f64_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (rows, cols) in [(1, 1), (3, 10), (100, 10), (7, 1000), (2000, 3)] {
        let x = random(&mut rng, rows * cols, 8.0);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let want_log: Vec<f64> = x.chunks(cols).flat_map(naive_log_softmax).collect();
        let want_p: Vec<f64> = want_log.iter().map(|v| v.exp()).collect();

        let mut out = vec![f32::NAN; rows * cols];
        log_softmax_forward(rows, cols, &x, &mut out);
        assert_close("log_softmax", &out, &want_log, 1e-5);
        softmax_forward(rows, cols, &x, &mut out);
        assert_close("softmax", &out, &want_p, 1e-5);

        let mut probs = vec![f32::NAN; rows * cols];
        let loss = softmax_cross_entropy_forward(rows, cols, &x, &labels, &mut probs);
        assert_close("probs", &probs, &want_p, 1e-5);
        let want_loss = -labels
            .iter()
            .enumerate()
            .map(|(r, &l)| want_log[r * cols + l as usize])
            .sum::<f64>()
            / rows as f64;
        assert!(
            (loss as f64 - want_loss).abs() < 1e-5 * (1.0 + want_loss),
            "{loss} vs {want_loss}"
        );
    }
}

#[test]
fn cross_entropy_known_value() {
    let mut probs = [0.0; 3];
    let loss = softmax_cross_entropy_forward(1, 3, &[0.0, 0.0, 0.0], &[1], &mut probs);
    assert!((loss - 3f32.ln()).abs() < 1e-6, "{loss}");
    assert_eq!(probs, [1.0 / 3.0; 3]);
    // A confident right answer: -ln(e^2 / (e^2 + 2)).
    let loss = softmax_cross_entropy_forward(1, 3, &[0.0, 2.0, 0.0], &[1], &mut probs);
    let want = -(2f64.exp() / (2f64.exp() + 2.0)).ln();
    assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
}

#[test]
fn huge_logits_stay_finite() {
    let x = [1e4, -1e4, 0.0, -1e4, 1e4, 1e4];
    let mut probs = [0.0; 6];
    // Row 0, label 1: the wrong class by 2e4 -> loss 2e4. Row 1, label 2: a tie of two -> ln 2.
    let loss = softmax_cross_entropy_forward(2, 3, &x, &[1, 2], &mut probs);
    assert!(loss.is_finite());
    assert!((loss - (2e4 + 2f32.ln()) / 2.0).abs() < 1e-2, "{loss}");
    assert!(probs.iter().all(|p| p.is_finite()));
    let mut out = [0.0; 6];
    log_softmax_forward(2, 3, &x, &mut out);
    assert!(out.iter().all(|v| v.is_finite()));
    assert_eq!(out[0], 0.0);
    assert_eq!(out[1], -2e4);
}

#[test]
fn cross_entropy_backward_matches_formula_and_rows_sum_to_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (rows, cols) = (5, 7);
    let x = random(&mut rng, rows * cols, 3.0);
    let labels = [0u32, 6, 3, 3, 1];
    let mut probs = vec![0.0; rows * cols];
    softmax_cross_entropy_forward(rows, cols, &x, &labels, &mut probs);
    let mut grad = vec![f32::NAN; rows * cols];
    softmax_cross_entropy_backward(rows, cols, &probs, &labels, 2.0, &mut grad);
    for r in 0..rows {
        let row = &grad[r * cols..(r + 1) * cols];
        assert!(
            row.iter().sum::<f32>().abs() < 1e-6,
            "row {r} sums to {}",
            row.iter().sum::<f32>()
        );
        for c in 0..cols {
            let onehot = if c == labels[r] as usize { 1.0 } else { 0.0 };
            let want = (probs[r * cols + c] - onehot) * 2.0 / rows as f32;
            assert!((row[c] - want).abs() < 1e-7);
        }
    }
    // Finite differences of the loss itself, in f32 with a coarse step.
    let h = 1e-2f32;
    for i in [0, 6, 13, 20, 34] {
        let mut xp = x.clone();
        xp[i] += h;
        let mut xm = x.clone();
        xm[i] -= h;
        let lp = softmax_cross_entropy_forward(rows, cols, &xp, &labels, &mut probs);
        let lm = softmax_cross_entropy_forward(rows, cols, &xm, &labels, &mut probs);
        let fd = 2.0 * (lp - lm) / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() < 2e-3,
            "elem {i}: fd {fd} vs {}",
            grad[i]
        );
    }
}

#[test]
fn log_softmax_backward_vs_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (rows, cols) = (3, 6);
    let x = random(&mut rng, rows * cols, 2.0);
    let dy = random(&mut rng, rows * cols, 1.0);
    let mut y = vec![0.0; rows * cols];
    log_softmax_forward(rows, cols, &x, &mut y);
    let mut dx = vec![f32::NAN; rows * cols];
    log_softmax_backward(rows, cols, &y, &dy, &mut dx);
    // L(x) = Σ dy * log_softmax(x), evaluated in f64 so the difference quotient is accurate.
    let loss = |x: &[f64]| -> f64 {
        x.chunks(cols)
            .zip(dy.chunks(cols))
            .map(|(r, d)| {
                let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                r.iter()
                    .zip(d)
                    .map(|(v, &g)| (v - lse) * g as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h = 1e-6;
    for i in 0..x.len() {
        let mut xp = x64.clone();
        xp[i] += h;
        let mut xm = x64.clone();
        xm[i] -= h;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
        assert!(
            (fd - dx[i] as f64).abs() < 1e-5,
            "elem {i}: fd {fd} vs {}",
            dx[i]
        );
    }
}

#[test]
fn loss_is_deterministic_across_thread_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (rows, cols) = (5000, 10);
    let x = random(&mut rng, rows * cols, 5.0);
    let labels: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..cols as u32))
        .collect();
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| {
                let mut probs = vec![0.0; rows * cols];
                softmax_cross_entropy_forward(rows, cols, &x, &labels, &mut probs).to_bits()
            })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
#[should_panic(
    expected = "softmax_cross_entropy_forward: row 1 has label 3, but there are only 3 classes"
)]
fn label_out_of_range_panics() {
    let mut probs = [0.0; 6];
    softmax_cross_entropy_forward(2, 3, &[0.0; 6], &[0, 3], &mut probs);
}

#[test]
#[should_panic(expected = "softmax_cross_entropy_backward: row 0 has label 7")]
fn backward_label_out_of_range_panics() {
    softmax_cross_entropy_backward(1, 3, &[0.0; 3], &[7], 1.0, &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "softmax_cross_entropy_forward: labels has 1 elements")]
fn short_labels_panics() {
    softmax_cross_entropy_forward(2, 3, &[0.0; 6], &[0], &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "log_softmax_forward: output has 5 elements, expected 6")]
fn log_softmax_short_output_panics() {
    log_softmax_forward(2, 3, &[0.0; 6], &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "log_softmax_backward: grad_output")]
fn log_softmax_backward_short_grad_panics() {
    log_softmax_backward(2, 3, &[0.0; 6], &[0.0; 4], &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "softmax_forward: input")]
fn softmax_short_input_panics() {
    softmax_forward(2, 3, &[0.0; 2], &mut [0.0; 6]);
}
