//! The blocked driver: the five loops around the micro-kernel, and how they are split over
//! threads (see "The loop nest" and "Threads and determinism" in `mod.rs`).

use super::pack::{pack_a_block, pack_panel, with_buffer, PACK_A, PACK_B};
#[cfg(target_arch = "x86_64")]
use super::skinny;
use super::{blocks, Kernel, Product, Tile, KC, MC, NC, PAR_THRESHOLD};
use rayon::prelude::*;

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

/// The blocked GEMM on checked arguments: handles `k == 0` and a column-major `C`, hands
/// skinny products to their kernels, and picks one of the two drivers.
///
/// # Safety
/// Every `c + r*rsc + j*csc` (r < m, j < n) must be valid for reads and writes, distinct, and
/// not accessed by anyone else during the call; `a`/`b` must cover every index of an `m x k` /
/// `k x n` matrix with their strides (when k > 0).
pub(super) unsafe fn gemm_unchecked(kernel: Kernel, p: Product, parallel: bool) {
    if p.k == 0 {
        // SAFETY: forwarded from this function's contract.
        unsafe { scale_c(p) };
        return;
    }
    // The kernels vectorise along the columns of C. If C is column-major, compute
    // C^T = B^T A^T so that the contiguous direction is still the vector direction.
    if p.csc != 1 && p.rsc == 1 {
        // SAFETY: same elements, just named (j, i) instead of (i, j).
        return unsafe { gemm_unchecked(kernel, p.transposed(), parallel) };
    }

    #[cfg(target_arch = "x86_64")]
    if let Some(skinny_kernel) = kernel.skinny.filter(|_| skinny::applies(p.m, p.n, p.k)) {
        // SAFETY: forwarded from this function's contract; the kernel suits this CPU.
        return unsafe { skinny_kernel(p, parallel) };
    }

    let parallel = parallel
        && rayon::current_num_threads() > 1
        && p.m.saturating_mul(p.n).saturating_mul(p.k) >= PAR_THRESHOLD;

    // When A has only a few row tiles, each B~ micro-panel would be used just that many times,
    // so copying B costs about as much as the arithmetic (conv layers: m = 6..32, n = 78400).
    // If B's rows are contiguous the kernel then reads B in place, with B's row stride, and
    // only the ragged last panel of each block is packed (zero-padded).
    let direct_b = p.b.cs == 1 && p.m <= 3 * kernel.mr;

    if parallel && p.m <= MC {
        // SAFETY: forwarded from this function's contract.
        return unsafe { gemm_one_row_block(kernel, p, direct_b) };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { gemm_blocks(kernel, p, parallel, direct_b) }
}

/// `C = beta * C` (`C = 0` when beta is 0, without reading C): the product with `k == 0`.
///
/// # Safety
/// As [`gemm_unchecked`].
unsafe fn scale_c(p: Product) {
    let Product {
        m,
        n,
        beta,
        c,
        rsc,
        csc,
        ..
    } = p;
    for i in 0..m {
        for j in 0..n {
            // SAFETY: in bounds and exclusively ours by the function contract.
            let x = unsafe { &mut *c.at(i * rsc + j * csc) };
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

/// The five loops: `NC` column blocks of B, `KC` slices of k (B~ packed once per slice), `MC`
/// row blocks of A (A~ packed per block), then the macro-kernel per B~ micro-panel. With
/// `parallel`, the row blocks and the column panels inside each are split over threads.
///
/// # Safety
/// As [`gemm_unchecked`], with `k > 0` and C row-major in the kernels' sense.
unsafe fn gemm_blocks(kernel: Kernel, p: Product, parallel: bool, direct_b: bool) {
    let (m, n, k) = (p.m, p.n, p.k);
    let (a, b, c) = (p.a, p.b, p.c);
    let (alpha, beta, rsc, csc) = (p.alpha, p.beta, p.rsc, p.csc);
    let (mr, nr) = (kernel.mr, kernel.nr);
    // NC only bounds the size of the packed B~ block; unpacked, one block means fewer
    // fork-joins between threads.
    let nc_max = if direct_b { n } else { NC };

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
unsafe fn gemm_one_row_block(kernel: Kernel, p: Product, direct_b: bool) {
    let (m, n, k) = (p.m, p.n, p.k);
    let (a, b, c) = (p.a, p.b, p.c);
    let (alpha, beta, rsc, csc) = (p.alpha, p.beta, p.rsc, p.csc);
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
