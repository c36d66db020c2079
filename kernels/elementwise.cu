// Elementwise kernels: out[i] = f(a[i]) and out[i] = f(a[i], b[i]).
//
// CPU twins: strata_kernels::elementwise::{unary, binary} (scalar forms: unary_scalar,
// binary_scalar). The op is an integer code; the mapping from the Rust enums lives in
// strata_kernels::elementwise::cuda (UnaryOp -> UNARY_*, BinaryOp -> BINARY_*), and a unit test there
// checks both lists agree.
//
// Launch geometry (all four kernels): 1-D grid-stride loop over the n output elements, any
// gridDim.x >= 1 and any blockDim.x (256 is the intended size). `out` is contiguous row-major.
// Strided operands describe a view of the output's shape: element [i0, .., i_{ndim-1}] of `a`
// is a[a_offset + Σ i_d * a_strides[d]] (broadcasting = stride 0, transposes = swapped
// strides). shape/strides are device arrays of ndim <= 6 ints.

#include "common.cuh" // GRID_STRIDE_LOOP_U64

#define UNARY_IDENTITY 0
#define UNARY_NEG 1
#define UNARY_EXP 2
#define UNARY_LOG 3
#define UNARY_SQRT 4
#define UNARY_RELU 5
#define UNARY_TANH 6
#define UNARY_SIGMOID 7
#define UNARY_POWF 8
#define UNARY_ADD_SCALAR 9
#define UNARY_MUL_SCALAR 10
#define UNARY_POSITIVE_MASK 11

#define BINARY_ADD 0
#define BINARY_SUB 1
#define BINARY_MUL 2
#define BINARY_DIV 3
#define BINARY_RELU_BACKWARD 4
#define BINARY_TANH_BACKWARD 5
#define BINARY_SIGMOID_BACKWARD 6

#define MAX_DIMS 6

// The logistic function; neither branch can overflow expf (same formula as the CPU twin).
static __device__ float sigmoid_f(float x) {
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x);
    return e / (1.0f + e);
}

// `p` is the op's scalar: the exponent of POWF, the constant of ADD_SCALAR / MUL_SCALAR.
static __device__ float apply_unary(int op, float x, float p) {
    switch (op) {
    case UNARY_IDENTITY: return x;
    case UNARY_NEG: return -x;
    case UNARY_EXP: return expf(x);
    case UNARY_LOG: return logf(x);
    case UNARY_SQRT: return sqrtf(x);
    case UNARY_RELU: return x > 0.0f ? x : 0.0f;
    case UNARY_TANH: return tanhf(x);
    case UNARY_SIGMOID: return sigmoid_f(x);
    case UNARY_POWF: return powf(x, p);
    case UNARY_ADD_SCALAR: return x + p;
    case UNARY_MUL_SCALAR: return x * p;
    case UNARY_POSITIVE_MASK: return x > 0.0f ? 1.0f : 0.0f;
    default: return NAN;
    }
}

static __device__ float apply_binary(int op, float a, float b) {
    switch (op) {
    case BINARY_ADD: return a + b;
    case BINARY_SUB: return a - b;
    case BINARY_MUL: return a * b;
    case BINARY_DIV: return a / b;
    case BINARY_RELU_BACKWARD: return b > 0.0f ? a : 0.0f;       // dy where x > 0
    case BINARY_TANH_BACKWARD: return a * (1.0f - b * b);        // dy * (1 - tanh²)
    case BINARY_SIGMOID_BACKWARD: return a * b * (1.0f - b);     // dy * s * (1 - s)
    default: return NAN;
    }
}

// Offset of flat row-major index i of `shape` in a view with `strides`.
static __device__ unsigned long long strided_offset(unsigned long long i, int ndim,
                                                    const int* shape, const int* strides) {
    unsigned long long off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
        unsigned long long extent = (unsigned long long)shape[d];
        off += (i % extent) * (unsigned long long)strides[d];
        i /= extent;
    }
    return off;
}

// out[i] = f(x[i]) for contiguous x. Geometry: grid-stride, see the file header.
extern "C" __global__ void unary_contiguous(const float* x, float* out, unsigned long long n,
                                           int op, float p) {
    GRID_STRIDE_LOOP_U64(i, n) {
        out[i] = apply_unary(op, x[i], p);
    }
}

// out[i] = f(x[view(i)]) for a strided/broadcast x of `ndim` <= 6 dims.
extern "C" __global__ void unary_strided(const float* x, float* out, unsigned long long n,
                                        int ndim, const int* shape, const int* x_strides,
                                        unsigned long long x_offset, int op, float p) {
    GRID_STRIDE_LOOP_U64(i, n) {
        unsigned long long xi = x_offset + strided_offset(i, ndim, shape, x_strides);
        out[i] = apply_unary(op, x[xi], p);
    }
}

// out[i] = f(a[i], b[i]) for contiguous a and b.
extern "C" __global__ void binary_contiguous(const float* a, const float* b, float* out,
                                            unsigned long long n, int op) {
    GRID_STRIDE_LOOP_U64(i, n) {
        out[i] = apply_binary(op, a[i], b[i]);
    }
}

// out[i] = f(a[view_a(i)], b[view_b(i)]); a and b are strided/broadcast views of `shape`.
extern "C" __global__ void binary_strided(const float* a, const float* b, float* out,
                                         unsigned long long n, int ndim, const int* shape,
                                         const int* a_strides, const int* b_strides,
                                         unsigned long long a_offset,
                                         unsigned long long b_offset, int op) {
    GRID_STRIDE_LOOP_U64(i, n) {
        unsigned long long ai = a_offset + strided_offset(i, ndim, shape, a_strides);
        unsigned long long bi = b_offset + strided_offset(i, ndim, shape, b_strides);
        out[i] = apply_binary(op, a[ai], b[bi]);
    }
}
