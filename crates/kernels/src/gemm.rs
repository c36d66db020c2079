//! Single-precision matrix multiply (GEMM): `C = alpha * A * B + beta * C`.
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

use rayon::prelude::*;
use std::cell::Cell;
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod skinny;

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
        // SAFETY: `check_len` proved that every index `i*bsc + r*rsc + j*csc` (r < m, j < n) is
        // inside `c`, and `may_overlap` proved no two (i, r, j) share an index, so the callee
        // (and concurrent callees for other `i`) write disjoint in-bounds locations.
        unsafe {
            let c = CPtr(c.at(i * batch_stride_c));
            gemm_unchecked(kernel, m, n, k, alpha, a, b, beta, c, rsc, csc, parallel);
        }
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
// The blocked driver
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

/// `(m, n, k, alpha, a, b, beta, c, rsc, csc, parallel)`, as `gemm_unchecked`.
type SkinnyFn =
    unsafe fn(usize, usize, usize, f32, Operand, Operand, f32, CPtr, usize, usize, bool);

fn selected() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return x86::AVX512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return x86::AVX2;
            }
        }
        PORTABLE
    })
}

thread_local! {
    // Packing buffers are reused between calls. They are taken out of the cell while in use
    // (instead of borrowed) so that a rayon task stolen by this thread while it waits simply
    // gets a fresh buffer rather than a RefCell panic.
    static PACK_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static PACK_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a 64-byte aligned scratch slice of `len` floats from the thread-local `key`.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<Cell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = key.take();
    // 16 spare floats let us start the slice on a cache-line boundary, so vector loads of the
    // packed panels never straddle two lines.
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let off = buf.as_ptr().align_offset(64).min(16);
    let r = f(&mut buf[off..off + len]);
    key.set(buf);
    r
}

/// Splits `0..total` into `ceil(total/max_block)` nearly equal blocks whose sizes are multiples
/// of `unit` (except the last). Depends only on the sizes, never on the thread count.
fn blocks(total: usize, max_block: usize, unit: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = total.div_ceil(max_block).max(1);
    let size = total.div_ceil(count).div_ceil(unit) * unit;
    (0..total)
        .step_by(size.max(1))
        .map(move |start| (start, size.min(total - start)))
}

/// Copies `width` lanes x `kc` steps of a strided matrix into `dst` as `kc` groups of `lanes`
/// floats, zero-padding lanes `width..lanes`. Lane `l` of step `p` is `src.data[base + l*src.rs
/// + p*src.cs]`. Used for an `A~` micro-panel (lanes = rows of A, steps = its columns) and for
/// a `B~` micro-panel (pass `B^T`: lanes = columns of B, steps = its rows).
fn pack_panel(dst: &mut [f32], lanes: usize, kc: usize, src: Operand, base: usize, width: usize) {
    let (data, lane_stride, step_stride) = (src.data, src.rs, src.cs);
    let dst = &mut dst[..kc * lanes];
    if width < lanes {
        dst.fill(0.0);
    }
    // Pick the loop order that reads the source sequentially: these copies run once per block,
    // but at 1024^3 they were still a tenth of the time when done carelessly.
    if lane_stride == 1 {
        // Each step is a contiguous run of lanes (e.g. a row of a row-major B).
        for (p, group) in dst.chunks_exact_mut(lanes).enumerate() {
            let run = &data[base + p * step_stride..][..width];
            // Fixed 8-float chunks compile to a few vector moves; a `copy_from_slice` of the
            // runtime length would be a `memcpy` call per step. The ragged end goes element
            // by element for the same reason.
            let whole = width / 8 * 8;
            for (d, s) in group[..whole]
                .chunks_exact_mut(8)
                .zip(run[..whole].chunks_exact(8))
            {
                d.copy_from_slice(s);
            }
            for (d, &s) in group[whole..width].iter_mut().zip(&run[whole..]) {
                *d = s;
            }
        }
    } else if step_stride == 1 {
        // Each lane is a contiguous run of steps (e.g. a row of a row-major A): a transpose.
        // Blocks of 8 lanes x 8 steps are read as eight contiguous runs and written as eight
        // contiguous groups, so both sides stream instead of one side striding.
        const B: usize = 8;
        let full_lanes = width / B * B;
        let full_steps = kc / B * B;
        for l0 in (0..full_lanes).step_by(B) {
            let rows: [&[f32]; B] =
                std::array::from_fn(|r| &data[base + (l0 + r) * lane_stride..][..kc]);
            for p0 in (0..full_steps).step_by(B) {
                let mut block = [[0.0f32; B]; B];
                for (r, row) in rows.iter().enumerate() {
                    block[r].copy_from_slice(&row[p0..p0 + B]);
                }
                for q in 0..B {
                    let group = &mut dst[(p0 + q) * lanes + l0..][..B];
                    for r in 0..B {
                        group[r] = block[r][q];
                    }
                }
            }
            for p in full_steps..kc {
                for r in 0..B {
                    dst[p * lanes + l0 + r] = rows[r][p];
                }
            }
        }
        for l in full_lanes..width {
            let run = &data[base + l * lane_stride..][..kc];
            for (group, &x) in dst.chunks_exact_mut(lanes).zip(run) {
                group[l] = x;
            }
        }
    } else {
        for (p, group) in dst.chunks_exact_mut(lanes).enumerate() {
            let start = base + p * step_stride;
            for (l, d) in group[..width].iter_mut().enumerate() {
                *d = data[start + l * lane_stride];
            }
        }
    }
}

