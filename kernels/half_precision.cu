// Half precision: conversions between float and the two 16-bit formats, and a GEMM that reads
// 16-bit operands and accumulates in float.
//
// The formats, stored as raw `unsigned short` bits (no cuda_fp16.h: the arithmetic below is
// the whole story, and it runs unchanged on the virtual device):
//
//   f16  (IEEE binary16)  1 sign, 5 exponent (bias 15), 10 mantissa bits: 3-4 significant
//                         digits, largest finite 65504, subnormals down to 2^-24
//   bf16 (bfloat16)       1 sign, 8 exponent (bias 127), 7 mantissa bits: the top half of a
//                         float, so the same range as float with 2-3 significant digits
//
// float -> 16 bits rounds to nearest, ties to even; overflow gives infinity and NaN stays a
// (quiet) NaN. 16 bits -> float is exact (a NaN keeps its payload and becomes quiet). These
// are the rules of the `half` crate, the CPU twin (strata_kernels::half_precision), and the
// kernels agree with it bit for bit, NaN payloads included.

#include "common.cuh" // GRID_STRIDE_LOOP, tiled_dot

// ----- scalar conversions -----

__device__ __forceinline__ float f16_to_float(unsigned short h)
{
    unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
    unsigned int exponent = ((unsigned int)h >> 10) & 0x1fu;
    unsigned int mantissa = (unsigned int)h & 0x3ffu;
    unsigned int bits;
    if (exponent == 0x1fu) {
        // Infinity, or NaN with its payload and the quiet bit set.
        bits = sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0u ? 0x400000u : 0u);
    } else if (exponent != 0u) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
    } else if (mantissa == 0u) {
        bits = sign;                                             // signed zero
    } else {
        // Subnormal: mantissa * 2^-24. Shift the leading one up to the implicit bit.
        unsigned int shift = 0u;
        while ((mantissa & 0x400u) == 0u) {
            mantissa <<= 1;
            ++shift;
        }
        bits = sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13);
    }
    return __uint_as_float(bits);
}

__device__ __forceinline__ unsigned short float_to_f16(float value)
{
    unsigned int x = __float_as_uint(value);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int magnitude = x & 0x7fffffffu;
    if (magnitude > 0x7f800000u) {
        // NaN: keep the top mantissa bits, and set the quiet bit so it cannot become infinity.
        return (unsigned short)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    }
    if (magnitude >= 0x477ff000u) {
        return (unsigned short)(sign | 0x7c00u);                 // >= 65520 rounds to infinity
    }
    if (magnitude >= 0x38800000u) {
        // Normal f16 (>= 2^-14): drop 13 mantissa bits, rounding to nearest even; a carry out
        // of the mantissa correctly bumps the exponent.
        unsigned int rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
        return (unsigned short)(sign | ((rounded - 0x38000000u) >> 13));
    }
    if (magnitude < 0x33000000u) {
        return (unsigned short)sign;                             // below 2^-25: zero
    }
    // Subnormal f16: round (1.m * 2^(e-127)) / 2^-24 to an integer, ties to even.
    unsigned int exponent = magnitude >> 23;
    unsigned int mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    unsigned int shift = 126u - exponent;                        // 14..24
    unsigned int quotient = mantissa >> shift;
    unsigned int remainder = mantissa & ((1u << shift) - 1u);
    unsigned int halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (quotient & 1u))) {
        ++quotient;                                              // may reach 0x400: 2^-14
    }
    return (unsigned short)(sign | quotient);
}

__device__ __forceinline__ float bf16_to_float(unsigned short b)
{
    unsigned int bits = (unsigned int)b;
    if ((bits & 0x7fffu) > 0x7f80u) {
        bits |= 0x0040u;                                         // NaN: set the quiet bit
    }
    return __uint_as_float(bits << 16);
}

