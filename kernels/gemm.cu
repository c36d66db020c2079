// Single-precision matrix multiply on the GPU: C = alpha * A * B + beta * C.
//
// A ladder of four kernels, each a step a learner can read on its own:
//
//   1. sgemm_naive             one thread per element of C, operands straight from global memory
//   2. sgemm_tiled             32x32 tiles of A and B staged in shared memory, one thread per
//                              element: every global load is reused 32 times
//   3. sgemm_register_blocked  128x128 tiles, BK = 8, each thread owns an 8x8 block of C in
//                              registers: every shared-memory load is reused 8 times
//   4. sgemm_batched           the same as 3 for a batch of independent GEMMs (blockIdx.z)
//
// Operands are general strided matrices, exactly as strata_kernels::gemm: element (i, j) of A
// is a[i*rsa + j*csa], of B is b[i*rsb + j*csb], of C is c[i*rsc + j*csc]. A transposed view is
// just swapped strides, so no kernel needs a "transpose" flag. When beta == 0, C is never read
// (NaN or garbage in C does not leak into the result), as the CPU twin promises. k == 0 gives
// C = beta * C. All index arithmetic is in int: every buffer must have fewer than 2^31
// elements (the launcher passes sizes as int anyway).
//
// Accuracy: sums are accumulated in float in increasing p order (the CPU twin's micro-kernel
// sums in a different blocked order and may contract into FMAs differently), so results agree
// with the CPU to a relative tolerance, not bit for bit.

#include "common.cuh" // tiled_dot

#define NAIVE_BLOCK 16

// C[i][j] = alpha * sum_p A[i][p] * B[p][j] + beta * C[i][j]
// Launch: block (16, 16), grid (ceil(n/16), ceil(m/16)); threadIdx.x walks columns so that
// neighbouring threads touch neighbouring elements of a row-major B and C.
// CPU twin: strata_kernels::gemm::gemm (and gemm_naive, its plain triple loop).
extern "C" __global__ void sgemm_naive(int m, int n, int k, float alpha,
                                       const float* a, int rsa, int csa,
                                       const float* b, int rsb, int csb,
                                       float beta, float* c, int rsc, int csc)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    int i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= m || j >= n) return;
    float sum = 0.0f;
    for (int p = 0; p < k; ++p) {
        sum += a[i * rsa + p * csa] * b[p * rsb + j * csb];
    }
    float* out = c + i * rsc + j * csc;
    float v = alpha * sum;
    if (beta != 0.0f) v += beta * *out;
    *out = v;
}

#define TILE 32

// Same math as sgemm_naive. Each block computes one 32x32 tile of C. The k dimension is walked
// in 32-wide steps: the block first copies a 32x32 tile of A and of B into shared memory (each
// thread copies one element of each), waits, then every thread reads a row of the A tile and a
// column of the B tile from shared memory. Global traffic drops 32-fold against the naive
// kernel. The +1 column of padding keeps column-wise accesses free of bank conflicts.
// Out-of-range elements (ragged m, n, k) are loaded as 0, so they add nothing.
// Launch: block (32, 32) = 1024 threads, grid (ceil(n/32), ceil(m/32)).
// CPU twin: strata_kernels::gemm::gemm
extern "C" __global__ void sgemm_tiled(int m, int n, int k, float alpha,
                                       const float* a, int rsa, int csa,
                                       const float* b, int rsb, int csb,
                                       float beta, float* c, int rsc, int csc)
{
    __shared__ float a_tile[TILE][TILE + 1];
    __shared__ float b_tile[TILE][TILE + 1];
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty;
    int col = blockIdx.x * TILE + tx;
    // Thread (ty, tx) loads A[row][p0 + tx] and B[p0 + ty][col] per step; see common.cuh.
    float sum = tiled_dot<TILE>(
        a_tile, b_tile, m, n, k, row, col, [=](int i, int p) { return a[i * rsa + p * csa]; },
        [=](int p, int j) { return b[p * rsb + j * csb]; });
    // No early return above: every thread must reach the barriers, even outside C.
    if (row < m && col < n) {
        float* out = c + row * rsc + col * csc;
        float v = alpha * sum;
        if (beta != 0.0f) v += beta * *out;
        *out = v;
    }
}

// Register blocking. A block of 256 threads computes a BM x BN = 128 x 128 tile of C; thread
// (ty, tx) (ty = tid / 16, tx = tid % 16) owns the 8 x 8 elements at rows ty + 16*i and columns
// tx + 16*j (i, j in 0..8) of that tile. Per BK = 8 slice of k:
//
//   1. the block stages A[128 x 8] and B[8 x 128] in shared memory (4 + 4 loads per thread);
//   2. for each of the 8 values of kk, a thread reads 8 values of A's column kk and 8 values of
//      B's row kk into registers (a_reg, b_reg) and does 64 multiply-adds on its accumulators.
//
// So each shared-memory load feeds 8 FMAs (against 1 in sgemm_tiled), which is what lets the
// arithmetic units, not shared-memory bandwidth, set the pace. The accumulators live in 64
// registers: every loop that indexes acc/a_reg/b_reg is fully unrolled with constant bounds, so
// no array ever goes to local memory (ptxas --warn-on-spills checks this).
//
// Why the strided ownership (ty + 16*i rather than ty*8 + i): in the inner loop a warp (two
// values of ty, sixteen of tx) reads b_tile[kk][tx + 16*j], sixteen consecutive words: no bank
// conflict, and the two halves of the warp read the same words (broadcast). With contiguous
// 8-wide ownership the same reads would hit each bank four times.
//
// The tiles are loaded through the general strides. The mapping of threads to tile elements is
// chosen per operand so that neighbouring threads read neighbouring addresses (coalesced): for
// A with csa == 1 (row-major) threads run along k, otherwise along m; for B with csb == 1 threads
// run along n, otherwise along k. a_tile is stored transposed ([kk][row]) so that step 2 reads a
// contiguous column. The +4 padding makes the transposed stores of a warp land in distinct banks.
#define RB_BM 128
#define RB_BN 128
#define RB_BK 8
#define RB_TM 8
#define RB_TN 8
#define RB_THREADS 256