/// Packs rows `ic..ic + mc` of A's k-slice `pc..pc + kc` into `dst` as micro-panels of `h` rows
/// each (rows spread evenly over the panels; see the blocked driver), each in an `MR`-row slot.
#[allow(clippy::too_many_arguments)]
fn pack_a_block(
    dst: &mut [f32],
    mr: usize,
    kc: usize,
    a: Operand,
    ic: usize,
    mc: usize,
    h: usize,
    pc: usize,
) {
    for (q, panel) in dst.chunks_mut(mr * kc).enumerate() {
        let i0 = ic + q * h;
        pack_panel(panel, mr, kc, a, i0 * a.rs + pc * a.cs, h.min(ic + mc - i0));
    }
}

/// Runs the micro-kernel for every packed A~ panel of `(panels, h, rows)` against one B~
/// micro-panel `(b, ldb, cols)`, writing the column of tiles whose top-left element is
/// `corner`: the macro-kernel, during which the B~ panel stays in L1 while A~ streams past.
///
/// # Safety
/// The `rows x cols` block of C at `corner` (strides `rsc`, `csc`) must be valid and touched by
/// no one else during the call; panels must hold `kc*MR` / `kc*NR` floats (`(kc-1)*ldb + NR`
/// in place); the kernel must suit this CPU.
unsafe fn run_tiles(
    kernel: Kernel,
    (panels, h, rows): (&[f32], usize, usize),
    (b, ldb, cols): (&[f32], usize, usize),
    kc: usize,
    (corner, rsc, csc): (*mut f32, usize, usize),
    alpha: f32,
    beta: f32,
) {
    for (r, ap) in panels.chunks(kernel.mr * kc).enumerate() {
        let i0 = r * h;
        let tile = Tile {
            kc,
            a: ap,
            b,
            ldb,
            c: corner.wrapping_add(i0 * rsc),
            rsc,
            csc,
            rows: h.min(rows - i0),
            cols,
            alpha,
            beta,
        };
        // SAFETY: the tile is inside the block the caller vouches for.
        unsafe { (kernel.run)(&tile) };
    }
}

