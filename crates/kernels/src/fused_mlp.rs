//! A narrow multilayer perceptron as one kernel: a chain of fully connected layers, none wider
//! than [`MAX_WIDTH`], each with an optional bias and ReLU.
//!
//! For layer l with weight W_l `[o_l, i_l]` and bias b_l `[o_l]`, over N rows:
//!
//! ```text
//! forward:  z_l = h_l · W_lᵀ + b_l              [N, o_l]   (h_0 = x)
//!           h_{l+1} = relu(z_l), or z_l          [N, o_l]   (y = h_L)
//! backward: g = dy, then for l = L-1 down to 0:
//!           g ⊙= [h_{l+1} > 0]  on ReLU layers  [N, o_l]
//!           dW_l = gᵀ · h_l                     [o_l, i_l]
//!           db_l = Σ_rows g                      [o_l]
//!           g = g · W_l                          [N, i_l]   (dx after layer 0)
//! ```
//!
//! Why a kernel of its own: with a handful of columns, a GEMM call, a bias pass and a ReLU pass
//! each stream the `[N, width]` activations through memory for a few flops per element, and
//! the backward pass does it again three times per layer. Here rows go through the whole chain
//! a chunk of [`CHUNK_ROWS`] at a time, held feature-major (`[width][CHUNK_ROWS]`, a few KB in
//! L1), so every loop runs over whole vectors of rows: a layer's output column is sixteen
//! registers of running sums while its inputs stream past. The backward pass recomputes a
//! chunk's activations instead of storing them, and keeps each gradient as sixteen lane sums
//! whose lanes are added once at the end.
//!
//! Determinism: a backward task is [`TASK_CHUNKS`] chunks whose lane sums it adds in order,
//! and the tasks' sums are added in task order; whether tasks run on one thread or several
//! (only for large passes, see `worth_splitting`), the order is the same. Every product is
//! added with one fused multiply-add, in the same order on the AVX-512 path and the plain one,
//! so all give the same bits (tested). [`available`] says whether this CPU has FMA in
//! hardware; without it the plain path would call a software `fmaf` per product, and callers
//! should compose the layers from separate ops instead.

use rayon::prelude::*;

/// The widest layer input or output the kernel takes.
pub const MAX_WIDTH: usize = 16;

/// Chunks per task of the backward pass: the unit of its parallel work, each task summing its
/// chunks' gradients in order.
pub const TASK_CHUNKS: usize = 2;

/// Rows per chunk: the unit of the forward pass's parallel work, and of the backward pass's
/// summation order. A chunk's activations are held feature-major, `[width][CHUNK_ROWS]`, so
/// every loop over rows has a fixed length and runs in whole vectors.
pub const CHUNK_ROWS: usize = 256;
type Column = [f32; CHUNK_ROWS];

/// One fully connected layer of the chain.
#[derive(Clone, Copy, Debug)]
pub struct DenseLayer<'a> {
    /// `[outputs, inputs]`, row-major (PyTorch's `Linear.weight`).
    pub weight: &'a [f32],
    /// `[outputs]`, or none.
    pub bias: Option<&'a [f32]>,
    /// Features in.
    pub inputs: usize,
    /// Features out.
    pub outputs: usize,
    /// Whether a ReLU follows the layer.
    pub relu: bool,
}

impl DenseLayer<'_> {
    /// Weight and bias scalars.
    fn parameter_count(&self) -> usize {
        self.inputs * self.outputs + self.bias.map_or(0, |_| self.outputs)
    }
}

/// Where one layer's gradients go.
#[derive(Debug)]
pub struct DenseGradients<'a> {
    /// `[outputs, inputs]`, overwritten.
    pub weight: &'a mut [f32],
    /// `[outputs]`, overwritten; must be given exactly when the layer has a bias.
    pub bias: Option<&'a mut [f32]>,
}

/// Panics, naming the layer and the sizes, unless `layers` chain from `x` (`rows` rows).
fn check_chain(layers: &[DenseLayer], x_len: usize, rows: usize) {
    assert!(!layers.is_empty(), "fused_mlp: no layers");
    assert_eq!(
        Some(x_len),
        rows.checked_mul(layers[0].inputs),
        "fused_mlp: input holds {x_len} values, not {rows} rows of {}",
        layers[0].inputs
    );
    for (l, layer) in layers.iter().enumerate() {
        assert!(
            (1..=MAX_WIDTH).contains(&layer.inputs) && (1..=MAX_WIDTH).contains(&layer.outputs),
            "fused_mlp: layer {l} is {}x{}; widths must be 1 to {MAX_WIDTH}",
            layer.inputs,
            layer.outputs
        );
        assert_eq!(
            layer.weight.len(),
            layer.inputs * layer.outputs,
            "fused_mlp: layer {l}'s weight holds {} values, not {}x{}",
            layer.weight.len(),
            layer.outputs,
            layer.inputs
        );
        if let Some(b) = layer.bias {
            assert_eq!(b.len(), layer.outputs, "fused_mlp: layer {l}'s bias length");
        }
        if l > 0 {
            assert_eq!(
                layer.inputs,
                layers[l - 1].outputs,
                "fused_mlp: layer {l} takes {} features but layer {} gives {}",
                layer.inputs,
                l - 1,
                layers[l - 1].outputs
            );
        }
    }
}