__device__ __forceinline__ unsigned short float_to_bf16(float value)
{
    unsigned int x = __float_as_uint(value);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((x >> 16) | 0x0040u);            // NaN stays NaN, quiet
    }
    // Add just under half of the dropped part, plus the kept part's lowest bit: to nearest,
    // ties to even. The largest floats carry into the exponent and become infinity.
    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// ----- elementwise conversion kernels -----
// One thread per element, grid-stride. Launch: any grid, e.g. block 256, grid ceil(n/256).
// CPU twins: strata_kernels::half_precision::{f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32}.

extern "C" __global__ void convert_f32_to_f16(const float* x, unsigned short* y, int n)
{
    GRID_STRIDE_LOOP(i, n) {
        y[i] = float_to_f16(x[i]);
    }
}

extern "C" __global__ void convert_f16_to_f32(const unsigned short* x, float* y, int n)
{
    GRID_STRIDE_LOOP(i, n) {
        y[i] = f16_to_float(x[i]);
    }
}

extern "C" __global__ void convert_f32_to_bf16(const float* x, unsigned short* y, int n)
{
    GRID_STRIDE_LOOP(i, n) {
        y[i] = float_to_bf16(x[i]);
    }
}

extern "C" __global__ void convert_bf16_to_f32(const unsigned short* x, float* y, int n)
{
    GRID_STRIDE_LOOP(i, n) {
        y[i] = bf16_to_float(x[i]);
    }
}

// ----- GEMM with 16-bit inputs, float accumulation -----
//
// C = alpha * A * B + beta * C with A and B in f16 or bf16 and C in float: the shape of
// mixed-precision training, where weights and activations travel in 16 bits (half the memory
// traffic) but every sum is kept in float. The structure is sgemm_tiled's (gemm.cu): 16x16
// tiles of A and B staged in shared memory, widened to float as they are loaded, so each
// 16-bit element is converted once per block rather than once per use. Operands are strided
// exactly as in gemm.cu; when beta == 0, C is not read. Ragged edges load zeros.
// Launch: block (16, 16), grid (ceil(n/16), ceil(m/16)).
// CPU twin: strata_kernels::half_precision::{gemm_f16, gemm_bf16} (widen, then the f32 GEMM).

#define HTILE 16

template <bool BF16>
__device__ __forceinline__ float widen(unsigned short v)
{
    return BF16 ? bf16_to_float(v) : f16_to_float(v);
}

template <bool BF16>
__device__ void gemm16_tiled(int m, int n, int k, float alpha,
                             const unsigned short* a, int rsa, int csa,
                             const unsigned short* b, int rsb, int csb,
                             float beta, float* c, int rsc, int csc)
{
    __shared__ float a_tile[HTILE][HTILE + 1];
    __shared__ float b_tile[HTILE][HTILE + 1];
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int row = blockIdx.y * HTILE + ty;
    int col = blockIdx.x * HTILE + tx;
    float sum = tiled_dot<HTILE>(
        a_tile, b_tile, m, n, k, row, col,
        [=](int i, int p) { return widen<BF16>(a[i * rsa + p * csa]); },
        [=](int p, int j) { return widen<BF16>(b[p * rsb + j * csb]); });
    if (row < m && col < n) {
        float* out = c + row * rsc + col * csc;
        float v = alpha * sum;
        if (beta != 0.0f) v += beta * *out;
        *out = v;
    }
}

extern "C" __global__ void hgemm_f16(int m, int n, int k, float alpha,
                                     const unsigned short* a, int rsa, int csa,
                                     const unsigned short* b, int rsb, int csb,
                                     float beta, float* c, int rsc, int csc)
{
    gemm16_tiled<false>(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

extern "C" __global__ void hgemm_bf16(int m, int n, int k, float alpha,
                                      const unsigned short* a, int rsa, int csa,
                                      const unsigned short* b, int rsb, int csb,
                                      float beta, float* c, int rsc, int csc)
{
    gemm16_tiled<true>(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}