/// The blocked GEMM on checked arguments.
///
/// # Safety
/// Every `c + r*rsc + j*csc` (r < m, j < n) must be valid for reads and writes, distinct, and
/// not accessed by anyone else during the call; `a`/`b` must cover every index of an `m x k` /
/// `k x n` matrix with their strides (when k > 0).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_unchecked(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: CPtr,
    rsc: usize,
    csc: usize,
    parallel: bool,
) {
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: in bounds and exclusively ours by the function contract.
                let x = unsafe { &mut *c.at(i * rsc + j * csc) };
                *x = if beta == 0.0 { 0.0 } else { beta * *x };
            }
        }
        return;
    }
    // The kernels vectorise along the columns of C. If C is column-major, compute
    // C^T = B^T A^T so that the contiguous direction is still the vector direction.
    if csc != 1 && rsc == 1 {
        // SAFETY: same elements, just named (j, i) instead of (i, j).
        return unsafe {
            gemm_unchecked(
                kernel,
                n,
                m,
                k,
                alpha,
                b.t(),
                a.t(),
                beta,
                c,
                csc,
                rsc,
                parallel,
            )
        };
    }

    #[cfg(target_arch = "x86_64")]
    if let Some(skinny_kernel) = kernel.skinny.filter(|_| skinny::applies(m, n, k)) {
        // SAFETY: forwarded from this function's contract; the kernel suits this CPU.
        return unsafe { skinny_kernel(m, n, k, alpha, a, b, beta, c, rsc, csc, parallel) };
    }

    let (mr, nr) = (kernel.mr, kernel.nr);
    let parallel = parallel
        && rayon::current_num_threads() > 1
        && m.saturating_mul(n).saturating_mul(k) >= PAR_THRESHOLD;

    // When A has only a few row tiles, each B~ micro-panel would be used just that many times,
    // so copying B costs about as much as the arithmetic (conv layers: m = 6..32, n = 78400).
    // If B's rows are contiguous the kernel then reads B in place, with B's row stride, and
    // only the ragged last panel of each block is packed (zero-padded).
    let direct_b = b.cs == 1 && m <= 3 * mr;
    // NC only bounds the size of the packed B~ block; unpacked, one block means fewer
    // fork-joins between threads.
    let nc_max = if direct_b { n } else { NC };

    if parallel && m <= MC {
        // SAFETY: forwarded from this function's contract.
        return unsafe {
            gemm_one_row_block(kernel, m, n, k, alpha, a, b, beta, c, rsc, csc, direct_b)
        };
    }

    for (jc, nc) in blocks(n, nc_max, nr) {
        for (pi, (pc, kc)) in blocks(k, KC, 1).enumerate() {
            // Only the first k-slice applies the caller's beta; the later ones accumulate.
            let beta = if pi == 0 { beta } else { 1.0 };
            let b_panels = nc.div_ceil(nr);
            with_buffer(&PACK_B, b_panels * nr * kc, |bbuf| {
                let pack_b = |(q, dst): (usize, &mut [f32])| {
                    let j0 = jc + q * nr;
                    let width = nr.min(n - j0);
                    if !(direct_b && width == nr) {
                        pack_panel(dst, nr, kc, b.t(), pc * b.rs + j0 * b.cs, width);
                    }
                };
                if parallel && !direct_b {
                    bbuf.par_chunks_mut(nr * kc).enumerate().for_each(pack_b);
                } else {
                    bbuf.chunks_mut(nr * kc).enumerate().for_each(pack_b);
                }
                let bbuf: &[f32] = bbuf;
                // The B~ micro-panel for columns j0.. and the distance between its steps.
                let b_panel = |j0: usize| -> (&[f32], usize) {
                    if direct_b && j0 + nr <= nc {
                        (&b.data[pc * b.rs + (jc + j0)..], b.rs)
                    } else {
                        let q = j0 / nr;
                        (&bbuf[q * nr * kc..(q + 1) * nr * kc], nr)
                    }
                };

                // One MC x KC block of A against the packed B block.
                let row_block = |(ic, mc): (usize, usize)| {
                    // Spread the rows evenly over the tiles: 16 rows become 8 + 8 rather than
                    // 14 + 2, because a 2-row tile has too few accumulators to keep the FMA
                    // units busy. Tile q covers rows q*h.. of the block and is packed at the
                    // start of its MR-row panel slot.
                    let a_panels = mc.div_ceil(mr);
                    let h = mc.div_ceil(a_panels);
                    with_buffer(&PACK_A, a_panels * mr * kc, |abuf| {
                        pack_a_block(abuf, mr, kc, a, ic, mc, h, pc);
                        let abuf: &[f32] = abuf;
                        // The macro-kernel for one B~ micro-panel: it stays in L1 while
                        // the A~ micro-panels stream past it.
                        let column_panel = |q: usize| {
                            let j0 = q * nr;
                            let (bp, ldb) = b_panel(j0);
                            let corner = c.at(ic * rsc + (jc + j0) * csc);
                            // SAFETY: the tiles lie inside C (clipped to m, n); tiles of
                            // different (ic, q) are disjoint, so no other task touches them.
                            unsafe {
                                run_tiles(
                                    kernel,
                                    (abuf, h, mc),
                                    (bp, ldb, nr.min(nc - j0)),
                                    kc,
                                    (corner, rsc, csc),
                                    alpha,
                                    beta,
                                )
                            };
                        };
                        if parallel {
                            // Hand out at least ~2^17 multiply-adds per task so scheduling
                            // stays cheap when the panels are tiny (small m and k).
                            let min_len = (1usize << 17) / (mc * kc * nr).max(1);
                            (0..b_panels)
                                .into_par_iter()
                                .with_min_len(min_len.max(1))
                                .for_each(column_panel);
                        } else {
                            (0..b_panels).for_each(column_panel);
                        }
                    });
                };
                if parallel {
                    let rows: Vec<_> = blocks(m, MC, mr).collect();
                    rows.into_par_iter().for_each(row_block);
                } else {
                    blocks(m, MC, mr).for_each(row_block);
                }
            });
        }
    }
}

