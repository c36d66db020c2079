//! Three steps of each optimizer on L(w) = ½·Σw² (so ∇ = w), from w₀ = 1, against values
//! worked out by hand from PyTorch's update rules (written beside each expectation). Adam is
//! blind to a constant scale of the gradient, so its L2 weight decay (which on that loss only
//! scales ∇ by 1 + λ) is checked on L(w) = ½·Σ(w - t)² against PyTorch's rule in f64.

use approx::assert_abs_diff_eq;
use strata_nn::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use strata_nn::schedule::{
    CosineAnnealingLr, ExponentialLr, LrSchedule, MultiStepLr, OneCycleLr, StepLr,
};
use strata_nn::Tensor;

fn run(optimizer: &mut dyn Optimizer, w: &Tensor) -> Vec<f32> {
    (0..3)
        .map(|_| {
            optimizer.zero_grad();
            w.mul(w).sum_all().mul_scalar(0.5).backward();
            optimizer.step();
            w.item()
        })
        .collect()
}

fn param(v: f32) -> Tensor {
    Tensor::from_vec(vec![v], &[1]).set_requires_grad(true)
}

/// `got` equals PyTorch's `want` to within 2e-6, compared in f64.
fn assert_close(got: &[f32], want: &[f64]) {
    let got: Vec<f64> = got.iter().map(|&g| g as f64).collect();
    assert_abs_diff_eq!(got.as_slice(), want, epsilon = 2e-6);
}

#[test]
fn plain_sgd() {
    // w ← w - η·w with η = 0.1: 0.9, 0.81, 0.729
    let w = param(1.0);
    let mut opt = Sgd::new(vec![("w".into(), w.clone())], 0.1);
    assert_close(&run(&mut opt, &w), &[0.9, 0.81, 0.729]);
}

#[test]
fn sgd_with_momentum_and_weight_decay() {
    // g = w + 0.01·w;  b₁ = g₁, bₜ = 0.9·bₜ₋₁ + gₜ;  w ← w - 0.1·b
    // t1: g = 1.01, b = 1.01, w = 0.899
    // t2: g = 0.90799, b = 0.909 + 0.90799 = 1.81699, w = 0.717301
    // t3: g = 0.72447401, b = 1.635291 + 0.72447401 = 2.35976501, w = 0.481324499
    // SGD with momentum sees the gradient's scale, so ∇ = w suffices: ignoring the decay
    // gives 0.9, 0.72, 0.486.
    let w = param(1.0);
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.01,
        nesterov: false,
    };
    let mut opt = Sgd::with_config(vec![("w".into(), w.clone())], config);
    assert_close(&run(&mut opt, &w), &[0.899, 0.717301, 0.481324499]);
}

#[test]
fn sgd_with_dampening() {
    // b₁ = g₁ (no dampening on the first step), then bₜ = 0.9·bₜ₋₁ + 0.5·gₜ
    // t1: b = 1, w = 0.9;  t2: b = 0.9 + 0.45 = 1.35, w = 0.765;  t3: b = 1.215 + 0.3825, w = 0.60525
    let w = param(1.0);
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.5,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut opt = Sgd::with_config(vec![("w".into(), w.clone())], config);
    assert_close(&run(&mut opt, &w), &[0.9, 0.765, 0.60525]);
}

#[test]
fn sgd_nesterov() {
    // b as plain momentum; step = g + 0.9·b
    // t1: b = 1, step = 1.9, w = 0.81;  t2: b = 1.71, step = 2.349, w = 0.5751
    // t3: b = 2.1141, step = 2.47779, w = 0.327321
    let w = param(1.0);
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: true,
    };
    let mut opt = Sgd::with_config(vec![("w".into(), w.clone())], config);
    assert_close(&run(&mut opt, &w), &[0.81, 0.5751, 0.327321]);
}

#[test]
fn adam_defaults() {
    // m = 0.9m + 0.1g; v = 0.999v + 0.001g²; w ← w - (0.1/(1-0.9ᵗ))·m/(√v/√(1-0.999ᵗ) + 1e-8)
    // t1: m = 0.1, v = 0.001 → w = 1 - 1.0·0.1/(1 + 1e-8) = 0.900000001
    // t2: g = 0.9, m = 0.18, v = 0.001809 → w = 0.80041223
    // t3: → w = 0.70158627
    let w = param(1.0);
    let mut opt = Adam::new(vec![("w".into(), w.clone())], 0.1);
    assert_close(
        &run(&mut opt, &w),
        &[0.900000001, 0.8004122297, 0.7015862745],
    );
}

/// Five steps on L(w) = ½·Σ(w - t)², whose gradient w - t is not a multiple of w: the
/// parameter after each step.
fn run_toward(optimizer: &mut dyn Optimizer, w: &Tensor, t: &[f32]) -> Vec<Vec<f32>> {
    let target = Tensor::from_vec(t.to_vec(), &[t.len()]);
    (0..5)
        .map(|_| {
            optimizer.zero_grad();
            let d = w.sub(&target);
            d.mul(&d).sum_all().mul_scalar(0.5).backward();
            optimizer.step();
            w.to_vec()
        })
        .collect()
}