/// Width of the vectors the chunk loops are written in; `CHUNK_ROWS` is a multiple.
const LANES: usize = 16;
const BLOCKS: usize = CHUNK_ROWS / LANES;
/// Running sums per dot product in `accumulate_dots`; divides `BLOCKS`.
const DOT_SUMS: usize = 4;

/// The few loops the chunk passes are made of, once in plain Rust and once in AVX-512. Both
/// perform the same IEEE operations in the same order, so they give the same bits (tested).
trait ChunkMath {
    /// Rows `0..count` of the row-major `[count, width]` block `src`, feature-major into
    /// `dst[..width]`, with zeros in the rows past `count`.
    fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]);
    /// The inverse of `load_columns` for rows `0..count`.
    fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]);
    /// `out = relu?(Σ_k coefficients[k] · columns[k] + bias)`, summed in order of k.
    fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    );
    /// `g = 0` wherever `h > 0` fails (ReLU's gradient, given its output).
    fn relu_mask(g: &mut Column, h: &Column);
    /// `sums[i] += (s0 + s1) + (s2 + s3)`, where `s_j` sums `g[b]·columns[i][b]` over the
    /// blocks `b ≡ j (mod 4)` in order, lane by lane: lane sums of `Σ_r g[r]·columns[i][r]`.
    /// Four running sums keep four products in flight; the lanes are added once per call of
    /// the kernel, not per chunk, so that sixteen dependent adds do not follow every dot.
    fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]);
    /// `total += partial`, lane by lane.
    fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]);
    /// `sums += ` the lane sums of `Σ_r g[r]`, in the order of `accumulate_dots`.
    fn accumulate(g: &Column, sums: &mut LaneSums);
}

/// Sixteen partial sums of one gradient, lane `k` holding rows `k`, `k + 16`, ...
type LaneSums = [f32; LANES];

/// The lanes of a running sum, added in order (the last step of every gradient).
fn add_lanes(lanes: &LaneSums) -> f32 {
    lanes.iter().fold(0.0, |sum, &v| sum + v)
}

struct Portable;

