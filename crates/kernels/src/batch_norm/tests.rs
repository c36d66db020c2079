//! Batch norm: a hand-computed example, eval mode, and gradients against finite differences
//! of an f64 reference forward.

use crate::batch_norm::{batch_norm_backward, batch_norm_forward_eval, batch_norm_forward_train};
use approx::abs_diff_eq;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

struct Train {
    y: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    var: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn train(
    n: usize,
    c: usize,
    s: usize,
    eps: f32,
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
) -> Train {
    let mut t = Train {
        y: vec![f32::NAN; x.len()],
        mean: vec![f32::NAN; c],
        invstd: vec![f32::NAN; c],
        var: vec![f32::NAN; c],
    };
    batch_norm_forward_train(
        n,
        c,
        s,
        eps,
        x,
        gamma,
        beta,
        &mut t.y,
        &mut t.mean,
        &mut t.invstd,
        &mut t.var,
    );
    t
}

/// f64 train-mode forward, straight from the definition.
fn reference(n: usize, c: usize, s: usize, eps: f64, x: &[f64], g: &[f64], b: &[f64]) -> Vec<f64> {
    let m = (n * s) as f64;
    let at = |ni: usize, ci: usize, si: usize| (ni * c + ci) * s + si;
    let mut y = vec![0.0; x.len()];
    for ci in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|ni| (0..s).map(move |si| at(ni, ci, si)))
            .collect();
        let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / m;
        let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / m;
        for &i in &idx {
            y[i] = (x[i] - mean) / (var + eps).sqrt() * g[ci] + b[ci];
        }
    }
    y
}

#[test]
fn known_small_example() {
    // n=2, c=2, spatial=2, eps=0.
    // channel 0 sees [2, 6, 2, 6]: mean 4, var 4, invstd 1/2, xhat [-1, 1, -1, 1]
    //   y = xhat*3 + 0.5 = [-2.5, 3.5, -2.5, 3.5]
    // channel 1 sees [9, 11, 11, 9]: mean 10, var 1, invstd 1, xhat [-1, 1, 1, -1]
    //   y = xhat*(-1) + 2 = [3, 1, 1, 3]
    let x = [2., 6., 9., 11., 2., 6., 11., 9.];
    let t = train(2, 2, 2, 0.0, &x, Some(&[3.0, -1.0]), Some(&[0.5, 2.0]));
    assert_eq!(t.y, [-2.5, 3.5, 3., 1., -2.5, 3.5, 1., 3.]);
    assert_eq!(t.mean, [4., 10.]);
    assert_eq!(t.invstd, [0.5, 1.]);
    assert_eq!(t.var, [4., 1.]);

    // Backward with dy = 1 everywhere on channel 0 and dy = xhat on channel 1:
    //   dbeta = Σdy = [4, 0]; dgamma = Σ dy*xhat = [0, 4]
    //   channel 0: m*dy - Σdy - xhat*0 = 4 - 4 = 0 -> dx = 0 (a constant shift is normalised away)
    //   channel 1: m*dy - 0 - xhat*4 = 4*xhat - 4*xhat = 0 -> dx = 0 (pure scaling, too)
    let dy = [1., 1., -1., 1., 1., 1., 1., -1.];
    let mut dx = [f32::NAN; 8];
    let (mut dg, mut db) = ([f32::NAN; 2], [f32::NAN; 2]);
    batch_norm_backward(
        2,
        2,
        2,
        &x,
        Some(&[3.0, -1.0]),
        &t.mean,
        &t.invstd,
        &dy,
        &mut dx,
        Some(&mut dg),
        Some(&mut db),
    );
    assert_eq!(db, [4., 0.]);
    assert_eq!(dg, [0., 4.]);
    assert_eq!(dx, [0.0; 8]);

    // A gradient on a single element: channel 0, dy = [1, 0, 0, 0] (element x=2, xhat=-1).
    //   Σdy = 1, Σdy*xhat = -1, dx = gamma*invstd/m * (m*dy - 1 - xhat*(-1)) = 3*0.5/4 * (4dy - 1 + xhat)
    //   -> [1.5/4 * (4-1-1), 1.5/4 * (0-1+1), 1.5/4 * (0-1-1), 1.5/4 * (0-1+1)] = [0.75, 0, -0.75, 0]
    let dy = [1., 0., 0., 0., 0., 0., 0., 0.];
    batch_norm_backward(
        2,
        2,
        2,
        &x,
        Some(&[3.0, -1.0]),
        &t.mean,
        &t.invstd,
        &dy,
        &mut dx,
        None,
        None,
    );
    assert_eq!(dx, [0.75, 0., 0., 0., -0.75, 0., 0., 0.]);
}

