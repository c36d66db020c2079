// 2-D max and average pooling on NCHW float tensors, floor mode, PyTorch semantics.
//
// planes = n*c independent planes of h x w in, oh x ow out, where (host-computed, with the
// checks of Pool2dGeometry::out_h/out_w) oh = (h + 2*ph - kh)/sh + 1, likewise ow, and
// 2*pad <= kernel. Output (oy, ox) covers padded rows oy*sh .. oy*sh + kh, i.e. input rows
//   y0 = max(oy*sh - ph, 0) .. y1 = min(oy*sh + kh - ph, h)      (columns likewise)
// Clipping the window to the image is the same as padding with -inf (max) or with zeros that
// are not counted (avg, count_include_pad = 0); pad <= kernel/2 with floor mode guarantees
// every window holds at least one real pixel.
//
//   max:  y = max over the window,  argmax = iy*w + ix of that max (index within the plane)
//         dX[argmax] += dY
//   avg:  y = sum over the window / d,  d = kh*kw (count_include_pad) or (y1-y0)*(x1-x0)
//         dX[window] += dY / d
//
// The backward kernels GATHER instead of scatter: one thread per input pixel visits the output
// windows that contain it, in increasing (oy, ox) order, the order in which the CPU twin's
// scatter adds them. No atomics; deterministic and bit-identical to the CPU.
// All indices are int: buffers must have fewer than 2^31 elements.

#include "common.cuh" // GRID_STRIDE_LOOP

// Input rows y0 .. y1 and columns x0 .. x1 of the window of output (oy, ox), clipped to the
// plane (the padding is left out).
static __device__ inline void pool_window(int oy, int ox, int h, int w, int kh, int kw, int sh,
                                          int sw, int ph, int pw, int* y0, int* y1, int* x0,
                                          int* x1)
{
    *y0 = oy * sh - ph;
    *x0 = ox * sw - pw;
    *y1 = *y0 + kh < h ? *y0 + kh : h;
    *x1 = *x0 + kw < w ? *x0 + kw : w;
    if (*y0 < 0) *y0 = 0;
    if (*x0 < 0) *x0 = 0;
}

// One thread per output element, over all planes (grid-stride loop, any 1-D grid works).
// Ties go to the first element in row-major window order (strict >), and a NaN wins: the first
// NaN in the window is taken and nothing compares greater than it afterwards, so NaN propagates.
// Launch: block (256), grid (min(ceil(planes*oh*ow/256), 65535)).
// CPU twin: strata_kernels::pool::max_pool2d_forward
extern "C" __global__ void max_pool2d_forward(int planes, int h, int w, int kh, int kw,
                                              int sh, int sw, int ph, int pw, int oh, int ow,
                                              const float* input, float* output,
                                              unsigned int* argmax)
{
    int total = planes * oh * ow;
    GRID_STRIDE_LOOP(idx, total) {
        int ox = idx % ow;
        int oy = (idx / ow) % oh;
        int plane = idx / (ow * oh);
        const float* x = input + plane * (h * w);
        int y0, y1, x0, x1;
        pool_window(oy, ox, h, w, kh, kw, sh, sw, ph, pw, &y0, &y1, &x0, &x1);
        int best_i = y0 * w + x0;
        float best = x[best_i];
        for (int iy = y0; iy < y1; ++iy) {
            for (int ix = x0; ix < x1; ++ix) {
                int i = iy * w + ix;
                float v = x[i];
                // v > best is false when v is NaN, hence the explicit test (v != v is NaN).
                if (v > best || (v != v && best == best)) {
                    best = v;
                    best_i = i;
                }
            }
        }
        output[idx] = best;
        argmax[idx] = (unsigned int)best_i;
    }
}

// Output rows (or columns) whose window contains padded coordinate t = i + pad: those o with
// o*s <= t < o*s + k, clipped to 0 .. out-1. Empty when lo > hi.
static __device__ inline void windows_containing(int t, int k, int s, int out, int* lo, int* hi)
{
    *lo = t < k ? 0 : (t - k) / s + 1;
    int h_ = t / s;
    *hi = h_ < out - 1 ? h_ : out - 1;
}

