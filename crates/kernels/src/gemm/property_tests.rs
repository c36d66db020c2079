//! Property tests of the blocked GEMM: random sizes (1..80 in each of m, n, k), transposes,
//! padded leading dimensions, arbitrary strides, alpha and beta, each against an f64 triple
//! loop written here and against `gemm_naive`.

use super::{gemm, gemm_batched, gemm_naive, sgemm, Transpose};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `alpha * Σ_p a(i,p) b(p,j) + beta * c(i,j)` in f64 for every (i, j), as a flat m x n vector.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
    beta: f32,
    c: impl Fn(usize, usize) -> f32,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| a(i, p) as f64 * b(p, j) as f64).sum();
            let scaled = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c(i, j) as f64
            };
            out.push(alpha as f64 * dot + scaled);
        }
    }
    out
}

/// f32 summation of k products of values in [-1, 1], scaled by |alpha| and |beta|: the error
/// grows at most about k*eps times the magnitudes involved.
fn check(
    got: impl Fn(usize, usize) -> f32,
    want: &[f64],
    m: usize,
    n: usize,
    bound: f64,
    what: &str,
) -> Result<(), TestCaseError> {
    for i in 0..m {
        for j in 0..n {
            let (g, w) = (got(i, j) as f64, want[i * n + j]);
            prop_assert!(g.is_finite(), "{}: ({}, {}) is {}", what, i, j, g);
            prop_assert!(
                approx::abs_diff_eq!(g, w, epsilon = bound),
                "{}: ({}, {}): got {}, want {} (bound {})",
                what,
                i,
                j,
                g,
                w,
                bound
            );
        }
    }
    Ok(())
}