impl ChunkMath for Portable {
    #[inline(always)]
    fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]) {
        for (r, row) in src.chunks_exact(width).take(count).enumerate() {
            for (column, &v) in dst.iter_mut().zip(row) {
                column[r] = v;
            }
        }
        for column in dst[..width].iter_mut() {
            column[count..].fill(0.0);
        }
    }

    #[inline(always)]
    fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]) {
        for (r, row) in dst.chunks_exact_mut(width).take(count).enumerate() {
            for (v, column) in row.iter_mut().zip(src) {
                *v = column[r];
            }
        }
    }

    #[inline(always)]
    fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    ) {
        out.fill(0.0);
        for (&c, column) in coefficients.iter().zip(columns) {
            for (o, &v) in out.iter_mut().zip(column) {
                *o = c.mul_add(v, *o);
            }
        }
        for v in out.iter_mut() {
            if let Some(b) = bias {
                *v += b;
            }
            // NaN fails `> 0` and becomes 0, as ReLU's kernel does.
            if relu {
                *v = if *v > 0.0 { *v } else { 0.0 };
            }
        }
    }

    #[inline(always)]
    fn relu_mask(g: &mut Column, h: &Column) {
        for (g, &h) in g.iter_mut().zip(h) {
            *g = if h > 0.0 { *g } else { 0.0 };
        }
    }

    #[inline(always)]
    fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]) {
        for (lanes, column) in sums.iter_mut().zip(columns) {
            // Block b goes to running sum b mod 4: four blocks per step, fixed indices.
            let mut partial = [[0.0f32; LANES]; DOT_SUMS];
            let steps = g
                .chunks_exact(LANES * DOT_SUMS)
                .zip(column.chunks_exact(LANES * DOT_SUMS));
            for (g, h) in steps {
                for (j, s) in partial.iter_mut().enumerate() {
                    for k in 0..LANES {
                        s[k] = g[j * LANES + k].mul_add(h[j * LANES + k], s[k]);
                    }
                }
            }
            for k in 0..LANES {
                lanes[k] += (partial[0][k] + partial[1][k]) + (partial[2][k] + partial[3][k]);
            }
        }
    }

    #[inline(always)]
    fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]) {
        for (t, p) in total.iter_mut().zip(partial) {
            for k in 0..LANES {
                t[k] += p[k];
            }
        }
    }

    #[inline(always)]
    fn accumulate(g: &Column, lanes: &mut LaneSums) {
        for g in g.chunks_exact(LANES) {
            for k in 0..LANES {
                lanes[k] += g[k];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx512;

/// The AVX-512 loops. Each is an `unsafe` target-feature function, wrapped by the trait.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Column, LaneSums, BLOCKS, DOT_SUMS, LANES};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn row_offsets(width: usize) -> __m512i {
        // SAFETY: AVX-512F is enabled in every caller (all are AVX-512F functions).
        unsafe {
            _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(width as i32),
            )
        }
    }

    /// Lanes `0..valid` set.
    #[inline(always)]
    fn first_lanes(valid: usize) -> __mmask16 {
        ((1u32 << valid.min(LANES)) - 1) as __mmask16
    }

    /// # Safety
    /// AVX-512F; `src` holds `count * width` values, `dst` at least `width` columns,
    /// `count <= CHUNK_ROWS`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]) {
        let offsets = row_offsets(width);
        for block in 0..BLOCKS {
            // Lanes of rows at or past `count` are not read, and are zero.
            let mask = first_lanes(count.saturating_sub(block * LANES));
            let base = src.as_ptr().wrapping_add(block * LANES * width);
            for (i, column) in dst[..width].iter_mut().enumerate() {
                let v = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    offsets,
                    base.wrapping_add(i),
                );
                _mm512_storeu_ps(column.as_mut_ptr().add(block * LANES), v);
            }
        }
    }

    /// # Safety
    /// AVX-512F; `dst` holds `count * width` values, `src` at least `width` columns,
    /// `count <= CHUNK_ROWS`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]) {
        let offsets = row_offsets(width);
        for block in 0..count.div_ceil(LANES) {
            let mask = first_lanes(count - block * LANES);
            let base = dst.as_mut_ptr().wrapping_add(block * LANES * width);
            for (i, column) in src[..width].iter().enumerate() {
                let v = _mm512_loadu_ps(column.as_ptr().add(block * LANES));
                _mm512_mask_i32scatter_ps::<4>(base.wrapping_add(i), mask, offsets, v);
            }
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    ) {
        // The whole chunk's sums live in sixteen registers while the coefficients run.
        let mut acc = [_mm512_setzero_ps(); BLOCKS];
        for (&c, column) in coefficients.iter().zip(columns) {
            let c = _mm512_set1_ps(c);
            for (b, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_loadu_ps(column.as_ptr().add(b * LANES));
                *acc = _mm512_fmadd_ps(c, v, *acc);
            }
        }
        let zero = _mm512_setzero_ps();
        for (b, mut v) in acc.into_iter().enumerate() {
            if let Some(bias) = bias {
                v = _mm512_add_ps(v, _mm512_set1_ps(bias));
            }
            if relu {
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero), v);
            }
            _mm512_storeu_ps(out.as_mut_ptr().add(b * LANES), v);
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn relu_mask(g: &mut Column, h: &Column) {
        let zero = _mm512_setzero_ps();
        for b in 0..BLOCKS {
            let p = g.as_mut_ptr().add(b * LANES);
            let positive =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(h.as_ptr().add(b * LANES)), zero);
            _mm512_storeu_ps(p, _mm512_maskz_mov_ps(positive, _mm512_loadu_ps(p)));
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]) {
        // `g` stays in registers across the columns.
        let mut gv = [_mm512_setzero_ps(); BLOCKS];
        for (b, v) in gv.iter_mut().enumerate() {
            *v = _mm512_loadu_ps(g.as_ptr().add(b * LANES));
        }
        for (sum, column) in sums.iter_mut().zip(columns) {
            let mut partial = [_mm512_setzero_ps(); DOT_SUMS];
            for (b, g) in gv.iter().enumerate() {
                let h = _mm512_loadu_ps(column.as_ptr().add(b * LANES));
                partial[b % DOT_SUMS] = _mm512_fmadd_ps(*g, h, partial[b % DOT_SUMS]);
            }
            let dot = _mm512_add_ps(
                _mm512_add_ps(partial[0], partial[1]),
                _mm512_add_ps(partial[2], partial[3]),
            );
            _mm512_storeu_ps(
                sum.as_mut_ptr(),
                _mm512_add_ps(_mm512_loadu_ps(sum.as_ptr()), dot),
            );
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]) {
        for (t, p) in total.iter_mut().zip(partial) {
            let sum = _mm512_add_ps(_mm512_loadu_ps(t.as_ptr()), _mm512_loadu_ps(p.as_ptr()));
            _mm512_storeu_ps(t.as_mut_ptr(), sum);
        }
    }

    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn accumulate(g: &Column, sum: &mut LaneSums) {
        let mut acc = _mm512_loadu_ps(sum.as_ptr());
        for b in 0..BLOCKS {
            acc = _mm512_add_ps(acc, _mm512_loadu_ps(g.as_ptr().add(b * LANES)));
        }
        _mm512_storeu_ps(sum.as_mut_ptr(), acc);
    }
}

// SAFETY (every method): `Avx512` is only used by `forward_chunk`/`backward_chunk` after
// checking that the CPU has AVX-512F; sizes are as `check_chain` and the callers ensure.
#[cfg(target_arch = "x86_64")]
impl ChunkMath for Avx512 {
    #[inline(always)]
    fn load_columns(src: &[f32], width: usize, count: usize, dst: &mut [Column]) {
        assert!(count <= CHUNK_ROWS && src.len() >= count * width && dst.len() >= width);
        unsafe { avx512::load_columns(src, width, count, dst) }
    }
    #[inline(always)]
    fn store_columns(src: &[Column], width: usize, count: usize, dst: &mut [f32]) {
        assert!(count <= CHUNK_ROWS && dst.len() >= count * width && src.len() >= width);
        unsafe { avx512::store_columns(src, width, count, dst) }
    }
    #[inline(always)]
    fn combine(
        coefficients: &[f32],
        columns: &[Column],
        bias: Option<f32>,
        relu: bool,
        out: &mut Column,
    ) {
        unsafe { avx512::combine(coefficients, columns, bias, relu, out) }
    }
    #[inline(always)]
    fn relu_mask(g: &mut Column, h: &Column) {
        unsafe { avx512::relu_mask(g, h) }
    }
    #[inline(always)]
    fn accumulate_dots(g: &Column, columns: &[Column], sums: &mut [LaneSums]) {
        unsafe { avx512::accumulate_dots(g, columns, sums) }
    }
    #[inline(always)]
    fn add_sums(total: &mut [LaneSums], partial: &[LaneSums]) {
        unsafe { avx512::add_sums(total, partial) }
    }
    #[inline(always)]
    fn accumulate(g: &Column, sum: &mut LaneSums) {
        unsafe { avx512::accumulate(g, sum) }
    }
}