// grad_input[pixel] = sum of grad_output over the windows whose argmax is this pixel.
// One thread per input pixel over all planes (grid-stride loop). Overwrites grad_input.
// An argmax outside the plane (the CPU twin panics on it) matches no pixel and is dropped.
// Launch: block (256), grid (min(ceil(planes*h*w/256), 65535)).
// CPU twin: strata_kernels::pool::max_pool2d_backward
extern "C" __global__ void max_pool2d_backward(int planes, int h, int w, int kh, int kw,
                                               int sh, int sw, int ph, int pw, int oh, int ow,
                                               const float* grad_output,
                                               const unsigned int* argmax, float* grad_input)
{
    int total = planes * h * w;
    GRID_STRIDE_LOOP(idx, total) {
        int ix = idx % w;
        int iy = (idx / w) % h;
        int plane = idx / (w * h);
        unsigned int me = (unsigned int)(iy * w + ix);
        const float* dy = grad_output + plane * (oh * ow);
        const unsigned int* am = argmax + plane * (oh * ow);
        int oy0, oy1, ox0, ox1;
        windows_containing(iy + ph, kh, sh, oh, &oy0, &oy1);
        windows_containing(ix + pw, kw, sw, ow, &ox0, &ox1);
        float s = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                int o = oy * ow + ox;
                if (am[o] == me) s += dy[o];
            }
        }
        grad_input[idx] = s;
    }
}

// Divisor of window (oy, ox): kh*kw when count_include_pad (in floor mode no window reaches past
// the padding, so it is always the full kernel), else the number of real pixels in it.
static __device__ inline float avg_pool_divisor(int oy, int ox, int h, int w, int kh, int kw,
                                                int sh, int sw, int ph, int pw,
                                                int count_include_pad)
{
    if (count_include_pad) return (float)(kh * kw);
    int y0, y1, x0, x1;
    pool_window(oy, ox, h, w, kh, kw, sh, sw, ph, pw, &y0, &y1, &x0, &x1);
    return (float)((y1 - y0) * (x1 - x0));
}

// y = (sum of the clipped window) / divisor. Each window row is summed on its own and then added
// to the total, the CPU twin's order, so results match it bit for bit.
// count_include_pad: 1 = divide by kh*kw (PyTorch's default), 0 = by the real-pixel count.
// One thread per output element over all planes (grid-stride loop).
// Launch: block (256), grid (min(ceil(planes*oh*ow/256), 65535)).
// CPU twin: strata_kernels::pool::avg_pool2d_forward
extern "C" __global__ void avg_pool2d_forward(int planes, int h, int w, int kh, int kw,
                                              int sh, int sw, int ph, int pw, int oh, int ow,
                                              int count_include_pad,
                                              const float* input, float* output)
{
    int total = planes * oh * ow;
    GRID_STRIDE_LOOP(idx, total) {
        int ox = idx % ow;
        int oy = (idx / ow) % oh;
        int plane = idx / (ow * oh);
        const float* x = input + plane * (h * w);
        int y0, y1, x0, x1;
        pool_window(oy, ox, h, w, kh, kw, sh, sw, ph, pw, &y0, &y1, &x0, &x1);
        float s = 0.0f;
        for (int iy = y0; iy < y1; ++iy) {
            float row = 0.0f;
            for (int ix = x0; ix < x1; ++ix) row += x[iy * w + ix];
            s += row;
        }
        output[idx] = s / avg_pool_divisor(oy, ox, h, w, kh, kw, sh, sw, ph, pw,
                                           count_include_pad);
    }
}

// grad_input[pixel] = sum over the windows containing the pixel of grad_output / divisor.
// One thread per input pixel over all planes (grid-stride loop). Overwrites grad_input.
// Launch: block (256), grid (min(ceil(planes*h*w/256), 65535)).
// CPU twin: strata_kernels::pool::avg_pool2d_backward
extern "C" __global__ void avg_pool2d_backward(int planes, int h, int w, int kh, int kw,
                                               int sh, int sw, int ph, int pw, int oh, int ow,
                                               int count_include_pad,
                                               const float* grad_output, float* grad_input)
{
    int total = planes * h * w;
    GRID_STRIDE_LOOP(idx, total) {
        int ix = idx % w;
        int iy = (idx / w) % h;
        int plane = idx / (w * h);
        const float* dy = grad_output + plane * (oh * ow);
        int oy0, oy1, ox0, ox1;
        windows_containing(iy + ph, kh, sh, oh, &oy0, &oy1);
        windows_containing(ix + pw, kw, sw, ow, &ox0, &ox1);
        float s = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                s += dy[oy * ow + ox] / avg_pool_divisor(oy, ox, h, w, kh, kw, sh, sw, ph, pw,
                                                         count_include_pad);
            }
        }
        grad_input[idx] = s;
    }
}