fn scalars() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), Just(1.0f32), Just(-1.0f32), -2.0f32..2.0]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// BLAS-style sgemm: every transpose pair, leading dimensions with padding, any alpha and
    /// beta. With beta = 0, C starts as NaN and must not leak into the result; the padding
    /// between rows of C must stay untouched.
    #[test]
    fn sgemm_matches_an_f64_loop(
        m in 1usize..80,
        n in 1usize..80,
        k in 1usize..80,
        ta in any::<bool>(),
        tb in any::<bool>(),
        pads in (0usize..4, 0usize..4, 0usize..4),
        alpha in scalars(),
        beta in scalars(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (ta, tb) = (
            if ta { Transpose::Yes } else { Transpose::No },
            if tb { Transpose::Yes } else { Transpose::No },
        );
        // Stored shapes: A is m x k (or k x m transposed), B is k x n (or n x k).
        let (a_rows, a_cols) = if ta == Transpose::Yes { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if tb == Transpose::Yes { (n, k) } else { (k, n) };
        let (lda, ldb, ldc) = (a_cols + pads.0, b_cols + pads.1, n + pads.2);
        let a = random(a_rows * lda, &mut rng);
        let b = random(b_rows * ldb, &mut rng);
        let c0 = if beta == 0.0 {
            vec![f32::NAN; m * ldc]
        } else {
            random(m * ldc, &mut rng)
        };
        let a_at = |i: usize, p: usize| if ta == Transpose::Yes { a[p * lda + i] } else { a[i * lda + p] };
        let b_at = |p: usize, j: usize| if tb == Transpose::Yes { b[j * ldb + p] } else { b[p * ldb + j] };
        let want = reference(m, n, k, alpha, a_at, b_at, beta, |i, j| c0[i * ldc + j]);

        let mut c = c0.clone();
        sgemm(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut c, ldc);
        let bound = 1e-6 * (k as f64 + 4.0) * (alpha.abs() as f64 + beta.abs() as f64 + 1.0);
        let what = format!("sgemm {ta:?}{tb:?} m={m} n={n} k={k} alpha={alpha} beta={beta}");
        check(|i, j| c[i * ldc + j], &want, m, n, bound, &what)?;
        for i in 0..m {
            for j in n..ldc {
                prop_assert_eq!(
                    c[i * ldc + j].to_bits(),
                    c0[i * ldc + j].to_bits(),
                    "{}: padding ({}, {}) was written",
                    &what,
                    i,
                    j
                );
            }
        }

        // gemm_naive (the benchmark's first rung) agrees with the loop here too.
        let mut naive = c0.clone();
        let (rsa, csa) = if ta == Transpose::Yes { (1, lda) } else { (lda, 1) };
        let (rsb, csb) = if tb == Transpose::Yes { (1, ldb) } else { (ldb, 1) };
        gemm_naive(m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut naive, ldc, 1);
        check(|i, j| naive[i * ldc + j], &want, m, n, 1e-5, &format!("gemm_naive, {what}"))?;
    }

    /// The general strided form: any row and column strides for A and B (including 0, a
    /// broadcast row or column), and a column-major C.
    #[test]
    fn strided_gemm_matches_an_f64_loop(
        m in 1usize..80,
        n in 1usize..80,
        k in 1usize..80,
        a_layout in (0usize..3, 1usize..3),
        b_layout in (0usize..3, 1usize..3),
        c_column_major in any::<bool>(),
        alpha in scalars(),
        beta in scalars(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // layout.0: 0 row-major, 1 column-major, 2 rows broadcast (row stride 0);
        // layout.1: a spacing factor between consecutive elements.
        let strides = |rows: usize, cols: usize, (kind, gap): (usize, usize)| -> (usize, usize, usize) {
            match kind {
                0 => (cols * gap, gap, rows * cols * gap),
                1 => (gap, rows * gap, rows * cols * gap),
                _ => (0, gap, cols * gap),
            }
        };
        let (rsa, csa, a_len) = strides(m, k, a_layout);
        let (rsb, csb, b_len) = strides(k, n, b_layout);
        let a = random(a_len, &mut rng);
        let b = random(b_len, &mut rng);
        let (rsc, csc) = if c_column_major { (1, m) } else { (n, 1) };
        let c0 = random(m * n, &mut rng);
        let want = reference(
            m,
            n,
            k,
            alpha,
            |i, p| a[i * rsa + p * csa],
            |p, j| b[p * rsb + j * csb],
            beta,
            |i, j| c0[i * rsc + j * csc],
        );
        let mut c = c0.clone();
        gemm(m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut c, rsc, csc);
        let bound = 1e-6 * (k as f64 + 4.0) * (alpha.abs() as f64 + beta.abs() as f64 + 1.0);
        check(
            |i, j| c[i * rsc + j * csc],
            &want,
            m,
            n,
            bound,
            &format!("gemm A{a_layout:?} B{b_layout:?} C col-major {c_column_major} m={m} n={n} k={k}"),
        )?;
    }

    /// A batch of small GEMMs equals the same GEMMs run one at a time, bit for bit (the batched
    /// path spreads the batch over threads; each problem must still be computed the same way).
    #[test]
    fn batched_gemm_equals_one_at_a_time(
        batch in 1usize..6,
        m in 1usize..40,
        n in 1usize..40,
        k in 1usize..40,
        broadcast_b in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = random(batch * m * k, &mut rng);
        let b = random(if broadcast_b { k * n } else { batch * k * n }, &mut rng);
        let bsb = if broadcast_b { 0 } else { k * n };
        let mut batched = vec![0.0f32; batch * m * n];
        gemm_batched(batch, m, n, k, 1.0, &a, m * k, k, 1, &b, bsb, n, 1, 0.0, &mut batched, m * n, n, 1);
        for i in 0..batch {
            let mut single = vec![0.0f32; m * n];
            gemm(m, n, k, 1.0, &a[i * m * k..], k, 1, &b[i * bsb..], n, 1, 0.0, &mut single, n, 1);
            let got: Vec<u32> = batched[i * m * n..(i + 1) * m * n].iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = single.iter().map(|v| v.to_bits()).collect();
            prop_assert!(got == want, "batch {} of {} ({}x{}x{}) differs", i, batch, m, n, k);
        }
    }
}
