// Dropout with a counter-based generator, so the GPU draws exactly the mask the CPU draws.
//
// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11) is a pure function of a 128-bit counter
// and a 64-bit key; element i's random number depends only on i and the seed, never on which
// thread computes it or in what order. One round:
//
//   (hi0, lo0) = M0 * c0    (hi1, lo1) = M1 * c2                 (32x32 -> 64-bit products)
//   [c0, c1, c2, c3] <- [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]
//   [k0, k1] <- [k0 + W0, k1 + W1]                               (between rounds, mod 2^32)
//
// Element i (the mapping the CPU twin documents):
//   counter = [i >> 2 (low 32 bits), i >> 34 (low 32 bits), 0, 0], key = [seed low, seed high]
//   u = (word[i & 3] >> 8) * 2^-24   (exact in float, in [0, 1))
//   mask = u >= p ? 1/(1-p) : 0,     y = x * mask
//
// So one Philox call serves four consecutive elements: each thread handles one group of four.
// The whole computation is integer arithmetic plus one exact int->float conversion, one
// comparison and one product, so the mask is bit-identical to the CPU's and so is y.
// CPU twin: strata_kernels::dropout

#include "common.cuh" // GRID_STRIDE_LOOP

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// The four Philox4x32-10 output words for counter [c0, c1, c2, c3] and key [k0, k1] (the
// element mapping uses c2 = c3 = 0; the general form is what the known-answer vectors test).
// The 64-bit product compiles to one mul.wide.u32 (no intrinsics needed).
static __device__ inline void philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2,
                                            unsigned int c3, unsigned int k0, unsigned int k1,
                                            unsigned int* w0, unsigned int* w1,
                                            unsigned int* w2, unsigned int* w3)
{
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        unsigned long long p0 = (unsigned long long)PHILOX_M0 * c0;
        unsigned long long p1 = (unsigned long long)PHILOX_M1 * c2;
        unsigned int hi0 = (unsigned int)(p0 >> 32);
        unsigned int lo0 = (unsigned int)p0;
        unsigned int hi1 = (unsigned int)(p1 >> 32);
        unsigned int lo1 = (unsigned int)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    *w0 = c0;
    *w1 = c1;
    *w2 = c2;
    *w3 = c3;
}

// Mask value of one element from its 32-bit word.
static __device__ inline float dropout_mask_value(unsigned int word, float p, float scale)
{
    float u = (float)(word >> 8) * (1.0f / 16777216.0f);
    return u >= p ? scale : 0.0f;
}

// The mask values of the (up to) four elements of Philox block `block`.
static __device__ inline void dropout_block(unsigned long long seed, unsigned long long block,
                                            float p, float scale, float* m)
{
    unsigned int w[4];
    philox4x32_10((unsigned int)block, (unsigned int)(block >> 32), 0u, 0u, (unsigned int)seed,
                  (unsigned int)(seed >> 32), &w[0], &w[1], &w[2], &w[3]);
    m[0] = dropout_mask_value(w[0], p, scale);
    m[1] = dropout_mask_value(w[1], p, scale);
    m[2] = dropout_mask_value(w[2], p, scale);
    m[3] = dropout_mask_value(w[3], p, scale);
}

// y[i] = x[i] * mask[i], and mask[i] = (u_i >= p) ? 1/(1-p) : 0 is stored for the backward pass
// (dX = dY * mask). p must be in [0, 1] (the host checks, as the CPU twin panics); p = 1 drops
// everything (the scale is then never used). One thread per group of four elements
// (grid-stride loop), the last group ragged.
// Launch: block (256), grid (min(ceil(ceil(n/4)/256), 65535)).
// CPU twin: strata_kernels::dropout::dropout_forward (and dropout_mask for the mask)
extern "C" __global__ void dropout_forward(unsigned long long seed, float p, const float* x,
                                           float* y, float* mask, int n)
{
    float scale = 1.0f / (1.0f - p);
    int groups = (n + 3) / 4;
    GRID_STRIDE_LOOP(g, groups) {
        float m[4];
        dropout_block(seed, (unsigned long long)g, p, scale, m);
        int first = 4 * g;
#pragma unroll
        for (int l = 0; l < 4; ++l) {
            int i = first + l;
            if (i < n) {
                mask[i] = m[l];
                y[i] = x[i] * m[l];
            }
        }
    }
}

// mask[i] = (u_{first + i} >= p) ? 1/(1-p) : 0 only: the slice from element `first` of the mask
// of a larger tensor (first = 0 for a whole tensor; a data-parallel rank passes its first row
// times the row length, so its rows draw what one process draws for them). One thread per
// Philox block that overlaps [first, first + n); a block may straddle either end.
// Launch: block (256), grid (min(ceil(ceil((first % 4 + n)/4)/256), 65535)).
// CPU twin: strata_kernels::dropout::dropout_mask
extern "C" __global__ void dropout_mask(unsigned long long seed, float p, unsigned long long first,
                                        float* mask, int n)
{
    float scale = 1.0f / (1.0f - p);
    unsigned long long first_block = first >> 2;
    int lead = (int)(first & 3ull);
    int groups = (lead + n + 3) / 4;
    GRID_STRIDE_LOOP(g, groups) {
        float m[4];
        dropout_block(seed, first_block + (unsigned long long)g, p, scale, m);
        int start = 4 * g - lead; // local index of the block's first element
#pragma unroll
        for (int l = 0; l < 4; ++l) {
            int i = start + l;
            if (i >= 0 && i < n) mask[i] = m[l];
        }
    }
}
