//! What the kernel tests of every op folder share: seeded random inputs, exact and bounded
//! comparisons, and launching a kernel of `kernels/*.cu` on the virtual device.
//!
//! Bounded comparisons state their bound as `|got - want| <= tol * scale` with the scale given
//! per element, so each test says what the error is measured against (see each op's
//! `twin_tests.rs` for its table of tolerances).

#[cfg(feature = "cuda-sim")]
use crate::cuda::twin::Guarded;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(crate) fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A kernel's `int` parameter.
pub(crate) fn i(x: usize) -> i32 {
    i32::try_from(x).unwrap()
}

/// A launch dimension.
pub(crate) fn d(x: usize) -> u32 {
    u32::try_from(x).unwrap()
}

/// Runs `body` (one `kernels::<name>` call of [`crate::cuda::twin`] on the buffers in
/// `state`) and hands `state` back; panics with the launch's error (memcheck, racecheck,
/// initcheck, synccheck, deadlock or launch check).
#[cfg(feature = "cuda-sim")]
pub(crate) fn launch<T>(kernel: &'static str, state: T, body: impl FnOnce(&mut T) -> i32) -> T {
    let mut state = state;
    if body(&mut state) != 0 {
        panic!("{kernel}: {}", crate::cuda::twin::last_error());
    }
    state
}

/// Panics if a kernel wrote into the guard zones of `g`.
#[cfg(feature = "cuda-sim")]
pub(crate) fn guard<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(g: &Guarded<T>, what: &str) {
    if let Err(e) = g.check(what) {
        panic!("{e}");
    }
}

/// `|got - want| <= tol * scale` element by element; NaN only where the reference is NaN.
pub(crate) fn close(what: &str, got: &[f32], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(scale.len(), want.len(), "{what}: scale length");
    for (idx, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= tol * s
        };
        assert!(
            ok,
            "{what}: element {idx}: got {g}, expected {w} (allowed error {tol} x {s:e}, off by {:e})",
            (g as f64 - w).abs()
        );
    }
}

/// Scale `|ref|`, floored at `floor`.
pub(crate) fn abs_scale(want: &[f64], floor: f64) -> Vec<f64> {
    want.iter().map(|w| w.abs().max(floor)).collect()
}

/// Equal values (NaN matches NaN; the sign of zero is not compared).
pub(crate) fn same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {idx}: device {g}, CPU twin {w}"
        );
    }
}

/// Identical bit patterns.
pub(crate) fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {idx}: device {g} ({:#010x}), CPU twin {w} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

pub(crate) fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// (grid.x, block) pairs: the intended launch and a too-small grid (grid-stride loop).
pub(crate) fn grid_stride_launches(total: usize) -> [(u32, u32); 2] {
    [(d(total.div_ceil(256).clamp(1, 65535)), 256), (1, 64)]
}
