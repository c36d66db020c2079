//! `sgd_step` and `adam_step` of kernels/optim.cu run on the virtual
//! device (NVRTC's PTX, `cuda::sim`, every check on) against their CPU twins in [`crate::optim`] and an f64 reference,
//! over three consecutive steps of every option, with the intended grid and one block striding
//! over everything. Every guarded buffer is checked for out-of-bounds writes.
//!
//! | op                  | vs f64 reference                                     | vs CPU twin    |
//! |---------------------|------------------------------------------------------|----------------|
//! | sgd_step, adam_step | tol 1e-6 (2e-6 Adam), scale = the formula on |values| | identical bits |

use crate::cuda::twin::{self as kernels, Guarded};
use crate::optim::{self, AdamConfig, SgdConfig};
use crate::test_support::{close, guard, i, launch, random, same_bits};
use std::time::Instant;

/// The buffer's device pointer, or null where the kernel is promised not to touch it.
fn mut_ptr_or_null(g: &mut Guarded<f32>, present: bool) -> *mut f32 {
    if present {
        g.mut_ptr()
    } else {
        std::ptr::null_mut()
    }
}

/// A value and the same expression evaluated on absolute values (its rounding-error scale).
#[derive(Clone, Copy, Debug)]
struct E {
    v: f64,
    s: f64,
}

impl E {
    fn of(x: f32) -> E {
        E {
            v: x as f64,
            s: (x as f64).abs(),
        }
    }
    fn add(self, o: E) -> E {
        E {
            v: self.v + o.v,
            s: self.s + o.s,
        }
    }
    fn sub(self, o: E) -> E {
        E {
            v: self.v - o.v,
            s: self.s + o.s,
        }
    }
    fn mul(self, o: E) -> E {
        E {
            v: self.v * o.v,
            s: self.s * o.s,
        }
    }
    fn div(self, o: E) -> E {
        E {
            v: self.v / o.v,
            s: self.s / o.v.abs() + self.v.abs() * o.s / (o.v * o.v),
        }
    }
    fn sqrt(self) -> E {
        E {
            v: self.v.sqrt(),
            s: self.s.sqrt(),
        }
    }
}

fn close_e(what: &str, got: &[f32], want: &[E], tol: f64) {
    let v: Vec<f64> = want.iter().map(|e| e.v).collect();
    let s: Vec<f64> = want.iter().map(|e| e.s + 1e-30).collect();
    close(what, got, &v, &s, tol);
}

const OPTIM_N: usize = 1000;
/// The intended launch (ragged last block) and one block of 128 striding over everything.
const OPTIM_LAUNCHES: [(u32, u32); 2] = [(4, 256), (1, 128)];