/// The parallel driver when A fits one `MC` row block (a batch of activations times a weight
/// matrix, say): A~ is packed once for every k-slice, then a single parallel region hands out
/// column panels, and each task packs its own B~ micro-panel and walks all k-slices for it.
/// The blocked driver would fork and join twice per k-slice, and on small products waking the
/// other threads that often costs more than the arithmetic. Every element of C sees the same
/// kernel calls in the same k order as in the blocked driver, so the bits are the same.
///
/// # Safety
/// As [`gemm_unchecked`], with `k > 0`, `m <= MC` and C row-major in the kernels' sense.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_one_row_block(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: CPtr,
    rsc: usize,
    csc: usize,
    direct_b: bool,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let a_panels = m.div_ceil(mr);
    let h = m.div_ceil(a_panels);
    let slices: Vec<(usize, usize)> = blocks(k, KC, 1).collect();
    // A~ for slice `pi` starts at a_panels * mr * pc (the slices tile 0..k).
    with_buffer(&PACK_A, a_panels * mr * k, |abuf| {
        for &(pc, kc) in &slices {
            let slice = &mut abuf[a_panels * mr * pc..a_panels * mr * (pc + kc)];
            pack_a_block(slice, mr, kc, a, 0, m, h, pc);
        }
        let abuf: &[f32] = abuf;
        let b_panels = n.div_ceil(nr);
        let column_panel = |q: usize| {
            let j0 = q * nr;
            let width = nr.min(n - j0);
            with_buffer(&PACK_B, nr * KC, |bbuf| {
                for (pi, &(pc, kc)) in slices.iter().enumerate() {
                    let (bp, ldb): (&[f32], usize) = if direct_b && width == nr {
                        (&b.data[pc * b.rs + j0..], b.rs)
                    } else {
                        pack_panel(bbuf, nr, kc, b.t(), pc * b.rs + j0 * b.cs, width);
                        (&bbuf[..nr * kc], nr)
                    };
                    let a_slice = &abuf[a_panels * mr * pc..a_panels * mr * (pc + kc)];
                    let beta = if pi == 0 { beta } else { 1.0 };
                    // SAFETY: the tiles lie inside C (clipped to m, n); column panels are
                    // disjoint between tasks and the k-slices of one panel run in order here.
                    unsafe {
                        run_tiles(
                            kernel,
                            (a_slice, h, m),
                            (bp, ldb, width),
                            kc,
                            (c.at(j0 * csc), rsc, csc),
                            alpha,
                            beta,
                        )
                    };
                }
            });
        };
        // Hand out at least ~2^17 multiply-adds per task, as the blocked driver does.
        let min_len = (1usize << 17) / (m * k * nr).max(1);
        (0..b_panels)
            .into_par_iter()
            .with_min_len(min_len.max(1))
            .for_each(column_panel);
    });
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

