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
//!
//! Reading order: this file (the API, the checks, the chunk passes and the plain loops they
//! are made of, `ChunkMath` for `Portable`), then `x86.rs` (the same loops in AVX-512
//! intrinsics, and the passes compiled for AVX-512 and for AVX2 + FMA).

use crate::simd::Isa;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

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
    assert!(!layers.is_empty(), "dense_chain: no layers");
    assert_eq!(
        Some(x_len),
        rows.checked_mul(layers[0].inputs),
        "dense_chain: input holds {x_len} values, not {rows} rows of {}",
        layers[0].inputs
    );
    for (l, layer) in layers.iter().enumerate() {
        assert!(
            (1..=MAX_WIDTH).contains(&layer.inputs) && (1..=MAX_WIDTH).contains(&layer.outputs),
            "dense_chain: layer {l} is {}x{}; widths must be 1 to {MAX_WIDTH}",
            layer.inputs,
            layer.outputs
        );
        assert_eq!(
            layer.weight.len(),
            layer.inputs * layer.outputs,
            "dense_chain: layer {l}'s weight holds {} values, not {}x{}",
            layer.weight.len(),
            layer.outputs,
            layer.inputs
        );
        if let Some(b) = layer.bias {
            assert_eq!(
                b.len(),
                layer.outputs,
                "dense_chain: layer {l}'s bias length"
            );
        }
        if l > 0 {
            assert_eq!(
                layer.inputs,
                layers[l - 1].outputs,
                "dense_chain: layer {l} takes {} features but layer {} gives {}",
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

/// The plain loops: the reference every compiled form matches bit for bit. Compiled as the
/// target compiles plain Rust (hardware FMA on aarch64, a software `fmaf` on x86-64 without
/// FMA), and once more with AVX2 and FMA enabled (`x86.rs`).
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

/// Whether the kernel runs at speed on this CPU: x86-64 with FMA (AVX2 or AVX-512), or
/// aarch64. Elsewhere it is correct but slow, and a chain is better composed from GEMMs.
pub fn available() -> bool {
    cfg!(target_arch = "aarch64") || Isa::detected() != Isa::Portable
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

/// `y = mlp(x)`: `x` is `[rows, layers[0].inputs]`, `out` `[rows, last outputs]`, both
/// row-major. Panics naming the sizes if the layers do not chain or a width exceeds
/// [`MAX_WIDTH`].
pub fn forward(layers: &[DenseLayer], x: &[f32], rows: usize, out: &mut [f32]) {
    check_chain(layers, x.len(), rows);
    let out_width = layers[layers.len() - 1].outputs;
    assert_eq!(out.len(), rows * out_width, "dense_chain: output length");
    forward_with(Isa::detected(), layers, x, rows, out);
}

fn forward_with(isa: Isa, layers: &[DenseLayer], x: &[f32], rows: usize, out: &mut [f32]) {
    let (in_width, out_width) = (layers[0].inputs, layers[layers.len() - 1].outputs);
    let chunks = rows.div_ceil(CHUNK_ROWS);
    let run = |(c, out): (usize, &mut [f32])| {
        let start = c * CHUNK_ROWS;
        let count = CHUNK_ROWS.min(rows - start);
        let x = &x[start * in_width..(start + count) * in_width];
        with_scratch(2 * MAX_WIDTH, |scratch| match isa {
            // SAFETY: `isa` is at most `Isa::detected()`: the CPU has the features each form needs.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::avx512_passes::forward(layers, x, count, out, scratch) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { x86::fma_passes::forward(layers, x, count, out, scratch) },
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

/// Gradients of [`forward`] given `dy` (`[rows, last outputs]`): every layer's weight
/// and bias gradient into `grads` (overwritten), and `dx` (`[rows, layers[0].inputs]`) when
/// given. Panics naming the sizes if anything disagrees with `layers`.
pub fn backward(
    layers: &[DenseLayer],
    x: &[f32],
    dy: &[f32],
    rows: usize,
    grads: &mut [DenseGradients],
    dx: Option<&mut [f32]>,
) {
    check_chain(layers, x.len(), rows);
    let out_width = layers[layers.len() - 1].outputs;
    assert_eq!(dy.len(), rows * out_width, "dense_chain: dy length");
    assert_eq!(
        grads.len(),
        layers.len(),
        "dense_chain: one gradient per layer"
    );
    for (l, (layer, grad)) in layers.iter().zip(grads.iter()).enumerate() {
        assert_eq!(
            grad.weight.len(),
            layer.weight.len(),
            "dense_chain: layer {l}'s weight gradient length"
        );
        assert_eq!(
            grad.bias.as_ref().map(|b| b.len()),
            layer.bias.map(|b| b.len()),
            "dense_chain: layer {l}'s bias gradient"
        );
    }
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), x.len(), "dense_chain: dx length");
    }
    backward_with(Isa::detected(), layers, x, dy, rows, grads, dx);
}

fn backward_with(
    isa: Isa,
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
                match isa {
                    // SAFETY: `isa` is at most `Isa::detected()`: the CPU has the features each form needs.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe {
                        x86::avx512_passes::backward(layers, x, dy, count, sums, dx, scratch)
                    },
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2Fma => unsafe {
                        x86::fma_passes::backward(layers, x, dy, count, sums, dx, scratch)
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
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::Avx512::add_sums(&mut lanes, partial),
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