/// Which compiled form of the chunk passes this CPU runs.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    /// The AVX-512 intrinsics.
    Avx512,
    /// The plain loops compiled with AVX2 and FMA enabled.
    Fma,
    /// The plain loops as the target compiles them (hardware FMA on aarch64; a software
    /// `fmaf` on x86-64 without FMA).
    Plain,
}

fn path() -> Path {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Path::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Path::Fma;
        }
    }
    Path::Plain
}

/// Whether the kernel runs at speed on this CPU: x86-64 with FMA (AVX2 or AVX-512), or
/// aarch64. Elsewhere it is correct but slow, and a chain is better composed from GEMMs.
pub fn available() -> bool {
    cfg!(target_arch = "aarch64") || path() != Path::Plain
}

/// One layer on a chunk: `output[o] = relu?(Σ_i W[o][i]·input[i] + b[o])`.
#[inline(always)]
fn layer_forward<M: ChunkMath>(layer: &DenseLayer, input: &[Column], output: &mut [Column]) {
    let inputs = layer.inputs;
    for (o, out) in output[..layer.outputs].iter_mut().enumerate() {
        let weights = &layer.weight[o * inputs..(o + 1) * inputs];
        M::combine(weights, input, layer.bias.map(|b| b[o]), layer.relu, out);
    }
}

/// Whether a pass is long enough to split across threads. Waking a sleeping rayon worker
/// costs tens of microseconds; dnn3's whole step (7,000 rows, 98 parameters) runs faster on
/// one thread than on two.
fn worth_splitting(layers: &[DenseLayer], rows: usize) -> bool {
    const PARALLEL_WORK: usize = 1 << 21;
    let parameters: usize = layers.iter().map(DenseLayer::parameter_count).sum();
    rows * parameters >= PARALLEL_WORK
}

/// Widths of the layer boundaries h_0 .. h_L.
fn boundary_widths(layers: &[DenseLayer]) -> Vec<usize> {
    std::iter::once(layers[0].inputs)
        .chain(layers.iter().map(|l| l.outputs))
        .collect()
}

/// Scratch columns for one chunk's backward pass: every layer boundary and two gradients.
fn backward_scratch_columns(layers: &[DenseLayer]) -> usize {
    2 * MAX_WIDTH + boundary_widths(layers).iter().sum::<usize>()
}

/// A thread's scratch columns, kept between calls: allocating and zeroing a chunk's 4 to 60 KB
/// of activations per chunk cost a sixth of the kernel.
fn with_scratch<R>(columns: usize, f: impl FnOnce(&mut [Column]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<Column>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < columns {
            scratch.resize(columns, [0.0; CHUNK_ROWS]);
        }
        f(&mut scratch[..columns])
    })
}

/// The forward pass over one chunk of `rows <= CHUNK_ROWS` rows.
#[inline(always)]
fn forward_chunk<M: ChunkMath>(
    layers: &[DenseLayer],
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    scratch: &mut [Column],
) {
    let (mut a, mut b) = scratch.split_at_mut(MAX_WIDTH);
    M::load_columns(x, layers[0].inputs, rows, a);
    for layer in layers {
        layer_forward::<M>(layer, a, b);
        std::mem::swap(&mut a, &mut b);
    }
    M::store_columns(a, layers[layers.len() - 1].outputs, rows, out);
}

/// The gradients of one chunk of `rows <= CHUNK_ROWS` rows: the chunk's lane sums of every
/// layer's weight then bias gradient are added to `grads`, and `dx` gets the chunk's input
/// gradient when asked for.
#[inline(always)]
fn backward_chunk<M: ChunkMath>(
    layers: &[DenseLayer],
    x: &[f32],
    dy: &[f32],
    rows: usize,
    grads: &mut [LaneSums],
    dx: Option<&mut [f32]>,
    scratch: &mut [Column],
) {
    let widths = boundary_widths(layers);
    let (mut g, rest) = scratch.split_at_mut(MAX_WIDTH);
    let (mut g_in, mut rest) = rest.split_at_mut(MAX_WIDTH);
    let mut h: Vec<&mut [Column]> = Vec::with_capacity(widths.len());
    for &w in &widths {
        let (boundary, remaining) = std::mem::take(&mut rest).split_at_mut(w);
        h.push(boundary);
        rest = remaining;
    }
    M::load_columns(x, widths[0], rows, h[0]);
    for (l, layer) in layers.iter().enumerate() {
        let (done, rest) = h.split_at_mut(l + 1);
        layer_forward::<M>(layer, done[l], rest[0]);
    }
    // Rows past `rows` hold the network at x = 0, which may overflow where no real row does:
    // zero them, so that with their zero `dy` they add exactly nothing (0 · inf would be NaN).
    if rows < CHUNK_ROWS {
        for column in h[1..].iter_mut().flat_map(|boundary| boundary.iter_mut()) {
            column[rows..].fill(0.0);
        }
    }
    M::load_columns(dy, widths[layers.len()], rows, g);
    let mut offset = grads.len();
    for (l, layer) in layers.iter().enumerate().rev() {
        let (inputs, outputs) = (layer.inputs, layer.outputs);
        offset -= layer.parameter_count();
        if layer.relu {
            for (go, ho) in g[..outputs].iter_mut().zip(h[l + 1].iter()) {
                M::relu_mask(go, ho);
            }
        }
        let (weight_grads, bias_grads) =
            grads[offset..offset + layer.parameter_count()].split_at_mut(inputs * outputs);
        for (o, go) in g[..outputs].iter().enumerate() {
            M::accumulate_dots(go, h[l], &mut weight_grads[o * inputs..(o + 1) * inputs]);
            if let Some(d_b) = bias_grads.get_mut(o) {
                M::accumulate(go, d_b);
            }
        }
        if l == 0 && dx.is_none() {
            break;
        }
        let mut column_of_w = [0.0f32; MAX_WIDTH];
        for (i, gi) in g_in[..inputs].iter_mut().enumerate() {
            for (o, c) in column_of_w[..outputs].iter_mut().enumerate() {
                *c = layer.weight[o * inputs + i];
            }
            M::combine(&column_of_w[..outputs], g, None, false, gi);
        }
        std::mem::swap(&mut g, &mut g_in);
    }
    if let Some(dx) = dx {
        M::store_columns(g, widths[0], rows, dx);
    }
}

