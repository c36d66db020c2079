//! The GEMM against the naive triple loop (which accumulates in f64) over edge sizes,
//! transposes, strides, alpha/beta, batches, thread counts and bad arguments; every compiled
//! micro-kernel (not only the selected one); and the skinny kernels bit for bit against the
//! packed ones.

use super::*;
use crate::simd::Isa;
use crate::test_skip::{skip, Reason};

/// Every micro-kernel this CPU runs, narrowest first.
fn kernels() -> Vec<Kernel> {
    Isa::available().into_iter().map(kernel_for).collect()
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    crate::test_support::random(len, -1.0, 1.0, seed)
}

/// `A` (`m x k`) and `B` (`k x n`) as operands, each row-major or stored transposed.
fn operands<'a>(
    a: &'a [f32],
    b: &'a [f32],
    (m, n, k): (usize, usize, usize),
    t: bool,
) -> (Operand<'a>, Operand<'a>) {
    let (rsa, csa) = if t { (1, m) } else { (k, 1) };
    let (rsb, csb) = if t { (1, k) } else { (n, 1) };
    (
        Operand {
            data: a,
            rs: rsa,
            cs: csa,
        },
        Operand {
            data: b,
            rs: rsb,
            cs: csb,
        },
    )
}

/// `c0` after `C = alpha * A B + beta * C` by `kernel`, with C's strides `(rsc, csc)`.
#[allow(clippy::too_many_arguments)]
fn run_kernel(
    kernel: Kernel,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (a, b): (Operand, Operand),
    beta: f32,
    c0: &[f32],
    (rsc, csc): (usize, usize),
    parallel: bool,
) -> Vec<f32> {
    let mut c = c0.to_vec();
    assert!(c.len() > (m - 1) * rsc + (n - 1) * csc);
    let product = Product {
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c: CPtr(c.as_mut_ptr()),
        rsc,
        csc,
    };
    // SAFETY: `c` covers every element (asserted) and the tests' (rsc, csc) do not overlap.
    unsafe { gemm_unchecked(kernel, product, parallel) };
    c
}

/// Every kernel (not only the selected one) against the naive loop, including edge
/// tiles of every height and width and a column-major C.
#[test]
fn every_kernel_matches_naive() {
    for kern in kernels() {
        for &(m, n, k) in &[(1, 1, 1), (15, 33, 17), (29, 47, 300), (6, 100, 25)] {
            for &(rsc, csc) in &[(n, 1), (1, m), (2 * n + 1, 2)] {
                let a = random(m * k, 1);
                let b = random(k * n, 2);
                let len = (m - 1) * rsc + (n - 1) * csc + 1;
                let c0 = random(len, 3);
                let mut want = c0.clone();
                gemm_naive(m, n, k, 0.5, &a, k, 1, &b, 1, k, 2.0, &mut want, rsc, csc);
                let b_t = Operand {
                    data: &b,
                    rs: 1,
                    cs: k,
                };
                let a_rows = Operand {
                    data: &a,
                    rs: k,
                    cs: 1,
                };
                let got = run_kernel(
                    kern,
                    (m, n, k),
                    0.5,
                    (a_rows, b_t),
                    2.0,
                    &c0,
                    (rsc, csc),
                    true,
                );
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        approx::abs_diff_eq!(g, w, epsilon = 1e-4 * (1.0 + w.abs())),
                        "{} {m}x{n}x{k}",
                        kern.name
                    );
                }
            }
        }
    }
}

/// The skinny kernels change no bits: every skinny shape (short k, short m, long k cut into
/// KC slices, ragged row groups), with transposed and strided operands, row- and
/// column-major C and beta 0 or not, equals the packed kernels exactly.
#[test]
fn skinny_products_equal_the_packed_kernels_bit_for_bit() {
    let Some(with) = kernels().into_iter().find(|k| k.skinny.is_some()) else {
        skip(Reason::Hardware(
            "no skinny kernels on this CPU (they need AVX-512)".into(),
        ));
        return;
    };
    let without = Kernel {
        skinny: None,
        ..with
    };
    let shapes = [
        (7000, 5, 3),
        (7000, 3, 5),
        (13, 16, 16),
        (1, 1, 1),
        (5, 3, 7000),
        (16, 9, 600),
        (3, 16, 257),
        (9, 1, 17),
        (1 << 18, 16, 1), // large enough to be split over threads
    ];
    for &(m, n, k) in &shapes {
        #[cfg(target_arch = "x86_64")]
        assert!(skinny::applies(m, n, k), "{m}x{n}x{k} is not skinny");
        for transposed in [false, true] {
            for &(rsc, csc, beta) in &[(n, 1, 0.0), (1, m, 0.5), (n + 3, 1, 1.0)] {
                let a = random(m * k, 11);
                // B with a stride between columns when transposed: k*n + 5 values.
                let b = random(k * n + 5, 12);
                let ops = operands(&a, &b, (m, n, k), transposed);
                let c0 = random((m - 1) * rsc + (n - 1) * csc + 1, 13);
                let run = |kern, parallel| {
                    run_kernel(kern, (m, n, k), 0.75, ops, beta, &c0, (rsc, csc), parallel)
                };
                let packed = run(without, false);
                for parallel in [false, true] {
                    let got = run(with, parallel);
                    let same = got
                        .iter()
                        .zip(&packed)
                        .all(|(g, p)| g.to_bits() == p.to_bits());
                    assert!(
                        same,
                        "{m}x{n}x{k} transposed={transposed} C ({rsc},{csc}) beta {beta}"
                    );
                }
            }
        }
    }
}

