//! Single-precision matrix multiply (GEMM): `C = alpha * A * B + beta * C`.
//!
//! ```text
//! A [m, k] · B [k, n] -> C [m, n]:   C[i][j] = alpha * Σ_p A[i][p] * B[p][j] + beta * C[i][j]
//! ```
//!
//! Each operand is any strided view (element (i, j) at `i*rs + j*cs`), so a transpose is a
//! swap of strides, never a copy.
//!
//! # The loop nest
//!
//! A naive triple loop (kept here as [`gemm_naive`]) is slow not because it does too much
//! arithmetic but because it waits for memory: every multiply-add needs an element of `A`
//! and of `B`, and for large matrices those come from main memory over and over. The fast
//! path follows the BLIS recipe: five loops around a tiny *micro-kernel*, each loop chosen so
//! that the data it reuses stays in one level of the cache hierarchy.
//!
//! ```text
//! for jc in 0..n step NC                     5th loop: a block of NC columns of B and C
//!   for pc in 0..k step KC                   4th loop: a KC-deep slice of the k dimension
//!     pack B[pc.., jc..] into B~             (KC x NC, lives in L3 / shared by all threads)
//!     for ic in 0..m step MC    (parallel)   3rd loop: a block of MC rows of A and C
//!       pack A[ic.., pc..] into A~           (MC x KC, sized to stay in the L2 cache)
//!       for jr in 0..NC step NR (parallel)   2nd loop: one NR-wide micro-panel of B~ (L1)
//!         for ir in 0..MC step MR            1st loop: one MR-tall micro-panel of A~
//!           micro-kernel: C[ir..ir+MR, jr..jr+NR] += A~ micro-panel * B~ micro-panel
//! ```
//!
//! The micro-kernel keeps the whole `MR x NR` tile of `C` in vector registers while it walks
//! the `KC` shared dimension: per step it loads one row of the `B~` micro-panel (`NR` floats,
//! a few vector loads), broadcasts the `MR` values of the `A~` column one at a time, and does
//! `MR * NR / lanes` fused multiply-adds. Only at the end is the tile written to `C` (scaled by
//! `alpha`, plus `beta * C`). Because `C` is only touched once per `KC` slice, the memory
//! traffic for `C` is amortised over `KC` multiply-adds per element.
//!
//! # Why pack
//!
//! Packing copies a block of `A` (or `B`) into a contiguous buffer laid out in exactly the
//! order the micro-kernel reads it: `A~` as `MR`-row panels stored column by column, `B~` as
//! `NR`-column panels stored row by row. The micro-kernel then streams both with unit stride
//! (perfect for the hardware prefetcher, no TLB misses, no cache-set conflicts from large
//! leading dimensions). Packing reads the source through its arbitrary strides, so a
//! transposed or otherwise strided operand costs nothing extra in the hot loop; and padding the
//! last panel with zeros lets the micro-kernel always run the same code on edges. The copy is
//! `O(mk + kn)` work against `O(mnk)` arithmetic, so it pays for itself beyond tiny sizes.
//!
//! # Why these tile sizes
//!
//! The kernel vectorises along the columns of `C` (`NR` is a multiple of the vector width), so
//! rows of a row-major `C` are written with plain vector stores. (A column-major `C` is handled
//! by computing `C^T = B^T A^T` instead, which swaps the roles.) The tile is chosen to fill the
//! register file with accumulators while leaving a few registers for the `B` row and the
//! broadcast `A` value:
//!
//! * AVX-512 (32 `zmm` registers of 16 floats): `MR x NR = 14 x 32` is 14 x 2 = 28
//!   accumulators + 2 for the `B` row + 1 broadcast. Each step issues 28 FMAs against only
//!   2 vector loads and 14 broadcasts, so the two FMA units, not the load ports, are the limit.
//!   28 independent accumulators also hide the 4-cycle FMA latency (8 needed) with room to spare.
//! * AVX2 + FMA (16 `ymm` registers of 8 floats): `6 x 16` = 12 accumulators + 2 + 1.
//! * Portable Rust: a `4 x 8` array of accumulators that the compiler can keep in SSE/NEON
//!   registers; used on CPUs without the above.
//!
//! Tiles on the bottom/right edge run a kernel instantiated for exactly the remaining number of
//! rows and vectors (const generics), so a 6-row `C` (e.g. a conv layer with 6 output
//! channels) does not waste 8/14 of its arithmetic on padding, and the rows of a block are
//! spread evenly over its tiles (16 rows = 8 + 8, not 14 + 2).
//!
//! When `A` has only a few rows (`m <= 3*MR`, typical of conv layers as GEMMs) each `B` panel
//! would be used at most three times, so packing it would cost as much as the arithmetic; if
//! `B`'s rows are contiguous the kernel then reads it in place and only ragged edge panels are
//! packed.
//!
//! # Threads and determinism
//!
//! Work is split over independent blocks of `C` (the `ic` row blocks and the `jr` column
//! panels), never over `k`: every element of `C` is produced by the same sequence of
//! floating-point operations (same `KC` slices, same order inside the micro-kernel) whatever
//! the number of threads, so results are bit-identical at any thread count. Small problems run
//! on the calling thread to avoid rayon's scheduling overhead.
//!
//! # Reading order
//!
//! This file: the API, the argument checks, the plain triple loop [`gemm_naive`] and the
//! portable micro-kernel. Then `blocked.rs` (the five loops and their split over threads),
//! `pack.rs` (the copies into `A~` and `B~`), `x86.rs` (the AVX-512 and AVX2+FMA
//! micro-kernels), `skinny.rs` (unpacked kernels for products with at most 16 columns), and
//! `cuda.rs`, which launches the GEMM ladder of `kernels/gemm.cu`.

