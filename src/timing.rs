//! Timing for benchmarks: warm up, then repeat until enough time has passed, and keep the best
//! run (the least disturbed by the rest of the machine).

use std::time::{Duration, Instant};

/// Seconds of the fastest of the repetitions of `f` run within about `budget`, after one
/// warm-up call. At least three repetitions are timed.
pub fn best_seconds(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// GFLOP/s of a GEMM of the given size that took `seconds`.
pub fn gemm_gflops(m: usize, n: usize, k: usize, seconds: f64) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64 / seconds / 1e9
}