static __device__ inline void sgemm_register_blocked_tile(
    int m, int n, int k, float alpha,
    const float* a, int rsa, int csa,
    const float* b, int rsb, int csb,
    float beta, float* c, int rsc, int csc)
{
    __shared__ float a_tile[RB_BK][RB_BM + 4];
    __shared__ float b_tile[RB_BK][RB_BN + 4];

    int tid = threadIdx.x;
    int tx = tid % 16;
    int ty = tid / 16;
    int row0 = blockIdx.y * RB_BM;
    int col0 = blockIdx.x * RB_BN;
    int a_along_k = (csa == 1);
    int b_along_n = (csb == 1);

    float acc[RB_TM][RB_TN];
#pragma unroll
    for (int i = 0; i < RB_TM; ++i) {
#pragma unroll
        for (int j = 0; j < RB_TN; ++j) acc[i][j] = 0.0f;
    }

    for (int p0 = 0; p0 < k; p0 += RB_BK) {
        // Stage A[row0 .. row0+128][p0 .. p0+8]: 1024 elements, 4 per thread.
#pragma unroll
        for (int l = 0; l < (RB_BM * RB_BK) / RB_THREADS; ++l) {
            int e = tid + l * RB_THREADS;
            int r = a_along_k ? e / RB_BK : e % RB_BM;
            int q = a_along_k ? e % RB_BK : e / RB_BM;
            int gr = row0 + r;
            int gq = p0 + q;
            a_tile[q][r] = (gr < m && gq < k) ? a[gr * rsa + gq * csa] : 0.0f;
        }
        // Stage B[p0 .. p0+8][col0 .. col0+128]: 1024 elements, 4 per thread.
#pragma unroll
        for (int l = 0; l < (RB_BK * RB_BN) / RB_THREADS; ++l) {
            int e = tid + l * RB_THREADS;
            int q = b_along_n ? e / RB_BN : e % RB_BK;
            int cc = b_along_n ? e % RB_BN : e / RB_BK;
            int gq = p0 + q;
            int gc = col0 + cc;
            b_tile[q][cc] = (gq < k && gc < n) ? b[gq * rsb + gc * csb] : 0.0f;
        }
        __syncthreads();

#pragma unroll
        for (int kk = 0; kk < RB_BK; ++kk) {
            float a_reg[RB_TM];
            float b_reg[RB_TN];
#pragma unroll
            for (int i = 0; i < RB_TM; ++i) a_reg[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < RB_TN; ++j) b_reg[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < RB_TM; ++i) {
#pragma unroll
                for (int j = 0; j < RB_TN; ++j) acc[i][j] += a_reg[i] * b_reg[j];
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < RB_TM; ++i) {
        int r = row0 + ty + 16 * i;
        if (r < m) {
#pragma unroll
            for (int j = 0; j < RB_TN; ++j) {
                int cc = col0 + tx + 16 * j;
                if (cc < n) {
                    float* out = c + r * rsc + cc * csc;
                    float v = alpha * acc[i][j];
                    if (beta != 0.0f) v += beta * *out;
                    *out = v;
                }
            }
        }
    }
}

// Same math as sgemm_naive; the default GEMM (see the tile comment above).
// Launch: block (256, 1, 1) (exactly 256 threads: the tile mapping depends on it),
// grid (ceil(n/128), ceil(m/128), 1).
// CPU twin: strata_kernels::gemm::gemm
extern "C" __global__ void sgemm_register_blocked(int m, int n, int k, float alpha,
                                                  const float* a, int rsa, int csa,
                                                  const float* b, int rsb, int csb,
                                                  float beta, float* c, int rsc, int csc)
{
    sgemm_register_blocked_tile(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

// For each batch index z: C_z = alpha * A_z * B_z + beta * C_z, where A_z starts at
// a + z*bsa (likewise B with bsb, C with bsc). A batch stride of 0 broadcasts that operand
// (e.g. one weight matrix against many images); C's batches must not overlap.
// Launch: block (256, 1, 1), grid (ceil(n/128), ceil(m/128), batch) — batch <= 65535.
// CPU twin: strata_kernels::gemm::gemm_batched
extern "C" __global__ void sgemm_batched(int batch, int m, int n, int k, float alpha,
                                         const float* a, int bsa, int rsa, int csa,
                                         const float* b, int bsb, int rsb, int csb,
                                         float beta, float* c, int bsc, int rsc, int csc)
{
    int z = blockIdx.z;
    if (z >= batch) return; // uniform over the block: no barrier is skipped by only some threads
    sgemm_register_blocked_tile(m, n, k, alpha,
                                a + z * bsa, rsa, csa,
                                b + z * bsb, rsb, csb,
                                beta, c + z * bsc, rsc, csc);
}