use crate::simd::Isa;
use blocked::gemm_unchecked;
use rayon::prelude::*;
use std::sync::OnceLock;

mod blocked;
pub mod cuda;
mod pack;
#[cfg(target_arch = "x86_64")]
mod skinny;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;

/// Whether an operand is used as stored or transposed (row-major BLAS convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    /// Use the matrix as stored.
    No,
    /// Use the transpose of the stored matrix.
    Yes,
}

/// Depth of one packed slice of the shared dimension. A `B~` micro-panel is `KC x NR` floats;
/// 256 x 32 x 4 B = 32 KiB keeps it in a 48 KiB L1 while `A~` streams past it.
const KC: usize = 256;

/// Splits `0..total` into `ceil(total/max_block)` nearly equal blocks whose sizes are multiples
/// of `unit` (except the last). Depends only on the sizes, never on the thread count.
fn blocks(total: usize, max_block: usize, unit: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = total.div_ceil(max_block).max(1);
    let size = total.div_ceil(count).div_ceil(unit) * unit;
    (0..total)
        .step_by(size.max(1))
        .map(move |start| (start, size.min(total - start)))
}

/// Rows of `A` per packed block; `MC x KC` floats (~260 KiB) sit comfortably in L2 and there
/// are still several blocks to hand to threads for m around 1000.
const MC: usize = 256;
/// Columns of `B` per packed block; `KC x NC` floats (4 MiB) is meant for the shared L3.
const NC: usize = 4096;
/// Below this many multiply-adds (m*n*k) a GEMM runs on the calling thread. Measured: 128^3
/// (2M) and a 32x196x400 conv layer still ran faster on one thread than on two, because waking
/// and synchronising rayon workers costs tens of microseconds.
const PAR_THRESHOLD: usize = 1 << 22;
/// In a batched GEMM, problems smaller than this (m*n*k) are not split internally; instead the
/// batch is spread over threads.
const BATCH_SPLIT_THRESHOLD: usize = 1 << 22;