#[test]
fn eval_mode_uses_running_stats() {
    // running_var + eps = 4 -> invstd 1/2 on channel 0; 1 on channel 1.
    let x = [3., 5., 1., 1., -1., 7., 0., 4.];
    let mut y = [f32::NAN; 8];
    batch_norm_forward_eval(
        2,
        2,
        2,
        1.0,
        &x,
        &[1., 2.],
        &[3., 0.],
        Some(&[2., 1.]),
        Some(&[0., 10.]),
        &mut y,
    );
    // ch0: (x-1)*0.5*2 = x-1; ch1: (x-2) + 10
    assert_eq!(y, [2., 4., 9., 9., -2., 6., 8., 12.]);
    batch_norm_forward_eval(2, 2, 2, 1.0, &x, &[1., 2.], &[3., 0.], None, None, &mut y);
    assert_eq!(y, [1., 2., -1., -1., -1., 3., -2., 2.]);
}

#[test]
fn forward_matches_f64_reference_including_large_mean() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(n, c, s, offset) in &[
        (4usize, 3usize, 25usize, 0.0f32),
        (16, 5, 1, 0.0),
        (3, 2, 49, 1000.0),
    ] {
        // A large mean with a small spread is where one-pass f32 statistics break down.
        let x: Vec<f32> = random(&mut rng, n * c * s, -1.0, 1.0)
            .iter()
            .map(|v| v + offset)
            .collect();
        let g = random(&mut rng, c, 0.5, 2.0);
        let b = random(&mut rng, c, -1.0, 1.0);
        let t = train(n, c, s, 1e-5, &x, Some(&g), Some(&b));
        let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let want = reference(n, c, s, 1e-5, &f(&x), &f(&g), &f(&b));
        for (i, (&got, &w)) in t.y.iter().zip(&want).enumerate() {
            assert!(
                abs_diff_eq!(got as f64, w, epsilon = 1e-4),
                "({n},{c},{s}) y[{i}]: {got} vs {w}"
            );
        }
    }
}

#[test]
fn backward_vs_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(n, c, s) in &[(3usize, 2usize, 4usize), (5, 3, 1)] {
        let eps = 1e-3;
        let x = random(&mut rng, n * c * s, -2.0, 2.0);
        let g = random(&mut rng, c, 0.5, 2.0);
        let b = random(&mut rng, c, -1.0, 1.0);
        let dy = random(&mut rng, n * c * s, -1.0, 1.0);
        let t = train(n, c, s, eps, &x, Some(&g), Some(&b));
        let mut dx = vec![f32::NAN; x.len()];
        let (mut dg, mut db) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        batch_norm_backward(
            n,
            c,
            s,
            &x,
            Some(&g),
            &t.mean,
            &t.invstd,
            &dy,
            &mut dx,
            Some(&mut dg),
            Some(&mut db),
        );

        // L = Σ dy * y, differentiated numerically in f64.
        let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let (x64, g64, b64) = (f(&x), f(&g), f(&b));
        let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
            reference(n, c, s, eps as f64, x, g, b)
                .iter()
                .zip(&dy)
                .map(|(y, &d)| y * d as f64)
                .sum()
        };
        let h = 1e-6;
        let fd = |v: &[f64], i: usize, which: &dyn Fn(&[f64]) -> f64| {
            let (mut p, mut m) = (v.to_vec(), v.to_vec());
            p[i] += h;
            m[i] -= h;
            (which(&p) - which(&m)) / (2.0 * h)
        };
        for (i, &d) in dx.iter().enumerate() {
            let num = fd(&x64, i, &|xx| loss(xx, &g64, &b64));
            assert!(
                abs_diff_eq!(num, d as f64, epsilon = 1e-4),
                "dx[{i}]: fd {num} vs {d}"
            );
        }
        for i in 0..c {
            let num = fd(&g64, i, &|gg| loss(&x64, gg, &b64));
            assert!(
                abs_diff_eq!(num, dg[i] as f64, epsilon = 1e-4),
                "dgamma[{i}]: fd {num} vs {}",
                dg[i]
            );
            let num = fd(&b64, i, &|bb| loss(&x64, &g64, bb));
            assert!(
                abs_diff_eq!(num, db[i] as f64, epsilon = 1e-4),
                "dbeta[{i}]: fd {num} vs {}",
                db[i]
            );
        }
    }
}