/// Defines module `$name` with `forward` and `backward`: [`forward_chunk`] and
/// [`backward_chunk`] over `$math`, inlined into functions compiled with `$features` enabled
/// (the plain loops' `mul_add` becomes one instruction only where FMA is enabled).
#[cfg(target_arch = "x86_64")]
macro_rules! compiled_passes {
    ($name:ident, $features:literal, $math:ty) => {
        mod $name {
            use super::*;

            /// # Safety
            /// The CPU must have the features named above.
            #[target_feature(enable = $features)]
            pub unsafe fn forward(
                layers: &[DenseLayer],
                x: &[f32],
                rows: usize,
                out: &mut [f32],
                scratch: &mut [Column],
            ) {
                forward_chunk::<$math>(layers, x, rows, out, scratch)
            }

            /// # Safety
            /// The CPU must have the features named above.
            #[target_feature(enable = $features)]
            pub unsafe fn backward(
                layers: &[DenseLayer],
                x: &[f32],
                dy: &[f32],
                rows: usize,
                grads: &mut [LaneSums],
                dx: Option<&mut [f32]>,
                scratch: &mut [Column],
            ) {
                backward_chunk::<$math>(layers, x, dy, rows, grads, dx, scratch)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
compiled_passes!(avx512_passes, "avx512f", Avx512);
#[cfg(target_arch = "x86_64")]
compiled_passes!(fma_passes, "avx2,fma", Portable);

/// `y = mlp(x)`: `x` is `[rows, layers[0].inputs]`, `out` `[rows, last outputs]`, both
/// row-major. Panics naming the sizes if the layers do not chain or a width exceeds
/// [`MAX_WIDTH`].
pub fn fused_mlp_forward(layers: &[DenseLayer], x: &[f32], rows: usize, out: &mut [f32]) {
    check_chain(layers, x.len(), rows);
    let out_width = layers[layers.len() - 1].outputs;
    assert_eq!(out.len(), rows * out_width, "fused_mlp: output length");
    forward_with(path(), layers, x, rows, out);
}

fn forward_with(path: Path, layers: &[DenseLayer], x: &[f32], rows: usize, out: &mut [f32]) {
    let (in_width, out_width) = (layers[0].inputs, layers[layers.len() - 1].outputs);
    let chunks = rows.div_ceil(CHUNK_ROWS);
    let run = |(c, out): (usize, &mut [f32])| {
        let start = c * CHUNK_ROWS;
        let count = CHUNK_ROWS.min(rows - start);
        let x = &x[start * in_width..(start + count) * in_width];
        with_scratch(2 * MAX_WIDTH, |scratch| match path {
            // SAFETY: `path()` found the features each form needs.
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => unsafe { avx512_passes::forward(layers, x, count, out, scratch) },
            #[cfg(target_arch = "x86_64")]
            Path::Fma => unsafe { fma_passes::forward(layers, x, count, out, scratch) },
            _ => forward_chunk::<Portable>(layers, x, count, out, scratch),
        });
    };
    if chunks > 1 && worth_splitting(layers, rows) {
        out.par_chunks_mut(CHUNK_ROWS * out_width)
            .enumerate()
            .for_each(run);
    } else {
        for (c, out) in out.chunks_mut(CHUNK_ROWS * out_width).enumerate() {
            run((c, out));
        }
    }
}

/// Gradients of `fused_mlp_forward` given `dy` (`[rows, last outputs]`): every layer's weight
/// and bias gradient into `grads` (overwritten), and `dx` (`[rows, layers[0].inputs]`) when
/// given. Panics naming the sizes if anything disagrees with `layers`.
pub fn fused_mlp_backward(
    layers: &[DenseLayer],
    x: &[f32],
    dy: &[f32],
    rows: usize,
    grads: &mut [DenseGradients],
    dx: Option<&mut [f32]>,
) {
    check_chain(layers, x.len(), rows);
    let out_width = layers[layers.len() - 1].outputs;
    assert_eq!(dy.len(), rows * out_width, "fused_mlp: dy length");
    assert_eq!(
        grads.len(),
        layers.len(),
        "fused_mlp: one gradient per layer"
    );
    for (l, (layer, grad)) in layers.iter().zip(grads.iter()).enumerate() {
        assert_eq!(
            grad.weight.len(),
            layer.weight.len(),
            "fused_mlp: layer {l}'s weight gradient length"
        );
        assert_eq!(
            grad.bias.as_ref().map(|b| b.len()),
            layer.bias.map(|b| b.len()),
            "fused_mlp: layer {l}'s bias gradient"
        );
    }
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), x.len(), "fused_mlp: dx length");
    }
    backward_with(path(), layers, x, dy, rows, grads, dx);
}

fn backward_with(
    path: Path,
    layers: &[DenseLayer],
    x: &[f32],
    dy: &[f32],
    rows: usize,
    grads: &mut [DenseGradients],
    dx: Option<&mut [f32]>,
) {
    let (in_width, out_width) = (layers[0].inputs, layers[layers.len() - 1].outputs);
    let parameters: usize = layers.iter().map(DenseLayer::parameter_count).sum();
    let scratch_columns = backward_scratch_columns(layers);
    // A task runs TASK_CHUNKS chunks in order, adding into one set of lane sums; the tasks'
    // sums are then added in task order. Neither depends on the thread count.
    let task_rows = TASK_CHUNKS * CHUNK_ROWS;
    let tasks = rows.div_ceil(task_rows);
    let task_gradients = |t: usize, mut dx: Option<&mut [f32]>| -> Vec<LaneSums> {
        let mut sums = vec![[0.0f32; LANES]; parameters];
        with_scratch(scratch_columns, |scratch| {
            let end = rows.min((t + 1) * task_rows);
            for (c, start) in (t * task_rows..end).step_by(CHUNK_ROWS).enumerate() {
                let count = CHUNK_ROWS.min(end - start);
                let x = &x[start * in_width..(start + count) * in_width];
                let dy = &dy[start * out_width..(start + count) * out_width];
                let dx = dx
                    .as_deref_mut()
                    .map(|dx| &mut dx[c * CHUNK_ROWS * in_width..][..count * in_width]);
                let sums = &mut sums;
                match path {
                    // SAFETY: `path()` found the features each form needs.
                    #[cfg(target_arch = "x86_64")]
                    Path::Avx512 => unsafe {
                        avx512_passes::backward(layers, x, dy, count, sums, dx, scratch)
                    },
                    #[cfg(target_arch = "x86_64")]
                    Path::Fma => unsafe {
                        fma_passes::backward(layers, x, dy, count, sums, dx, scratch)
                    },
                    _ => backward_chunk::<Portable>(layers, x, dy, count, sums, dx, scratch),
                }
            }
        });
        sums
    };
    let parallel = tasks > 1 && worth_splitting(layers, rows);
    let partials: Vec<Vec<LaneSums>> = match dx {
        Some(dx) if parallel => dx
            .par_chunks_mut(task_rows * in_width)
            .enumerate()
            .map(|(t, dx)| task_gradients(t, Some(dx)))
            .collect(),
        None if parallel => (0..tasks)
            .into_par_iter()
            .map(|t| task_gradients(t, None))
            .collect(),
        Some(dx) => dx
            .chunks_mut(task_rows * in_width)
            .enumerate()
            .map(|(t, dx)| task_gradients(t, Some(dx)))
            .collect(),
        None => (0..tasks).map(|t| task_gradients(t, None)).collect(),
    };
    let mut lanes = vec![[0.0f32; LANES]; parameters];
    for partial in &partials {
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => Avx512::add_sums(&mut lanes, partial),
            _ => Portable::add_sums(&mut lanes, partial),
        }
    }
    let total: Vec<f32> = lanes.iter().map(add_lanes).collect();
    // `total` is laid out layer by layer, weight then bias, as `backward_chunk` wrote it.
    let mut offset = 0;
    for (layer, grad) in layers.iter().zip(grads.iter_mut()) {
        let weights = layer.inputs * layer.outputs;
        grad.weight
            .copy_from_slice(&total[offset..offset + weights]);
        offset += weights;
        if let Some(b) = grad.bias.as_deref_mut() {
            b.copy_from_slice(&total[offset..offset + layer.outputs]);
            offset += layer.outputs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    struct Net {
        weights: Vec<Vec<f32>>,
        biases: Vec<Option<Vec<f32>>>,
        widths: Vec<usize>,
        relu: Vec<bool>,
    }

    impl Net {
        fn new(widths: &[usize], bias: &[bool], relu: &[bool], seed: u64) -> Net {
            let n = widths.len() - 1;
            Net {
                weights: (0..n)
                    .map(|l| values(widths[l] * widths[l + 1], seed + l as u64))
                    .collect(),
                biases: (0..n)
                    .map(|l| bias[l].then(|| values(widths[l + 1], seed + 100 + l as u64)))
                    .collect(),
                widths: widths.to_vec(),
                relu: relu.to_vec(),
            }
        }

        fn layers(&self) -> Vec<DenseLayer<'_>> {
            (0..self.weights.len())
                .map(|l| DenseLayer {
                    weight: &self.weights[l],
                    bias: self.biases[l].as_deref(),
                    inputs: self.widths[l],
                    outputs: self.widths[l + 1],
                    relu: self.relu[l],
                })
                .collect()
        }

        /// Output, input gradient (when asked for) and every weight then bias gradient, by
        /// `path`, as bits.
        fn run(
            &self,
            path: Path,
            x: &[f32],
            dy: &[f32],
            rows: usize,
            with_dx: bool,
        ) -> Vec<Vec<u32>> {
            let layers = self.layers();
            let mut y = vec![0.0; rows * self.widths[self.widths.len() - 1]];
            forward_with(path, &layers, x, rows, &mut y);
            let mut weights: Vec<Vec<f32>> = self
                .weights
                .iter()
                .map(|w| vec![f32::NAN; w.len()])
                .collect();
            let mut biases: Vec<Option<Vec<f32>>> = self
                .biases
                .iter()
                .map(|b| b.as_ref().map(|b| vec![f32::NAN; b.len()]))
                .collect();
            let mut dx = with_dx.then(|| vec![f32::NAN; x.len()]);
            let mut grads: Vec<DenseGradients> = weights
                .iter_mut()
                .zip(biases.iter_mut())
                .map(|(weight, bias)| DenseGradients {
                    weight,
                    bias: bias.as_deref_mut(),
                })
                .collect();
            backward_with(path, &layers, x, dy, rows, &mut grads, dx.as_deref_mut());
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            let mut all = vec![bits(&y)];
            all.extend(dx.as_deref().map(bits));
            all.extend(weights.iter().map(|w| bits(w)));
            all.extend(biases.iter().flatten().map(|b| bits(b)));
            all
        }

        /// Plain f64 loops: the activations at every boundary of row `r`.
        fn reference_forward(&self, x: &[f32], r: usize) -> Vec<Vec<f64>> {
            let mut h = vec![x[r * self.widths[0]..(r + 1) * self.widths[0]]
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<f64>>()];
            for l in 0..self.weights.len() {
                let (i_w, o_w) = (self.widths[l], self.widths[l + 1]);
                let next: Vec<f64> = (0..o_w)
                    .map(|o| {
                        let mut z: f64 = (0..i_w)
                            .map(|i| self.weights[l][o * i_w + i] as f64 * h[l][i])
                            .sum();
                        z += self.biases[l].as_ref().map_or(0.0, |b| b[o] as f64);
                        if self.relu[l] {
                            z.max(0.0)
                        } else {
                            z
                        }
                    })
                    .collect();
                h.push(next);
            }
            h
        }
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 1e-5 * scale.max(1.0)
    }

    fn check(widths: &[usize], bias: &[bool], relu: &[bool], rows: usize, seed: u64) {
        let net = Net::new(widths, bias, relu, seed);
        let layers = net.layers();
        let last = widths.len() - 1;
        let x = values(rows * widths[0], seed + 7);
        let dy = values(rows * widths[last], seed + 8);
        let mut y = vec![f32::NAN; rows * widths[last]];
        fused_mlp_forward(&layers, &x, rows, &mut y);

        // Reference gradients, row by row in f64.
        let mut d_w: Vec<Vec<f64>> = net.weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut d_b: Vec<Vec<f64>> = widths[1..].iter().map(|&w| vec![0.0; w]).collect();
        let mut d_x = vec![0.0f64; x.len()];
        for r in 0..rows {
            let h = net.reference_forward(&x, r);
            for o in 0..widths[last] {
                assert!(
                    close(y[r * widths[last] + o], h[last][o], 1.0),
                    "{widths:?} rows {rows}: y[{r}][{o}] = {} vs {}",
                    y[r * widths[last] + o],
                    h[last][o]
                );
            }
            let mut g: Vec<f64> = (0..widths[last])
                .map(|o| dy[r * widths[last] + o] as f64)
                .collect();
            for l in (0..last).rev() {
                let (i_w, o_w) = (widths[l], widths[l + 1]);
                if relu[l] {
                    for o in 0..o_w {
                        if h[l + 1][o] <= 0.0 {
                            g[o] = 0.0;
                        }
                    }
                }
                for o in 0..o_w {
                    d_b[l][o] += g[o];
                    for i in 0..i_w {
                        d_w[l][o * i_w + i] += g[o] * h[l][i];
                    }
                }
                g = (0..i_w)
                    .map(|i| {
                        (0..o_w)
                            .map(|o| net.weights[l][o * i_w + i] as f64 * g[o])
                            .sum()
                    })
                    .collect();
            }
            for i in 0..widths[0] {
                d_x[r * widths[0] + i] = g[i];
            }
        }

        let got = net.run(path(), &x, &dy, rows, true);
        let floats = |bits: &[u32]| {
            bits.iter()
                .map(|&b| f32::from_bits(b))
                .collect::<Vec<f32>>()
        };
        let dx = floats(&got[1]);
        let weight_grads: Vec<Vec<f32>> = got[2..2 + last].iter().map(|g| floats(g)).collect();
        let mut bias_grads: Vec<Option<Vec<f32>>> = vec![None; last];
        let mut next = 2 + last;
        for (l, b) in bias_grads.iter_mut().enumerate() {
            if net.biases[l].is_some() {
                *b = Some(floats(&got[next]));
                next += 1;
            }
        }
        let scale = rows as f64;
        for l in 0..last {
            for (k, (&got, &want)) in weight_grads[l].iter().zip(&d_w[l]).enumerate() {
                assert!(
                    close(got, want, scale),
                    "{widths:?} rows {rows}: dW{l}[{k}] = {got} vs {want}"
                );
            }
            if let Some(b) = &bias_grads[l] {
                for (k, (&got, &want)) in b.iter().zip(&d_b[l]).enumerate() {
                    assert!(
                        close(got, want, scale),
                        "{widths:?} rows {rows}: db{l}[{k}] = {got} vs {want}"
                    );
                }
            }
        }
        for (k, (&got, &want)) in dx.iter().zip(&d_x).enumerate() {
            assert!(
                close(got, want, 1.0),
                "{widths:?}: dx[{k}] = {got} vs {want}"
            );
        }

        // Without dx, the parameter gradients are the same bits.
        let without_dx = net.run(path(), &x, &dy, rows, false);
        assert_eq!((&without_dx[0], &without_dx[1..]), (&got[0], &got[2..]));
    }

    #[test]
    fn matches_a_plain_f64_reference() {
        // dnn3's shape over a partial last block and several chunks.
        check(
            &[3, 5, 5, 5, 3],
            &[true; 4],
            &[true, true, true, false],
            7003,
            1,
        );
        // Full width, no bias, ReLU everywhere, one partial block.
        check(&[16, 16, 16], &[false, false], &[true, true], 9, 2);
        // Width 1 layers and a single layer.
        check(&[1, 7, 1], &[true, false], &[false, true], 300, 3);
        check(&[4, 2], &[true], &[false], 16, 4);
        check(&[2, 3], &[false], &[true], 1, 5);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Enough work to be split across threads, with a partial last chunk.
        let net = Net::new(&[16, 16, 5, 3], &[true; 3], &[true, true, false], 9);
        let layers = net.layers();
        let rows = 24 * CHUNK_ROWS + 17;
        assert!(worth_splitting(&layers, rows));
        let x = values(rows * 16, 10);
        let dy = values(rows * 3, 11);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| net.run(path(), &x, &dy, rows, true))
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }

    /// Every compiled form this CPU can run gives the bits of the plain loops.
    #[test]
    fn every_path_gives_the_same_bits() {
        let mut paths = vec![Path::Plain];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                paths.push(Path::Fma);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                paths.push(Path::Avx512);
            }
        }
        let shapes: &[(&[usize], usize)] = &[
            (&[3, 5, 5, 5, 3], 1000),
            (&[16, 7, 1], 33),
            (&[2, 16, 16, 2], 600),
        ];
        for &(widths, rows) in shapes {
            let last = widths.len() - 1;
            // Every layer with bias and ReLU, then alternating ones without either.
            let alternate: Vec<bool> = (0..last).map(|l| l % 2 == 1).collect();
            let not_alternate: Vec<bool> = alternate.iter().map(|&b| !b).collect();
            for (bias, relu) in [
                (vec![true; last], vec![true; last]),
                (alternate, not_alternate),
            ] {
                let net = Net::new(widths, &bias, &relu, 21);
                let x = values(rows * widths[0], 22);
                let dy = values(rows * widths[last], 23);
                let run = |path: Path| net.run(path, &x, &dy, rows, true);
                let plain = run(Path::Plain);
                for &path in &paths[1..] {
                    assert!(
                        run(path) == plain,
                        "{path:?} differs from the plain loops on {widths:?}, bias {bias:?}"
                    );
                }
            }
        }
    }

    /// The rows that pad a partial chunk carry the network at x = 0, which can overflow where
    /// the real rows do not; they must add nothing to the gradients (0 · inf would be NaN).
    #[test]
    fn padding_rows_add_nothing_even_where_they_overflow() {
        fn layer<'a>(weight: &'a [f32], bias: Option<&'a [f32]>) -> DenseLayer<'a> {
            DenseLayer {
                weight,
                bias,
                inputs: 1,
                outputs: 1,
                relu: false,
            }
        }
        let layers = [
            layer(&[1.0], Some(&[3e38])),
            layer(&[2.0], None),
            layer(&[0.5], None),
        ];
        // The real row: x = -3e38 gives 0 at every layer.
        let (x, dy) = ([-3e38f32], [1.0f32]);
        let (mut d0, mut db0, mut d1, mut d2) = ([f32::NAN], [f32::NAN], [f32::NAN], [f32::NAN]);
        let mut grads = [
            DenseGradients {
                weight: &mut d0,
                bias: Some(&mut db0),
            },
            DenseGradients {
                weight: &mut d1,
                bias: None,
            },
            DenseGradients {
                weight: &mut d2,
                bias: None,
            },
        ];
        fused_mlp_backward(&layers, &x, &dy, 1, &mut grads, None);
        // dW0 = (dy · 0.5 · 2) · x, db0 = 1, and h1 = h2 = 0 for the real row.
        assert_eq!((d0[0], db0[0], d1[0], d2[0]), (-3e38, 1.0, 0.0, 0.0));
    }

    #[test]
    #[should_panic(expected = "layer 1 takes 4 features but layer 0 gives 5")]
    fn layers_that_do_not_chain_are_refused() {
        let (w0, w1) = (vec![0.0; 15], vec![0.0; 8]);
        let layers = [
            DenseLayer {
                weight: &w0,
                bias: None,
                inputs: 3,
                outputs: 5,
                relu: true,
            },
            DenseLayer {
                weight: &w1,
                bias: None,
                inputs: 4,
                outputs: 2,
                relu: false,
            },
        ];
        fused_mlp_forward(&layers, &[0.0; 6], 2, &mut [0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "layer 0 is 17x2; widths must be 1 to 16")]
    fn too_wide_layers_are_refused() {
        let w = vec![0.0; 34];
        let layers = [DenseLayer {
            weight: &w,
            bias: None,
            inputs: 17,
            outputs: 2,
            relu: false,
        }];
        fused_mlp_forward(&layers, &[0.0; 17], 1, &mut [0.0; 2]);
    }
}
