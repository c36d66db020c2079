//! Dropout masks from a counter-based random generator, identical on the CPU and the GPU.
//!
//! A stateful generator (draw, advance, draw again) makes a mask depend on the order in
//! which elements are visited, so a GPU with thousands of threads and a CPU with two could
//! never agree. A *counter-based* generator is instead a pure function
//! `bits = f(counter, key)`: element `i` gets its random number from its own index and the
//! seed, whichever thread computes it and in whatever order. The CUDA twin
//! (`kernels/dropout.cu`) evaluates the very same function, so both devices draw the same mask
//! bit for bit.
//!
//! ```text
//! dropout_mask:     seed, p, first   -> mask [n],  mask[i] = keep(seed, first + i) ? 1/(1-p) : 0
//! dropout_forward:  seed, p, x [n]   -> y [n]   =  x · mask
//! ```
//!
//! The CUDA launches are in [`cuda`].
//!
//! # Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11, "Parallel random numbers: as easy as
//! 1, 2, 3")
//!
//! The state is a 128-bit counter `[c0, c1, c2, c3]` and a 64-bit key `[k0, k1]`. One round:
//!
//! ```text
//! (hi0, lo0) = M0 * c0        (hi1, lo1) = M1 * c2       (64-bit products, split in halves)
//! [c0, c1, c2, c3] <- [hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0]
//! [k0, k1]         <- [k0 + W0, k1 + W1]                  (the "key schedule", mod 2^32)
//! ```
//!
//! with `M0 = 0xD2511F53`, `M1 = 0xCD9E8D57`, `W0 = 0x9E3779B9` (golden ratio) and
//! `W1 = 0xBB67AE85` (sqrt 3 - 1). Ten rounds give four 32-bit words that pass BigCrush.
//!
//! # Which word element `i` uses
//!
//! ```text
//! counter = [i >> 2 (low 32 bits), i >> 34 (low 32 bits), 0, 0]     key = [seed low, seed high]
//! word    = philox4x32_10(counter, key)[i & 3]
//! u       = (word >> 8) * 2^-24                                       (exact, in [0, 1))
//! keep    = u >= p            mask = keep ? 1/(1-p) : 0               y = x * mask
//! ```
//!
//! So one Philox call serves four consecutive elements. Keeping the top 24 bits makes `u` an
//! exact multiple of 2^-24 in `f32`, so the comparison with `p` is the same on every device.
//! `P(keep) = 1 - p` up to that 2^-24 granularity, and scaling kept values by `1/(1-p)` keeps the
//! expectation of `y` equal to `x` (inverted dropout, as PyTorch).

pub mod cuda;

use crate::simd::widest_fn;
use rayon::prelude::*;

/// First Philox4x32 multiplier.
const M0: u32 = 0xD251_1F53;
/// Second Philox4x32 multiplier.
const M1: u32 = 0xCD9E_8D57;
/// Key increment for `k0` (golden ratio).
const W0: u32 = 0x9E37_79B9;
/// Key increment for `k1` (sqrt(3) - 1).
const W1: u32 = 0xBB67_AE85;
/// Elements per rayon task. A multiple of 4, so every chunk starts on a Philox block and
/// each block is computed once; it is a constant, so chunking cannot depend on thread count
/// (and could not change the values anyway: every element is a pure function of its index).
const CHUNK: usize = 1 << 14;

/// High and low 32-bit halves of the 64-bit product `a * b`.
#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32-10 block function: ten rounds over `counter` with `key`.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four words for elements `4*block .. 4*block + 4`.
#[inline]
fn block_words(seed: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [block as u32, (block >> 32) as u32, 0, 0],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Blocks evaluated side by side by [`block_words_lanes_body`].
const LANES: usize = 16;

/// [`block_words`] for the `LANES` blocks `first..first + LANES`, structure-of-arrays: word `j`
/// of block `first + l` is `words[j][l]`. The same arithmetic as [`philox4x32_10`], written
/// lane by lane so the compiler turns each step into vector instructions; one block at a
/// time, ten dependent rounds of 64-bit multiplies leave the CPU waiting.
#[inline(always)]
fn block_words_lanes_body(seed: u64, first: u64) -> [[u32; LANES]; 4] {
    let mut c0: [u32; LANES] = std::array::from_fn(|l| (first + l as u64) as u32);
    let mut c1: [u32; LANES] = std::array::from_fn(|l| ((first + l as u64) >> 32) as u32);
    let mut c2 = [0u32; LANES];
    let mut c3 = [0u32; LANES];
    let mut k = [seed as u32, (seed >> 32) as u32];
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        for l in 0..LANES {
            let p0 = M0 as u64 * c0[l] as u64;
            let p1 = M1 as u64 * c2[l] as u64;
            let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
            let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
            c0[l] = hi1 ^ c1[l] ^ k[0];
            c1[l] = lo1;
            c2[l] = hi0 ^ c3[l] ^ k[1];
            c3[l] = lo0;
        }
    }
    [c0, c1, c2, c3]
}