#[test]
fn affine_none_means_gamma_one_beta_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, c, s) = (4, 3, 9);
    let x = random(&mut rng, n * c * s, -3.0, 3.0);
    let dy = random(&mut rng, n * c * s, -1.0, 1.0);
    let a = train(n, c, s, 1e-5, &x, None, None);
    let b = train(n, c, s, 1e-5, &x, Some(&[1.0; 3]), Some(&[0.0; 3]));
    assert_eq!(a.y, b.y);
    assert_eq!(a.mean, b.mean);
    assert_eq!(a.invstd, b.invstd);

    let mut dx_none = vec![0.0; x.len()];
    let mut dx_ones = vec![0.0; x.len()];
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    batch_norm_backward(
        n,
        c,
        s,
        &x,
        None,
        &a.mean,
        &a.invstd,
        &dy,
        &mut dx_none,
        None,
        None,
    );
    batch_norm_backward(
        n,
        c,
        s,
        &x,
        Some(&[1.0; 3]),
        &a.mean,
        &a.invstd,
        &dy,
        &mut dx_ones,
        Some(&mut dg),
        Some(&mut db),
    );
    assert_eq!(dx_none, dx_ones);
    // Normalised output: per channel mean 0 and (biased) variance ~1.
    for ci in 0..c {
        let v: Vec<f64> = (0..n)
            .flat_map(|ni| a.y[(ni * c + ci) * s..(ni * c + ci + 1) * s].to_vec())
            .map(f64::from)
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4,
            "channel {ci}: {mean} {var}"
        );
    }
}

#[test]
fn statistics_are_deterministic_across_thread_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (n, c, s) = (64, 8, 100);
    let x = random(&mut rng, n * c * s, -1.0, 1.0);
    let dy = random(&mut rng, n * c * s, -1.0, 1.0);
    let g = random(&mut rng, c, 0.5, 1.5);
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| {
                let tr = train(n, c, s, 1e-5, &x, Some(&g), None);
                let mut dx = vec![0.0; x.len()];
                let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
                batch_norm_backward(
                    n,
                    c,
                    s,
                    &x,
                    Some(&g),
                    &tr.mean,
                    &tr.invstd,
                    &dy,
                    &mut dx,
                    Some(&mut dg),
                    Some(&mut db),
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                (
                    bits(&tr.y),
                    bits(&tr.mean),
                    bits(&tr.invstd),
                    bits(&tr.var),
                    bits(&dx),
                    bits(&dg),
                    bits(&db),
                )
            })
    };
    let one = run(1);
    assert!(one == run(2), "2 threads differ");
    assert!(one == run(3), "3 threads differ");
}

#[test]
#[should_panic(expected = "batch_norm_forward_train: input has 7 elements, expected 8")]
fn train_short_input_panics() {
    train(2, 2, 2, 0.0, &[0.0; 7], None, None);
}

#[test]
#[should_panic(expected = "batch_norm_forward_train: gamma")]
fn train_short_gamma_panics() {
    train(2, 2, 2, 0.0, &[0.0; 8], Some(&[1.0]), None);
}

#[test]
#[should_panic(expected = "batch_norm_forward_eval: running_var")]
fn eval_short_running_var_panics() {
    batch_norm_forward_eval(
        2,
        2,
        2,
        0.0,
        &[0.0; 8],
        &[0.0; 2],
        &[0.0; 1],
        None,
        None,
        &mut [0.0; 8],
    );
}

#[test]
#[should_panic(expected = "batch_norm_backward: grad_gamma")]
fn backward_short_grad_gamma_panics() {
    batch_norm_backward(
        2,
        2,
        2,
        &[0.0; 8],
        None,
        &[0.0; 2],
        &[1.0; 2],
        &[0.0; 8],
        &mut [0.0; 8],
        Some(&mut [0.0; 3]),
        None,
    );
}