// ---------------------------------------------------------------------------------------------
// x86-64 micro-kernels
// ---------------------------------------------------------------------------------------------

// The AVX-512 intrinsics were stabilised in Rust 1.89, the workspace's rust-version.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::skinny::avx512_skinny;
    use super::{store_scalar, Kernel, Tile};
    use std::arch::x86_64::*;

    /// Expands `match rows { 1 => f::<1, V>(t), ... }` so that every edge tile height gets its
    /// own fully unrolled kernel with exactly that many accumulator rows.
    macro_rules! by_rows {
        ($f:ident, $v:literal, $t:expr, [$($r:literal)*]) => {
            match $t.rows {
                $($r => $f::<$r, $v>($t),)*
                _ => unreachable!("tile taller than MR"),
            }
        };
    }

    // ----- AVX-512: 14 x 32 -----

    const MR512: usize = 14;
    const NR512: usize = 32;

    pub(super) const AVX512: Kernel = Kernel {
        name: "avx512 14x32",
        mr: MR512,
        nr: NR512,
        run: avx512_tile,
        skinny: Some(avx512_skinny),
    };

    /// # Safety
    /// See [`Kernel::run`]; the CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile(t: &Tile) {
        // SAFETY: forwarded contract.
        unsafe {
            if t.cols > 16 {
                by_rows!(avx512_kernel, 2, t, [1 2 3 4 5 6 7 8 9 10 11 12 13 14])
            } else {
                by_rows!(avx512_kernel, 1, t, [1 2 3 4 5 6 7 8 9 10 11 12 13 14])
            }
        }
    }

    /// The hot loop: `kc` rank-1 updates of the `R x 16V` accumulator tile. A separate
    /// function returning the tile by value lets LLVM keep all of it in registers (when the
    /// array was also read by the store code below, it kept a copy in memory updated every step).
    ///
    /// # Safety
    /// `a` must point at `kc` groups of `MR512` floats, `b` at `kc` groups of `NR512` floats
    /// `ldb` apart; AVX-512F available.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn avx512_loop<const R: usize, const V: usize>(
        kc: usize,
        mut a: *const f32,
        mut b: *const f32,
        ldb: usize,
    ) -> [[__m512; V]; R] {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let mut bv = [_mm512_setzero_ps(); V];
        for _ in 0..kc {
            // SAFETY: a and b advance by one group per iteration, kc groups are there.
            unsafe {
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(b.add(16 * v));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(i));
                    for (x, &bx) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(ai, bx, *x);
                    }
                }
                a = a.wrapping_add(MR512);
                b = b.wrapping_add(ldb);
            }
        }
        acc
    }

    /// An `R x 16V` tile: `R*V` zmm accumulators.
    ///
    /// # Safety
    /// See [`Kernel::run`]; `R == t.rows`, `16(V-1) < t.cols <= 16V`; AVX-512F available.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_kernel<const R: usize, const V: usize>(t: &Tile) {
        assert!(t.a.len() >= t.kc * MR512 && t.b.len() >= (t.kc - 1) * t.ldb + NR512);
        // Start pulling the C tile into cache now, so the stores at the end do not stall on
        // it (with large power-of-two row strides its rows also compete for the same L1 sets).
        for i in 0..R {
            for v in 0..V {
                let p = t.c.wrapping_add(i * t.rsc + 16 * v * t.csc);
                // A prefetch is only a hint: it never faults, whatever the address (safe fn).
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            }
        }
        // SAFETY: the assert above shows kc groups of MR (resp. NR) floats are in the panels.
        let acc = unsafe { avx512_loop::<R, V>(t.kc, t.a.as_ptr(), t.b.as_ptr(), t.ldb) };

        let (alpha, beta) = (_mm512_set1_ps(t.alpha), _mm512_set1_ps(t.beta));
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                let lanes = (t.cols - 16 * v).min(16);
                // SAFETY: column 16v < cols is inside the tile, which the caller guarantees is
                // ours; the masked load/store touch only the `lanes` valid columns.
                unsafe {
                    let c = t.c.add(i * t.rsc + 16 * v * t.csc);
                    if t.csc == 1 {
                        let mask: __mmask16 = (((1u32 << lanes) - 1) & 0xffff) as u16;
                        let mut r = _mm512_mul_ps(alpha, x);
                        if t.beta != 0.0 {
                            let old = _mm512_maskz_loadu_ps(mask, c);
                            r = _mm512_add_ps(r, _mm512_mul_ps(beta, old));
                        }
                        _mm512_mask_storeu_ps(c, mask, r);
                    } else {
                        let mut tmp = [0.0f32; 16];
                        _mm512_storeu_ps(tmp.as_mut_ptr(), x);
                        for (j, &ab) in tmp.iter().enumerate().take(lanes) {
                            store_scalar(c.add(j * t.csc), ab, t.alpha, t.beta);
                        }
                    }
                }
            }
        }
    }

    // ----- AVX2 + FMA: 6 x 16 -----

    const MR256: usize = 6;
    const NR256: usize = 16;

    pub(super) const AVX2: Kernel = Kernel {
        name: "avx2 6x16",
        mr: MR256,
        nr: NR256,
        run: avx2_tile,
        skinny: None,
    };

    /// # Safety
    /// See [`Kernel::run`]; the CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile(t: &Tile) {
        // SAFETY: forwarded contract.
        unsafe {
            if t.cols > 8 {
                by_rows!(avx2_kernel, 2, t, [1 2 3 4 5 6])
            } else {
                by_rows!(avx2_kernel, 1, t, [1 2 3 4 5 6])
            }
        }
    }

    /// The hot loop, as [`avx512_loop`].
    ///
    /// # Safety
    /// `a` must point at `kc` groups of `MR256` floats, `b` at `kc` groups of `NR256` floats
    /// `ldb` apart; AVX2 and FMA available.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn avx2_loop<const R: usize, const V: usize>(
        kc: usize,
        mut a: *const f32,
        mut b: *const f32,
        ldb: usize,
    ) -> [[__m256; V]; R] {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        let mut bv = [_mm256_setzero_ps(); V];
        for _ in 0..kc {
            // SAFETY: a and b advance by one group per iteration, kc groups are there.
            unsafe {
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(b.add(8 * v));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_set1_ps(*a.add(i));
                    for (x, &bx) in row.iter_mut().zip(&bv) {
                        *x = _mm256_fmadd_ps(ai, bx, *x);
                    }
                }
            }
            a = a.wrapping_add(MR256);
            b = b.wrapping_add(ldb);
        }
        acc
    }

    /// An `R x 8V` tile: `R*V` ymm accumulators.
    ///
    /// # Safety
    /// See [`Kernel::run`]; `R == t.rows`, `8(V-1) < t.cols <= 8V`; AVX2 and FMA available.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_kernel<const R: usize, const V: usize>(t: &Tile) {
        assert!(t.a.len() >= t.kc * MR256 && t.b.len() >= (t.kc - 1) * t.ldb + NR256);
        // SAFETY: the assert above shows the panels hold what the loop reads.
        let acc = unsafe { avx2_loop::<R, V>(t.kc, t.a.as_ptr(), t.b.as_ptr(), t.ldb) };

        let (alpha, beta) = (_mm256_set1_ps(t.alpha), _mm256_set1_ps(t.beta));
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                let lanes = (t.cols - 8 * v).min(8);
                // SAFETY: full vectors are only stored when all 8 columns are in the tile;
                // partial ones go element by element; the tile is ours by contract.
                unsafe {
                    let c = t.c.add(i * t.rsc + 8 * v * t.csc);
                    if t.csc == 1 && lanes == 8 {
                        let mut r = _mm256_mul_ps(alpha, x);
                        if t.beta != 0.0 {
                            r = _mm256_add_ps(r, _mm256_mul_ps(beta, _mm256_loadu_ps(c)));
                        }
                        _mm256_storeu_ps(c, r);
                    } else {
                        let mut tmp = [0.0f32; 8];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), x);
                        for (j, &ab) in tmp.iter().enumerate().take(lanes) {
                            store_scalar(c.add(j * t.csc), ab, t.alpha, t.beta);
                        }
                    }
                }
            }
        }
    }

    /// The kernels this CPU can run, for the unit tests.
    #[cfg(test)]
    pub(super) fn available() -> Vec<Kernel> {
        let mut v = vec![];
        if is_x86_feature_detected!("avx512f") {
            v.push(AVX512);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(AVX2);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut v = vec![PORTABLE];
        #[cfg(target_arch = "x86_64")]
        v.extend(x86::available());
        v
    }

    fn fill(len: usize, seed: u32) -> Vec<f32> {
        // A tiny LCG: the unit tests must not depend on dev-dependencies' APIs.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Every kernel (not only the selected one) against the naive loop, including edge
    /// tiles of every height and width and a column-major C.
    #[test]
    fn every_kernel_matches_naive() {
        for kern in kernels() {
            for &(m, n, k) in &[(1, 1, 1), (15, 33, 17), (29, 47, 300), (6, 100, 25)] {
                for &(rsc, csc) in &[(n, 1), (1, m), (2 * n + 1, 2)] {
                    let a = fill(m * k, 1);
                    let b = fill(k * n, 2);
                    let len = (m - 1) * rsc + (n - 1) * csc + 1;
                    let c0 = fill(len, 3);
                    let mut want = c0.clone();
                    gemm_naive(m, n, k, 0.5, &a, k, 1, &b, 1, k, 2.0, &mut want, rsc, csc);
                    let mut got = c0.clone();
                    let (ao, bo) = (
                        Operand {
                            data: &a,
                            rs: k,
                            cs: 1,
                        },
                        Operand {
                            data: &b,
                            rs: 1,
                            cs: k,
                        },
                    );
                    // SAFETY: `len` covers every element and (rsc, csc) do not overlap.
                    unsafe {
                        gemm_unchecked(
                            kern,
                            m,
                            n,
                            k,
                            0.5,
                            ao,
                            bo,
                            2.0,
                            CPtr(got.as_mut_ptr()),
                            rsc,
                            csc,
                            true,
                        );
                    }
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
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
            eprintln!("SKIPPED: no skinny kernels on this CPU");
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
            assert!(skinny::applies(m, n, k), "{m}x{n}x{k} is not skinny");
            for transposed in [false, true] {
                for &(rsc, csc, beta) in &[(n, 1, 0.0), (1, m, 0.5), (n + 3, 1, 1.0)] {
                    let a = fill(m * k, 11);
                    let b = fill(k * n + 5, 12);
                    // A row-major or transposed in memory; B with a stride between columns.
                    let ao = if transposed {
                        Operand {
                            data: &a,
                            rs: 1,
                            cs: m,
                        }
                    } else {
                        Operand {
                            data: &a,
                            rs: k,
                            cs: 1,
                        }
                    };
                    let bo = if transposed {
                        Operand {
                            data: &b,
                            rs: 1,
                            cs: k,
                        }
                    } else {
                        Operand {
                            data: &b,
                            rs: n,
                            cs: 1,
                        }
                    };
                    let len = (m - 1) * rsc + (n - 1) * csc + 1;
                    let c0 = fill(len, 13);
                    let run = |kern: Kernel, parallel: bool| {
                        let mut c = c0.clone();
                        // SAFETY: `len` covers every element and (rsc, csc) do not overlap.
                        unsafe {
                            gemm_unchecked(
                                kern,
                                m,
                                n,
                                k,
                                0.75,
                                ao,
                                bo,
                                beta,
                                CPtr(c.as_mut_ptr()),
                                rsc,
                                csc,
                                parallel,
                            )
                        };
                        c
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
}