#[test]
fn sgd_step_matches_cpu_twin_for_every_option() {
    let start = Instant::now();
    let cfg = |lr, momentum, dampening, weight_decay, nesterov| SgdConfig {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
    };
    // (config, first step fresh?)
    let cases = [
        (cfg(0.1, 0.0, 0.0, 0.0, false), false),
        (cfg(0.05, 0.0, 0.0, 1e-2, false), false),
        (cfg(0.1, 0.9, 0.0, 0.0, false), true),
        (cfg(0.1, 0.9, 0.1, 1e-3, false), false),
        (cfg(0.1, 0.9, 0.0, 0.0, true), true),
        (cfg(0.02, 0.8, 0.0, 5e-4, true), false),
        (cfg(0.02, 0.8, 0.3, 1e-2, true), true),
    ];
    for (ci, &(c, fresh)) in cases.iter().enumerate() {
        for &(grid, block) in &OPTIM_LAUNCHES {
            let seed = 9000 + 10 * ci as u64;
            let mut p = random(OPTIM_N, -1.0, 1.0, seed);
            let mut buf = random(OPTIM_N, -0.5, 0.5, seed + 1);
            let mut twin_p = p.clone();
            let mut twin_buf = buf.clone();
            let has_mom = c.momentum != 0.0;
            // Three consecutive steps, each against the twin and an f64 reference.
            for step in 0..3 {
                let first = fresh && step == 0;
                let grad = random(OPTIM_N, -1.0, 1.0, seed + 2 + step);
                let what = format!("case {ci} {c:?} step {step} first {first} grid {grid}");
                let (mut want_p, mut want_b) = (vec![], vec![]);
                for idx in 0..OPTIM_N {
                    let pe = E::of(p[idx]);
                    let g = E::of(grad[idx]).add(E::of(c.weight_decay).mul(pe));
                    let step_e = if has_mom {
                        let b = if first {
                            g
                        } else {
                            E::of(c.momentum)
                                .mul(E::of(buf[idx]))
                                .add(E::of(1.0 - c.dampening).mul(g))
                        };
                        want_b.push(b);
                        if c.nesterov {
                            g.add(E::of(c.momentum).mul(b))
                        } else {
                            b
                        }
                    } else {
                        g
                    };
                    want_p.push(pe.sub(E::of(c.lr).mul(step_e)));
                }
                optim::sgd_step(
                    &c,
                    &mut twin_p,
                    &grad,
                    has_mom.then_some(&mut twin_buf[..]),
                    first,
                );
                close_e(
                    &format!("CPU twin sgd param {what}"),
                    &twin_p,
                    &want_p,
                    1e-6,
                );

                let state = (Guarded::f32(&p), Guarded::f32(&grad), Guarded::f32(&buf));
                let n = i(OPTIM_N);
                let (gp, gg, gb) = launch("sgd_step", state, move |(p, g, b)| {
                    // SAFETY: live guarded buffers of n floats; the momentum buffer is null
                    // when momentum is 0 (the kernel promises not to touch it).
                    unsafe {
                        kernels::sgd_step(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            n,
                            c.lr,
                            c.momentum,
                            c.dampening,
                            c.weight_decay,
                            c.nesterov as i32,
                            first as i32,
                            p.mut_ptr(),
                            g.ptr(),
                            mut_ptr_or_null(b, has_mom),
                        )
                    }
                });
                guard(&gp, "sgd param");
                guard(&gg, "sgd grad");
                guard(&gb, "sgd momentum buffer");
                close_e(&format!("sgd param {what}"), gp.as_slice(), &want_p, 1e-6);
                same_bits(&format!("sgd param {what}"), gp.as_slice(), &twin_p);
                if has_mom {
                    close_e(&format!("sgd buffer {what}"), gb.as_slice(), &want_b, 1e-6);
                    same_bits(&format!("sgd buffer {what}"), gb.as_slice(), &twin_buf);
                } else {
                    same_bits(&format!("sgd untouched buffer {what}"), gb.as_slice(), &buf);
                }
                p = gp.as_slice().to_vec();
                buf = gb.as_slice().to_vec();
            }
        }
    }
    println!("sgd: {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn adam_step_matches_cpu_twin_for_adam_and_adamw() {
    let start = Instant::now();
    let cfg = |lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay| AdamConfig {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled_weight_decay,
    };
    // (config, first step t, zero initial moments?)
    let cases = [
        (cfg(1e-3, 0.9, 0.999, 1e-8, 0.0, false), 1, true),
        (cfg(1e-3, 0.9, 0.999, 1e-8, 1e-2, false), 1, true),
        (cfg(1e-3, 0.9, 0.999, 1e-8, 1e-2, true), 1, true),
        (cfg(3e-4, 0.9, 0.999, 1e-8, 5e-2, true), 1000, false),
        (cfg(0.1, 0.5, 0.75, 1e-3, 1e-3, false), 7, false),
    ];
    for (ci, &(c, t0, zero)) in cases.iter().enumerate() {
        for &(grid, block) in &OPTIM_LAUNCHES {
            let seed = 9500 + 10 * ci as u64;
            let mut p = random(OPTIM_N, -1.0, 1.0, seed);
            let (mut m, mut v) = if zero {
                (vec![0.0; OPTIM_N], vec![0.0; OPTIM_N])
            } else {
                (
                    random(OPTIM_N, -0.1, 0.1, seed + 1),
                    random(OPTIM_N, 0.0, 0.01, seed + 2),
                )
            };
            let (mut tp, mut tm, mut tv) = (p.clone(), m.clone(), v.clone());
            for step in 0..3u64 {
                let t = t0 + step;
                let grad = random(OPTIM_N, -1.0, 1.0, seed + 3 + step);
                // The host's bias corrections, in f32 exactly as the twin.
                let bias1 = 1.0 - c.beta1.powi(t as i32);
                let step_size = c.lr / bias1;
                let bias2_sqrt = (1.0 - c.beta2.powi(t as i32)).sqrt();
                let what = format!("case {ci} {c:?} t {t} grid {grid}");
                let (mut wp, mut wm, mut wv) = (vec![], vec![], vec![]);
                for idx in 0..OPTIM_N {
                    let mut pe = E::of(p[idx]);
                    let mut g = E::of(grad[idx]);
                    if c.decoupled_weight_decay {
                        pe = pe.mul(E::of(1.0).sub(E::of(c.lr).mul(E::of(c.weight_decay))));
                    } else {
                        g = g.add(E::of(c.weight_decay).mul(pe));
                    }
                    let me = E::of(c.beta1)
                        .mul(E::of(m[idx]))
                        .add(E::of(1.0 - c.beta1).mul(g));
                    let ve = E::of(c.beta2)
                        .mul(E::of(v[idx]))
                        .add(E::of(1.0 - c.beta2).mul(g).mul(g));
                    let denom = ve.sqrt().div(E::of(bias2_sqrt)).add(E::of(c.eps));
                    wp.push(pe.sub(E::of(step_size).mul(me).div(denom)));
                    wm.push(me);
                    wv.push(ve);
                }
                optim::adam_step(&c, t, &mut tp, &grad, &mut tm, &mut tv);
                close_e(&format!("CPU twin adam param {what}"), &tp, &wp, 2e-6);

                let state = (
                    Guarded::f32(&p),
                    Guarded::f32(&grad),
                    Guarded::f32(&m),
                    Guarded::f32(&v),
                );
                let n = i(OPTIM_N);
                let (gp, gg, gm, gv) = launch("adam_step", state, move |(p, g, m, v)| {
                    // SAFETY: live guarded buffers of n floats.
                    unsafe {
                        kernels::adam_step(
                            grid,
                            1,
                            1,
                            block,
                            1,
                            1,
                            n,
                            c.lr,
                            c.beta1,
                            c.beta2,
                            c.eps,
                            c.weight_decay,
                            c.decoupled_weight_decay as i32,
                            step_size,
                            bias2_sqrt,
                            p.mut_ptr(),
                            g.ptr(),
                            m.mut_ptr(),
                            v.mut_ptr(),
                        )
                    }
                });
                guard(&gp, "adam param");
                guard(&gg, "adam grad");
                guard(&gm, "adam exp_avg");
                guard(&gv, "adam exp_avg_sq");
                close_e(&format!("adam param {what}"), gp.as_slice(), &wp, 2e-6);
                close_e(&format!("adam exp_avg {what}"), gm.as_slice(), &wm, 2e-6);
                close_e(&format!("adam exp_avg_sq {what}"), gv.as_slice(), &wv, 2e-6);
                same_bits(&format!("adam param {what}"), gp.as_slice(), &tp);
                same_bits(&format!("adam exp_avg {what}"), gm.as_slice(), &tm);
                same_bits(&format!("adam exp_avg_sq {what}"), gv.as_slice(), &tv);
                p = gp.as_slice().to_vec();
                m = gm.as_slice().to_vec();
                v = gv.as_slice().to_vec();
            }
        }
    }
    println!("adam: {:.2} s", start.elapsed().as_secs_f64());
}
