//! Packing: copying a block of `A` or `B` into the contiguous, panel-ordered buffers `A~` and
//! `B~` the micro-kernels stream (see "Why pack" in `mod.rs`).

use super::Operand;
use std::cell::Cell;

thread_local! {
    // Packing buffers are reused between calls. They are taken out of the cell while in use
    // (instead of borrowed) so that a rayon task stolen by this thread while it waits simply
    // gets a fresh buffer rather than a RefCell panic.
    pub(super) static PACK_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    pub(super) static PACK_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a 64-byte aligned scratch slice of `len` floats from the thread-local `key`.
pub(super) fn with_buffer<R>(
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

/// Copies `width` lanes x `kc` steps of a strided matrix into `dst` as `kc` groups of `lanes`
/// floats, zero-padding lanes `width..lanes`. Lane `l` of step `p` is `src.data[base + l*src.rs
/// + p*src.cs]`. Used for an `A~` micro-panel (lanes = rows of A, steps = its columns) and for
/// a `B~` micro-panel (pass `B^T`: lanes = columns of B, steps = its rows).
pub(super) fn pack_panel(
    dst: &mut [f32],
    lanes: usize,
    kc: usize,
    src: Operand,
    base: usize,
    width: usize,
) {
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
pub(super) fn pack_a_block(
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
