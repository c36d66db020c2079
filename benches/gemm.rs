//! GEMM benchmark: `cargo bench --bench gemm [-- FILTER]` (or `make bench`).
//!
//! The same table as `strata bench gemm` (strata on all threads and on one, the naive loop)
//! plus `matrixmultiply::sgemm` measured in the same run as a yardstick. matrixmultiply runs
//! single-threaded: its default features do not include "threading". Rows whose label does not
//! contain FILTER are skipped.

use std::time::Duration;
use strata::bench::{best_seconds, gemm_problems, measure_gemm};
use strata_kernels::gemm::selected_kernel;

fn main() {
    // cargo passes `--bench`; any other argument is a substring filter on the row label.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let budget = Duration::from_millis(300);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("1-thread pool");
    println!(
        "strata gemm benchmark: kernel {}, {} threads; GFLOP/s, best of runs over >= 0.3 s",
        selected_kernel(),
        rayon::current_num_threads()
    );
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "shape", "m", "n", "k", "strata", "strata-1t", "naive", "mm-1t"
    );
    for p in gemm_problems(&[64, 128, 256, 512, 1024, 2048]) {
        if filter.as_deref().is_some_and(|f| !p.label.contains(f)) {
            continue;
        }
        let (a, b) = p.inputs();
        let row = measure_gemm(&p, &a, &b, budget, &single);
        let (m, n, k) = (p.m, p.n, p.k);
        let mut c = vec![0.0f32; m * n];
        let mm = p.flops()
            / best_seconds(budget, || {
                // SAFETY: a, b, c hold m*k, k*n and m*n floats with the row-major strides given.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
            / 1e9;
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>10.1} {:>10.1} {:>10} {:>10.1}",
            p.label,
            m,
            n,
            k,
            row.all_threads,
            row.one_thread,
            row.naive.map_or("-".into(), |g| format!("{g:.1}")),
            mm
        );
    }
}