#[test]
fn overlap_check() {
    assert!(!may_overlap(&[(3, 4), (4, 1)]));
    assert!(!may_overlap(&[(3, 1), (4, 3)]));
    assert!(may_overlap(&[(3, 1), (4, 2)]));
    assert!(may_overlap(&[(3, 0), (1, 1)]));
    assert!(!may_overlap(&[(1, 0), (5, 1)]));
}

/// Asserts `got` is within a relative tolerance of `want`, scaled by the size of the sum.
fn assert_close(got: &[f32], want: &[f32], k: usize, what: &str) {
    assert_eq!(got.len(), want.len());
    // f32 summation of k products of values in [-1, 1]: the error grows at most ~k*eps.
    let tol = 1e-6 * (k as f32 + 4.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        assert!(
            approx::abs_diff_eq!(g, w, epsilon = tol * (1.0 + w.abs())),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Runs `sgemm` and the naive reference on the same inputs and compares.
#[allow(clippy::too_many_arguments)]
fn check_sgemm(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    pad: usize,
    nan_c: bool,
) {
    // Stored shapes: A is m x k (or k x m if transposed), rows padded by `pad`.
    let (ar, ac) = if ta == Transpose::No { (m, k) } else { (k, m) };
    let (br, bc) = if tb == Transpose::No { (k, n) } else { (n, k) };
    let (lda, ldb, ldc) = (ac + pad, bc + pad, n + pad);
    let a = random(ar * lda, 1);
    let b = random(br * ldb, 2);
    let c0 = if nan_c {
        vec![f32::NAN; m * ldc]
    } else {
        random(m * ldc, 3)
    };
    let mut got = c0.clone();
    sgemm(
        ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut got, ldc,
    );

    let (rsa, csa) = if ta == Transpose::No {
        (lda, 1)
    } else {
        (1, lda)
    };
    let (rsb, csb) = if tb == Transpose::No {
        (ldb, 1)
    } else {
        (1, ldb)
    };
    let mut want = c0.clone();
    gemm_naive(
        m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut want, ldc, 1,
    );
    // Padding columns of C must be left untouched (compared bitwise: they may be NaN).
    for i in 0..m {
        for j in n..ldc {
            assert_eq!(
                got[i * ldc + j].to_bits(),
                c0[i * ldc + j].to_bits(),
                "padding of C written at ({i}, {j})"
            );
        }
    }
    let valid = |v: &[f32]| -> Vec<f32> {
        (0..m)
            .flat_map(|i| v[i * ldc..i * ldc + n].to_vec())
            .collect()
    };
    let what = format!("{ta:?}{tb:?} m={m} n={n} k={k} alpha={alpha} beta={beta} pad={pad}");
    assert_close(&valid(&got), &valid(&want), k, &what);
}

const SIZES: [usize; 5] = [1, 7, 33, 129, 257];

#[test]
fn each_size_on_each_dimension() {
    // Every size on every dimension, with the other two at a middling size...
    for &s in &SIZES {
        for (m, n, k) in [(s, 33, 7), (7, s, 33), (33, 7, s)] {
            check_sgemm(Transpose::No, Transpose::No, m, n, k, 1.0, 0.0, 0, false);
        }
    }
    // ...plus mixed and extreme shapes.
    for (m, n, k) in [
        (257, 33, 129),
        (1, 257, 7),
        (129, 257, 1),
        (257, 1, 257),
        (1, 1, 257),
        (33, 129, 257),
    ] {
        check_sgemm(Transpose::No, Transpose::No, m, n, k, 1.0, 0.0, 0, false);
    }
}

#[test]
fn all_transpose_combinations() {
    use Transpose::*;
    for (ta, tb) in [(No, No), (No, Yes), (Yes, No), (Yes, Yes)] {
        for (m, n, k) in [(33, 129, 7), (129, 33, 257), (7, 257, 33), (1, 7, 129)] {
            check_sgemm(ta, tb, m, n, k, 1.0, 0.0, 0, false);
        }
    }
}

#[test]
fn alpha_beta_and_padded_rows() {
    use Transpose::*;
    for (ta, tb) in [(No, No), (Yes, Yes), (No, Yes)] {
        // beta 0 must overwrite a NaN-filled C without reading it.
        check_sgemm(ta, tb, 129, 33, 257, 1.0, 0.0, 3, true);
        check_sgemm(ta, tb, 33, 257, 129, -0.5, 0.0, 0, true);
        check_sgemm(ta, tb, 129, 33, 257, 1.0, 1.0, 5, false);
        check_sgemm(ta, tb, 257, 7, 33, -0.5, 1.0, 1, false);
        check_sgemm(ta, tb, 33, 129, 300, 2.0, -0.5, 2, false);
    }
}

#[test]
fn strided_and_column_major_c() {
    let (m, n, k) = (33, 129, 57);
    let a = random(m * k, 4);
    let b = random(k * n, 5);
    // C column-major (csc = m), then C with every other column (csc = 2) and padded rows.
    for (rsc, csc) in [(1, m), (2 * n + 3, 2), (1, m + 2)] {
        let len = (m - 1) * rsc + (n - 1) * csc + 1;
        let c0 = random(len, 6);
        let mut got = c0.clone();
        let mut want = c0.clone();
        gemm(m, n, k, 0.75, &a, k, 1, &b, n, 1, 0.5, &mut got, rsc, csc);
        gemm_naive(m, n, k, 0.75, &a, k, 1, &b, n, 1, 0.5, &mut want, rsc, csc);
        assert_close(&got, &want, k, &format!("rsc={rsc} csc={csc}"));
    }
}

#[test]
fn broadcast_operand_with_zero_stride() {
    // A row broadcast over all m rows (rsa = 0).
    let (m, n, k) = (40, 50, 60);
    let a = random(k, 7);
    let b = random(k * n, 8);
    let mut got = vec![0.0; m * n];
    let mut want = vec![0.0; m * n];
    gemm(m, n, k, 1.0, &a, 0, 1, &b, n, 1, 0.0, &mut got, n, 1);
    gemm_naive(m, n, k, 1.0, &a, 0, 1, &b, n, 1, 0.0, &mut want, n, 1);
    assert_close(&got, &want, k, "rsa=0");
}

#[test]
fn k_zero_scales_c_and_empty_is_noop() {
    let mut c = vec![2.0f32; 12];
    gemm(3, 4, 0, 1.0, &[], 1, 1, &[], 1, 1, 0.5, &mut c, 4, 1);
    assert!(c.iter().all(|&x| x == 1.0));
    let mut c = vec![f32::NAN; 12];
    gemm(3, 4, 0, 1.0, &[], 1, 1, &[], 1, 1, 0.0, &mut c, 4, 1);
    assert!(c.iter().all(|&x| x == 0.0));
    // m == 0 / n == 0: nothing is touched, even with empty slices.
    let mut empty: [f32; 0] = [];
    gemm(0, 5, 5, 1.0, &[], 5, 1, &[], 5, 1, 0.0, &mut empty, 5, 1);
    gemm(5, 0, 5, 1.0, &[], 5, 1, &[], 5, 1, 0.0, &mut empty, 0, 1);
}

/// Runs `gemm_batched` and compares every batch with a naive GEMM on that batch's slices.
#[allow(clippy::too_many_arguments)]
fn check_batched(batch: usize, m: usize, n: usize, k: usize, bsa: usize, bsb: usize, beta: f32) {
    let a = random((batch - 1) * bsa + m * k, 9);
    let b = random((batch - 1) * bsb + k * n, 10);
    let c0 = random(batch * m * n, 11);
    let mut got = c0.clone();
    gemm_batched(
        batch,
        m,
        n,
        k,
        1.5,
        &a,
        bsa,
        k,
        1,
        &b,
        bsb,
        1,
        k,
        beta,
        &mut got,
        m * n,
        n,
        1,
    );
    let mut want = c0;
    for i in 0..batch {
        gemm_naive(
            m,
            n,
            k,
            1.5,
            &a[i * bsa..],
            k,
            1,
            &b[i * bsb..],
            1,
            k,
            beta,
            &mut want[i * m * n..(i + 1) * m * n],
            n,
            1,
        );
    }
    assert_close(
        &got,
        &want,
        k,
        &format!("batch={batch} bsa={bsa} bsb={bsb}"),
    );
}

#[test]
fn batched_per_batch_and_broadcast() {
    let (m, n, k) = (16, 100, 25);
    // Per-batch operands, and A broadcast (a conv weight shared by every image).
    check_batched(10, m, n, k, m * k, k * n, 0.0);
    check_batched(10, m, n, k, 0, k * n, 1.0);
    check_batched(7, m, n, k, m * k, 0, 0.0);
    // Large enough per GEMM that each one is split over threads instead of the batch.
    check_batched(3, 129, 257, 129, 0, 257 * 129, 0.0);
}

#[test]
fn bit_identical_across_thread_counts() {
    let (m, n, k) = (300, 200, 500);
    let a = random(m * k, 12);
    let b = random(k * n, 13);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut c = vec![0.0f32; m * n];
            gemm(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut c, n, 1);
            let mut cb = vec![0.0f32; 4 * 30 * 40];
            gemm_batched(
                4, 30, 40, 500, 1.0, &a, 0, 500, 1, &b, 1, 200, 1, 0.0, &mut cb, 1200, 40, 1,
            );
            (c, cb)
        })
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (one, one_b) = run(1);
    for threads in [2, 3] {
        let (c, cb) = run(threads);
        assert!(
            bits(&c) == bits(&one),
            "gemm differs with {threads} threads"
        );
        assert!(
            bits(&cb) == bits(&one_b),
            "gemm_batched differs with {threads} threads"
        );
    }
}

#[test]
fn selected_kernel_is_named() {
    let name = selected_kernel();
    assert!(
        ["avx512", "avx2", "portable"]
            .iter()
            .any(|p| name.starts_with(p)),
        "{name}"
    );
}

/// A 2x2x3 product with operands of `a_len`, 6 and `c_len` elements (6, 6 and 4 fit).
fn small_product(a_len: usize, c_len: usize) {
    let mut c = vec![0.0; c_len];
    gemm(
        2,
        2,
        3,
        1.0,
        &vec![0.0; a_len],
        3,
        1,
        &[0.0; 6],
        2,
        1,
        0.0,
        &mut c,
        2,
        1,
    );
}

#[test]
#[should_panic(expected = "gemm")]
fn short_a_panics() {
    small_product(5, 4);
}

#[test]
#[should_panic(expected = "gemm")]
fn short_c_panics() {
    small_product(6, 3);
}

#[test]
#[should_panic(expected = "gemm")]
fn short_b_in_batch_panics() {
    let mut c = vec![0.0; 8];
    let (a, b) = ([0.0; 12], [0.0; 11]);
    gemm_batched(
        2, 2, 2, 3, 1.0, &a, 6, 3, 1, &b, 6, 2, 1, 0.0, &mut c, 4, 2, 1,
    );
}

#[test]
#[should_panic(expected = "gemm")]
fn overlapping_c_panics() {
    let mut c = vec![0.0; 4];
    gemm(
        2, 2, 2, 1.0, &[0.0; 4], 2, 1, &[0.0; 4], 2, 1, 0.0, &mut c, 0, 1,
    );
}

/// Products whose A fits one row block take the single-region parallel driver: it must agree
/// with the naive loop and give the same bits at any thread count, for row-major, transposed
/// and in-place (few rows) B, and ragged column counts.
#[test]
fn one_row_block_parallel_driver_matches_and_is_thread_independent() {
    // (m, n, k, B transposed): all above the parallel threshold of 2^22 multiply-adds.
    let cases = [
        (64, 512, 784, false),
        (64, 512, 784, true),
        (100, 333, 400, true),
        (20, 1001, 300, false),
        (256, 130, 200, false),
    ];
    for (m, n, k, transposed) in cases {
        let a = random(m * k, 21);
        let b = random(k * n, 22);
        let (rsb, csb) = if transposed { (1, k) } else { (n, 1) };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = vec![f32::NAN; m * n];
                gemm(m, n, k, 1.0, &a, k, 1, &b, rsb, csb, 0.0, &mut c, n, 1);
                c
            })
        };
        let mut want = vec![0.0f32; m * n];
        gemm_naive(m, n, k, 1.0, &a, k, 1, &b, rsb, csb, 0.0, &mut want, n, 1);
        let one = run(1);
        assert_close(
            &one,
            &want,
            k,
            &format!("{m}x{n}x{k} transposed B {transposed}"),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for threads in [2, 3] {
            assert!(
                bits(&run(threads)) == bits(&one),
                "{m}x{n}x{k}: differs with {threads} threads"
            );
        }
    }
}