/// General strided GEMM: `C[m,n] = alpha * A[m,k] * B[k,n] + beta * C[m,n]`.
///
/// Element `(i,j)` of `A` is `a[i*rsa + j*csa]`; likewise `B` (`rsb`, `csb`) and `C`
/// (`rsc`, `csc`). Any strides are allowed for `A` and `B` (transposed views are swapped
/// strides, a stride may be 0 to broadcast). `C`'s strides must not make two elements share a
/// memory location. When `beta == 0`, `C` is not read, so NaN/garbage in `C` does not leak.
/// `k == 0` means `C = beta * C`; `m == 0` or `n == 0` is a no-op. `alpha == 0` is not special:
/// the product is still computed (NaN/inf in `A`/`B` propagate, as the formula says).
///
/// # Panics
/// If a slice is too short for the largest index it would touch, or `C`'s strides overlap.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    gemm_batched(
        1, m, n, k, alpha, a, 0, rsa, csa, b, 0, rsb, csb, beta, c, 0, rsc, csc,
    );
}

/// BLAS-style row-major SGEMM: `C = alpha * op(A) * op(B) + beta * C`, where `op(A)` is
/// `m x k`, `op(B)` is `k x n`, and `lda`/`ldb`/`ldc` are the row strides of the *stored*
/// matrices (so a stored `A` is `m x k` with `lda >= k` for [`Transpose::No`] and `k x m` with
/// `lda >= m` for [`Transpose::Yes`]).
///
/// # Panics
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (rsa, csa) = match ta {
        Transpose::No => (lda, 1),
        Transpose::Yes => (1, lda),
    };
    let (rsb, csb) = match tb {
        Transpose::No => (ldb, 1),
        Transpose::Yes => (1, ldb),
    };
    gemm(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, 1);
}

/// Batched strided GEMM: for each `i` in `0..batch`, multiplies the matrices starting at
/// offsets `i*batch_stride_a`, `i*batch_stride_b` and `i*batch_stride_c` (otherwise as
/// [`gemm`]). A batch stride of 0 broadcasts `A` or `B`; `C`'s batches must not overlap.
///
/// Small GEMMs run in parallel over the batch (each on one thread); large ones run one after
/// the other, each split over all threads. Either way the result is bit-identical.
///
/// # Panics
/// If a slice is too short for the largest index it would touch, or `C`'s batch/row/column
/// strides make two output elements share a location.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    batch_stride_a: usize,
    rsa: usize,
    csa: usize,
    b: &[f32],
    batch_stride_b: usize,
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    batch_stride_c: usize,
    rsc: usize,
    csc: usize,
) {
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        check_len(
            "A",
            a.len(),
            &[(batch, batch_stride_a), (m, rsa), (k, csa)],
            m,
            n,
            k,
        );
        check_len(
            "B",
            b.len(),
            &[(batch, batch_stride_b), (k, rsb), (n, csb)],
            m,
            n,
            k,
        );
    }
    let c_dims = [(batch, batch_stride_c), (m, rsc), (n, csc)];
    check_len("C", c.len(), &c_dims, m, n, k);
    assert!(
        !may_overlap(&c_dims),
        "gemm: the strides of C (batch {batch_stride_c}, row {rsc}, col {csc}) for \
         batch={batch} m={m} n={n} make output elements overlap"
    );

    let kernel = selected();
    let c = CPtr(c.as_mut_ptr());
    let work = m.saturating_mul(n).saturating_mul(k);
    let one = |i: usize, parallel: bool| {
        // k == 0 means A and B are never read; an empty slice is then fine.
        let skip = |s: usize| if k == 0 { 0 } else { i * s };
        let a = Operand {
            data: &a[skip(batch_stride_a)..],
            rs: rsa,
            cs: csa,
        };
        let b = Operand {
            data: &b[skip(batch_stride_b)..],
            rs: rsb,
            cs: csb,
        };
        let product = Product {
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c: CPtr(c.at(i * batch_stride_c)),
            rsc,
            csc,
        };
        // SAFETY: `check_len` proved that every index `i*bsc + r*rsc + j*csc` (r < m, j < n) is
        // inside `c`, and `may_overlap` proved no two (i, r, j) share an index, so the callee
        // (and concurrent callees for other `i`) write disjoint in-bounds locations.
        unsafe { gemm_unchecked(kernel, product, parallel) };
    };
    let threads = rayon::current_num_threads();
    let split_batch = batch > 1
        && work.saturating_mul(batch) >= PAR_THRESHOLD
        && (work < BATCH_SPLIT_THRESHOLD || batch >= 4 * threads);
    if split_batch {
        (0..batch).into_par_iter().for_each(|i| one(i, false));
    } else {
        (0..batch).for_each(|i| one(i, true));
    }
}

