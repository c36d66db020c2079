//! The optimizer steps against PyTorch's formulas on hand-checked values, and the parallel
//! path against the sequential one.

use super::*;
use approx::assert_relative_eq;

#[test]
fn plain_sgd_with_weight_decay_steps_against_the_decayed_gradient() {
    let c = SgdConfig {
        lr: 0.5,
        weight_decay: 0.25,
        ..SgdConfig::default()
    };
    let mut p = [1.0, -2.0, 4.0];
    sgd_step(&c, &mut p, &[0.5, 0.5, -1.0], None, false);
    // p - lr·(g + λ·p): every value exact in binary.
    assert_eq!(p, [1.0 - 0.5 * 0.75, -2.0 - 0.5 * 0.0, 4.0 - 0.5 * 0.0]);
}

#[test]
fn momentum_starts_from_the_gradient_then_accumulates() {
    for nesterov in [false, true] {
        let c = SgdConfig {
            lr: 0.5,
            momentum: 0.5,
            dampening: 0.5,
            nesterov,
            ..SgdConfig::default()
        };
        let (mut p, mut b) = ([1.0f32], [f32::NAN]);
        // First step: b = g (dampening does not apply).
        sgd_step(&c, &mut p, &[2.0], Some(&mut b), true);
        assert_eq!(b, [2.0]);
        let step = if nesterov { 2.0 + 0.5 * 2.0 } else { 2.0 };
        assert_eq!(p, [1.0 - 0.5 * step]);
        // Second step: b = μ·b + (1-τ)·g = 0.5·2 + 0.5·4 = 3.
        let before = p[0];
        sgd_step(&c, &mut p, &[4.0], Some(&mut b), false);
        assert_eq!(b, [3.0]);
        let step = if nesterov { 4.0 + 0.5 * 3.0 } else { 3.0 };
        assert_eq!(p, [before - 0.5 * step]);
    }
}

#[test]
#[should_panic(expected = "needs a momentum buffer")]
fn momentum_without_a_buffer_is_refused() {
    let c = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    };
    sgd_step(&c, &mut [0.0], &[1.0], None, false);
}

#[test]
fn first_adam_step_moves_each_weight_by_about_the_learning_rate() {
    // With zero moments, m̂ = g and v̂ = g², so the step is η·g/(|g| + ε) ≈ η·sign(g).
    for decoupled_weight_decay in [false, true] {
        let c = AdamConfig {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            decoupled_weight_decay,
        };
        let p0 = [1.0f32, -0.5, 2.0];
        let g = [0.3f32, -2.0, 1e-3];
        let mut p = p0;
        let (mut m, mut v) = ([0.0; 3], [0.0; 3]);
        adam_step(&c, 1, &mut p, &g, &mut m, &mut v);
        for k in 0..3 {
            let (start, grad) = if decoupled_weight_decay {
                (p0[k] * (1.0 - c.lr * c.weight_decay), g[k])
            } else {
                (p0[k], g[k] + c.weight_decay * p0[k])
            };
            assert_relative_eq!(p[k], start - c.lr * grad.signum(), max_relative = 1e-4);
            assert_relative_eq!(m[k], (1.0 - c.beta1) * grad, max_relative = 1e-6);
            assert_relative_eq!(v[k], (1.0 - c.beta2) * grad * grad, max_relative = 1e-5);
        }
    }
}

#[test]
fn parallel_steps_equal_element_by_element_steps() {
    let n = (1 << 16) + 1234;
    let values = |scale: f32, phase: f32| -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.37 + phase).sin() * scale)
            .collect()
    };
    let grad = values(1.0, 0.5);
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        weight_decay: 1e-3,
        nesterov: true,
    };
    let adam = AdamConfig {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-2,
        decoupled_weight_decay: true,
    };
    let (mut p, mut b) = (values(1.0, 0.0), values(0.1, 1.0));
    let (mut p1, mut b1) = (p.clone(), b.clone());
    sgd_step(&sgd, &mut p, &grad, Some(&mut b), false);
    for k in 0..n {
        sgd_step(
            &sgd,
            &mut p1[k..=k],
            &grad[k..=k],
            Some(&mut b1[k..=k]),
            false,
        );
    }
    assert!(p.iter().zip(&p1).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert!(b.iter().zip(&b1).all(|(x, y)| x.to_bits() == y.to_bits()));

    let mut m = values(0.1, 2.0);
    let mut v: Vec<f32> = values(0.01, 3.0).iter().map(|x| x.abs()).collect();
    let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
    adam_step(&adam, 7, &mut p, &grad, &mut m, &mut v);
    for k in 0..n {
        let r = k..=k;
        adam_step(
            &adam,
            7,
            &mut p1[r.clone()],
            &grad[r.clone()],
            &mut m1[r.clone()],
            &mut v1[r],
        );
    }
    for (x, y) in [(&p, &p1), (&m, &m1), (&v, &v1)] {
        assert!(x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