/// The uniforms of the `4 * LANES` elements of blocks `first..first + LANES`, in element
/// order: a 4 x 16 transpose of [`block_words_lanes_body`]'s words, so that the caller's loop
/// over them runs on contiguous elements and vectorises.
#[inline(always)]
fn block_uniforms_lanes(seed: u64, first: u64) -> [f32; 4 * LANES] {
    let words = block_words_lanes_body(seed, first);
    let mut uniforms = [0.0f32; 4 * LANES];
    for (j, word) in words.iter().enumerate() {
        for (l, &w) in word.iter().enumerate() {
            uniforms[4 * l + j] = word_to_uniform(w);
        }
    }
    uniforms
}

/// Calls `f(i, u_i)` for every element `i` of `0..len` of the chunk starting at element
/// `first_element` (a multiple of 4), `u_i` being element `first_element + i`'s uniform.
/// Callers run it inside [`widest`], where Philox's sixteen lanes become AVX-512 vectors.
#[inline(always)]
fn for_each_uniform(seed: u64, first_element: usize, len: usize, mut f: impl FnMut(usize, f32)) {
    let first_block = (first_element / 4) as u64;
    let full = len / (4 * LANES) * (4 * LANES);
    for start in (0..full).step_by(4 * LANES) {
        let uniforms = block_uniforms_lanes(seed, first_block + (start / 4) as u64);
        for (e, &u) in uniforms.iter().enumerate() {
            f(start + e, u);
        }
    }
    for i in full..len {
        let words = block_words(seed, first_block + (i / 4) as u64);
        f(i, word_to_uniform(words[i % 4]));
    }
}

// Philox's sixteen lanes become single AVX-512 instructions in these two.
widest_fn! {
    fn mask_chunk(seed: u64, first: usize, p: f32, scale: f32, values: &mut [f32]) {
        for_each_uniform(seed, first, values.len(), |i, u| {
            values[i] = if u >= p { scale } else { 0.0 };
        });
    }
}

widest_fn! {
    fn forward_chunk(seed: u64, first: usize, p: f32, scale: f32, xs: &[f32], ys: &mut [f32]) {
        for_each_uniform(seed, first, ys.len(), |i, u| {
            let mask = if u >= p { scale } else { 0.0 };
            ys[i] = xs[i] * mask;
        });
    }
}

/// A 32-bit random word as an exact multiple of 2^-24 in `[0, 1)`.
#[inline]
fn word_to_uniform(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// The uniform number in `[0, 1)` that element `index` draws under `seed` (see the module
/// documentation for the exact mapping).
pub fn dropout_uniform(seed: u64, index: u64) -> f32 {
    word_to_uniform(block_words(seed, index >> 2)[(index & 3) as usize])
}

fn check_p(op: &str, p: f32) {
    assert!(
        (0.0..=1.0).contains(&p),
        "{op}: drop probability {p} is outside [0, 1]"
    );
}

/// Fills `out[i]` with `1/(1-p)` where element `first_element + i` is kept
/// (`u_{first_element + i} >= p`) and 0 where it is dropped: the slice of the mask of a larger
/// tensor that starts at `first_element` (0 for a whole tensor). A data-parallel rank that
/// holds rows `r0..r1` of a global batch draws with `first_element = r0 * row_len`, so its
/// rows get exactly the mask one process would draw for them. `p = 1` drops everything;
/// `p = 0` keeps everything with scale 1. Parallel over fixed chunks; the result depends only
/// on `seed`, `p` and the index, never on threads.
///
/// # Panics
/// If `p` is not in `[0, 1]` (NaN included).
pub fn dropout_mask(seed: u64, p: f32, first_element: u64, out: &mut [f32]) {
    check_p("dropout_mask", p);
    let scale = 1.0 / (1.0 - p);
    // Elements before the next multiple of four share a Philox block with earlier elements:
    // drawn one by one, so the chunks below start on a block.
    let lead = ((4 - first_element % 4) % 4).min(out.len() as u64) as usize;
    let (head, rest) = out.split_at_mut(lead);
    for (i, value) in head.iter_mut().enumerate() {
        let u = dropout_uniform(seed, first_element + i as u64);
        *value = if u >= p { scale } else { 0.0 };
    }
    let aligned = (first_element + lead as u64) as usize;
    rest.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, values)| {
            mask_chunk(seed, aligned + chunk * CHUNK, p, scale, values);
        });
}

/// `y = x * mask` with the mask of [`dropout_mask`] (same seed, same p, same values).
///
/// # Panics
/// If `p` is not in `[0, 1]`, or `x` and `y` differ in length.
pub fn dropout_forward(seed: u64, p: f32, x: &[f32], y: &mut [f32]) {
    check_p("dropout_forward", p);
    assert_eq!(
        x.len(),
        y.len(),
        "dropout_forward: input has {} elements but output has {}",
        x.len(),
        y.len()
    );
    let scale = 1.0 / (1.0 - p);
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(chunk, (ys, xs))| {
            forward_chunk(seed, chunk * CHUNK, p, scale, xs, ys);
        });
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "cuda-sim"))]
mod twin_tests;