/// The plain triple loop: the reference for tests and the first rung of the benchmark ladder.
/// Same semantics as [`gemm`]. Sums are accumulated in `f64` and `alpha`/`beta` applied in
/// `f64`, so it is also a more accurate reference than any `f32` summation order.
///
/// # Panics
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_naive(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        check_len("A", a.len(), &[(m, rsa), (k, csa)], m, n, k);
        check_len("B", b.len(), &[(k, rsb), (n, csb)], m, n, k);
    }
    check_len("C", c.len(), &[(m, rsc), (n, csc)], m, n, k);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            for p in 0..k {
                sum += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            let out = &mut c[i * rsc + j * csc];
            let mut v = alpha as f64 * sum;
            if beta != 0.0 {
                v += beta as f64 * *out as f64;
            }
            *out = v as f32;
        }
    }
}

/// Which micro-kernel the dispatcher picked on this machine, e.g. `"avx512 14x32"`.
pub fn selected_kernel() -> &'static str {
    selected().name
}

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

/// Panics unless `len` covers the largest index `sum (dim-1)*stride` over `dims`.
fn check_len(name: &str, len: usize, dims: &[(usize, usize)], m: usize, n: usize, k: usize) {
    let max = dims.iter().try_fold(0usize, |acc, &(dim, stride)| {
        (dim - 1).checked_mul(stride)?.checked_add(acc)
    });
    match max {
        Some(max) if max < len => {}
        _ => panic!(
            "gemm: operand {name} has {len} elements, too few for m={m} n={n} k={k} with \
             (size, stride) {dims:?}"
        ),
    }
}

/// Conservative test for whether a strided layout can map two indices to one location: sort
/// the dimensions by stride; each stride must then exceed the span of all smaller ones. True
/// for every layout a tensor library produces (contiguous, transposed, padded, permuted).
fn may_overlap(dims: &[(usize, usize)]) -> bool {
    let mut d: Vec<(usize, usize)> = dims.iter().copied().filter(|&(n, _)| n > 1).collect();
    d.sort_by_key(|&(_, s)| s);
    let mut span = 0usize; // largest offset reachable with the dimensions seen so far
    for (n, s) in d {
        if s <= span || s == 0 {
            return true;
        }
        span = match (n - 1).checked_mul(s).and_then(|x| x.checked_add(span)) {
            Some(x) => x,
            None => return true,
        };
    }
    false
}
// ---------------------------------------------------------------------------------------------
// The pieces the drivers and micro-kernels share
// ---------------------------------------------------------------------------------------------

/// A read-only strided matrix: element (r, c) is `data[r*rs + c*cs]`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl Operand<'_> {
    fn t(self) -> Self {
        Operand {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// The output pointer, shared between threads that write disjoint tiles of it.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: a CPtr is only dereferenced by tasks that own disjoint sets of elements (see the
// SAFETY comments at the dereference sites), so sharing the address between threads is sound.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The address `off` elements further on. Computing it is harmless; dereferencing it is
    /// what needs the bounds and ownership arguments.
    fn at(self, off: usize) -> *mut f32 {
        self.0.wrapping_add(off)
    }
}

/// Everything a micro-kernel needs for one `rows x cols` tile (`rows <= MR`, `cols <= NR`).
struct Tile<'a> {
    kc: usize,
    /// Packed `A~` micro-panel: `kc` groups of `MR` floats.
    a: &'a [f32],
    /// `B~` micro-panel: `kc` groups of `NR` floats, `ldb` apart (`NR` when packed).
    b: &'a [f32],
    ldb: usize,
    /// Top-left element of the tile in `C`.
    c: *mut f32,
    rsc: usize,
    csc: usize,
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
}