/// `torch.optim.Adam(lr=0.1, weight_decay=λ)` in f64 on the same loss: `g ← (w - t) + λ·w`
/// enters both moments; the parameter after each of five steps.
fn adam_l2_reference(w0: &[f32], t: &[f32], lambda: f64) -> Vec<Vec<f64>> {
    let (lr, b1, b2, eps) = (0.1, 0.9, 0.999, 1e-8);
    let mut w: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
    let (mut m, mut v) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    (1..=5)
        .map(|step| {
            for i in 0..w.len() {
                let g = (w[i] - t[i] as f64) + lambda * w[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let denom = v[i].sqrt() / (1.0 - b2.powi(step)).sqrt() + eps;
                w[i] -= lr / (1.0 - b1.powi(step)) * m[i] / denom;
            }
            w.clone()
        })
        .collect()
}

#[test]
fn adam_with_l2_weight_decay() {
    // The gradient w - t is no multiple of w, so the L2 term changes the direction of each
    // moment update, not only its scale (to which Adam is blind). Rules out an Adam that
    // ignores `weight_decay`, or applies it decoupled (AdamW-style), when not told to.
    let (w0, t) = ([1.0, -2.0, 0.5, 3.0], [0.25, 0.5, -1.0, 2.0]);
    let w = Tensor::from_vec(w0.to_vec(), &[4]).set_requires_grad(true);
    let mut opt = Adam::with_config(
        vec![("w".into(), w.clone())],
        AdamConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            decoupled_weight_decay: false,
        },
    );
    let got = run_toward(&mut opt, &w, &t);
    for (step, (got, want)) in got.iter().zip(adam_l2_reference(&w0, &t, 0.1)).enumerate() {
        println!("step {}: {got:?} (PyTorch {want:?})", step + 1);
        assert_close(got, &want);
    }
}

#[test]
fn adamw_decays_weights_directly() {
    // w ← w·(1 - 0.1·0.1) before each Adam step: t1: 0.99 - 0.1 = 0.89
    // The decay acts on w directly, outside Adam's scale-blind update: ignoring it, or
    // folding it into the gradient as L2, gives Adam's 0.9, 0.80041, 0.70159.
    let w = param(1.0);
    let mut opt = Adam::adamw(vec![("w".into(), w.clone())], 0.1);
    opt.config.weight_decay = 0.1;
    assert_eq!(opt.name(), "adamw");
    assert_close(
        &run(&mut opt, &w),
        &[0.890000001, 0.7815718570, 0.6751012232],
    );
}

#[test]
fn optimizer_state_round_trips_and_resumes_identically() {
    let w1 = param(1.0);
    let mut a = Adam::new(vec![("w".into(), w1.clone())], 0.1);
    run(&mut a, &w1);
    let state = a.state();
    let w2 = param(w1.item());
    let mut b = Adam::new(vec![("w".into(), w2.clone())], 0.1);
    b.load_state(&state).unwrap();
    assert_eq!(run(&mut a, &w1), run(&mut b, &w2));
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let a = param(3.0);
    let b = param(4.0);
    a.set_grad(Some(Tensor::from_vec(vec![3.0], &[1])));
    b.set_grad(Some(Tensor::from_vec(vec![4.0], &[1])));
    let norm = clip_grad_norm(&[a.clone(), b.clone()], 1.0);
    assert!((norm - 5.0).abs() < 1e-6);
    let (ga, gb) = (a.grad().unwrap().item(), b.grad().unwrap().item());
    assert!(((ga * ga + gb * gb).sqrt() - 1.0).abs() < 1e-5);
    assert!((ga / gb - 0.75).abs() < 1e-6, "direction is kept");
}

#[test]
fn schedules_match_pytorch_closed_forms() {
    let step = StepLr {
        base: 0.05,
        step_size: 6,
        gamma: 0.1,
    };
    assert_eq!(step.lr(0), 0.05);
    assert_eq!(step.lr(5), 0.05);
    assert!((step.lr(6) - 0.005).abs() < 1e-9);
    assert!((step.lr(12) - 0.0005).abs() < 1e-9);
    let multi = MultiStepLr {
        base: 1.0,
        milestones: vec![2, 5],
        gamma: 0.5,
    };
    assert_eq!([multi.lr(1), multi.lr(2), multi.lr(5)], [1.0, 0.5, 0.25]);
    let exp = ExponentialLr {
        base: 1.0,
        gamma: 0.9,
    };
    assert!((exp.lr(2) - 0.81).abs() < 1e-6);
    let cos = CosineAnnealingLr {
        base: 1.0,
        t_max: 10,
        eta_min: 0.0,
    };
    assert_eq!(cos.lr(0), 1.0);
    assert!((cos.lr(5) - 0.5).abs() < 1e-6);
    assert!(cos.lr(10).abs() < 1e-6);
    // One-cycle over 100 steps: starts at max/25, peaks at step 29 (pct 0.3), ends at max/25/1e4.
    let one = OneCycleLr::new(1.0, 100);
    assert!((one.lr(0) - 0.04).abs() < 1e-6);
    assert!((one.lr(29) - 1.0).abs() < 1e-6);
    assert!((one.lr(99) - 4e-6).abs() < 1e-9);
}

/// A gradient set by hand to the parameter itself (the same storage) is read before the
/// parameter is written: the step completes, with ∇ = w, instead of waiting on its own lock.
#[test]
fn a_gradient_sharing_the_parameters_storage_steps_normally() {
    let w = param(2.0);
    w.set_grad(Some(w.detach()));
    let mut sgd = Sgd::new(vec![("w".into(), w.clone())], 0.25);
    sgd.step();
    assert_eq!(w.item(), 1.5); // 2 - 0.25 * 2
    let v = param(1.0);
    v.set_grad(Some(v.detach()));
    let mut adam = Adam::new(vec![("v".into(), v.clone())], 0.1);
    adam.step();
    assert_close(&[v.item()], &[0.9]); // the first Adam step moves by lr
}