/// One product on checked arguments: `C = alpha * A B + beta * C` with `A` `m x k`, `B`
/// `k x n`, and element (i, j) of `C` at `c + i*rsc + j*csc`.
#[derive(Clone, Copy)]
struct Product<'a> {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand<'a>,
    b: Operand<'a>,
    beta: f32,
    c: CPtr,
    rsc: usize,
    csc: usize,
}

impl Product<'_> {
    /// `C^T = B^T A^T`: the same elements of `C`, named (j, i) instead of (i, j).
    fn transposed(self) -> Self {
        Product {
            m: self.n,
            n: self.m,
            a: self.b.t(),
            b: self.a.t(),
            rsc: self.csc,
            csc: self.rsc,
            ..self
        }
    }
}

/// A micro-kernel and its register tile shape.
#[derive(Clone, Copy)]
struct Kernel {
    name: &'static str,
    mr: usize,
    nr: usize,
    /// # Safety
    /// The tile's `C` elements must be valid for reads and writes and not accessed by anyone
    /// else during the call; `a` must hold `kc*mr` floats and `b` at least `(kc-1)*ldb + nr`
    /// (checked by the kernels: a failed check panics instead of reading out of bounds); the
    /// CPU must support
    /// the kernel's instruction set.
    run: unsafe fn(&Tile),
    /// Unpacked kernels for products with at most 16 columns and 16 rows or 16 steps of k
    /// (`gemm/skinny.rs`), where the CPU has them. Same contract as `gemm_unchecked`.
    skinny: Option<SkinnyFn>,
}

/// `(product, parallel)`, as `gemm_unchecked`.
type SkinnyFn = unsafe fn(Product, bool);

/// The micro-kernel for `isa`.
fn kernel_for(isa: Isa) -> Kernel {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => x86::AVX2,
        _ => PORTABLE,
    }
}

/// The micro-kernel for the widest instruction set this CPU has.
fn selected() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| kernel_for(Isa::detected()))
}

/// `C = alpha*ab + beta*C` for one element, without reading C when beta == 0. The vector
/// kernels use the same two multiplies and one add, so edge and interior tiles round alike.
///
/// # Safety
/// `c` must be valid for reads and writes.
#[inline(always)]
unsafe fn store_scalar(c: *mut f32, ab: f32, alpha: f32, beta: f32) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        *c = if beta == 0.0 {
            alpha * ab
        } else {
            alpha * ab + beta * *c
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Portable micro-kernel
// ---------------------------------------------------------------------------------------------

const PORTABLE_MR: usize = 4;
const PORTABLE_NR: usize = 8;

const PORTABLE: Kernel = Kernel {
    name: "portable 4x8",
    mr: PORTABLE_MR,
    nr: PORTABLE_NR,
    run: portable_tile,
    skinny: None,
};

/// Plain Rust: a fixed-size accumulator array with constant trip counts, which LLVM turns into
/// vector registers on any target. Computes the whole padded tile and stores the valid part.
///
/// # Safety
/// See [`Kernel::run`].
unsafe fn portable_tile(t: &Tile) {
    let mut acc = [[0.0f32; PORTABLE_NR]; PORTABLE_MR];
    for p in 0..t.kc {
        let ap = &t.a[p * PORTABLE_MR..][..PORTABLE_MR];
        let bp = &t.b[p * t.ldb..][..PORTABLE_NR];
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x += ai * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.rows) {
        for (j, &ab) in row.iter().enumerate().take(t.cols) {
            // SAFETY: (i, j) is inside the tile, which the caller guarantees is ours.
            unsafe { store_scalar(t.c.add(i * t.rsc + j * t.csc), ab, t.alpha, t.beta) };
        }
    }
}
