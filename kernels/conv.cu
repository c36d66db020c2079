// im2col / col2im for 2-D convolution on NCHW float tensors (cross-correlation, as in deep
// learning). With K = cin*kh*kw and P = oh*ow, one image [cin, h, w] unrolls into the matrix
//
//   cols[r][q]    r = (ci*kh + ki)*kw + kj   (a row per kernel tap)
//                 q = oy*ow + ox             (a column per output position)
//   cols[r][q] = x[ci][oy*sh + ki - ph][ox*sw + kj - pw]   (0 where that falls in the padding)
//
// so the convolution is one GEMM:  y = W . cols  ([cout, P] = [cout, K] . [K, P]), and its input
// gradient is col2im(W^T . dY), col2im being the adjoint of im2col: every entry of cols is added
// back to the pixel it was copied from.
//
// Layout of cols for a batch of images (blockIdx.y = image b):
//   element (r, q) of image b is cols[b*col_batch_stride + r*ld + q],  ld >= P.
// ld = P and col_batch_stride = K*P stacks the images' matrices one after another;
// ld = count*P and col_batch_stride = P lays them side by side (the layout the CPU twin's weight
// gradient uses: one wide GEMM over several images). Images are x + b*cin*h*w.
// oh and ow are passed in (the host already computed them with the checks of
// Conv2dGeometry::out_h/out_w): oh = (h + 2*ph - kh)/sh + 1, likewise ow.
// All indices are int: buffers must have fewer than 2^31 elements.

#include "common.cuh" // GRID_STRIDE_LOOP

// cols <- im2col(images). One thread per element of cols (grid-stride loop, so any 1-D grid
// size works), reading at most one input element: fully parallel, no reuse needed.
// Launch: block (256), grid (min(ceil(K*P/256), 65535), batch) — batch <= 65535.
// CPU twin: strata_kernels::conv::im2col (one image; the batch is blockIdx.y).
extern "C" __global__ void im2col(int cin, int h, int w, int kh, int kw, int sh, int sw,
                                  int ph, int pw, int oh, int ow,
                                  const float* images, float* cols, int ld, int col_batch_stride)
{
    int b = blockIdx.y;
    int p = oh * ow;
    int total = cin * kh * kw * p;
    const float* x = images + b * (cin * h * w);
    float* out = cols + b * col_batch_stride;
    GRID_STRIDE_LOOP(idx, total) {
        int q = idx % p;
        int r = idx / p;
        int ox = q % ow;
        int oy = q / ow;
        int kj = r % kw;
        int ki = (r / kw) % kh;
        int ci = r / (kw * kh);
        int iy = oy * sh + ki - ph;
        int ix = ox * sw + kj - pw;
        float v = 0.0f;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = x[(ci * h + iy) * w + ix];
        out[r * ld + q] = v;
    }
}

// images += col2im(cols). One thread per INPUT pixel (ci, iy, ix), gathering the entries of
// cols that were copied from it: for each tap (ki, kj), the pixel was read by output position
// oy = (iy + ph - ki)/sh (only when that divides exactly and 0 <= oy < oh), likewise ox. Each
// thread owns its pixel, so there are no atomics and the result is deterministic; the taps are
// visited in increasing (ki, kj) order starting from the pixel's current value, which is exactly
// the order in which the CPU twin adds them, so the result is bit-identical to it.
// Accumulates into images, as the CPU twin does: zero it first for a plain col2im.
// Launch: block (256), grid (min(ceil(cin*h*w/256), 65535), batch) — batch <= 65535.
// CPU twin: strata_kernels::conv::col2im (one image; the batch is blockIdx.y).
extern "C" __global__ void col2im(int cin, int h, int w, int kh, int kw, int sh, int sw,
                                  int ph, int pw, int oh, int ow,
                                  const float* cols, int ld, int col_batch_stride, float* images)
{
    int b = blockIdx.y;
    int total = cin * h * w;
    const float* src = cols + b * col_batch_stride;
    float* x = images + b * total;
    GRID_STRIDE_LOOP(idx, total) {
        int ix = idx % w;
        int iy = (idx / w) % h;
        int ci = idx / (w * h);
        float s = x[idx];
        for (int ki = 0; ki < kh; ++ki) {
            int ty = iy + ph - ki; // = oy*sh for the window that read this pixel through tap ki
            if (ty < 0 || ty % sh != 0) continue;
            int oy = ty / sh;
            if (oy >= oh) continue;
            for (int kj = 0; kj < kw; ++kj) {
                int tx = ix + pw - kj;
                if (tx < 0 || tx % sw != 0) continue;
                int ox = tx / sw;
                if (ox >= ow) continue;
                int r = (ci * kh + ki) * kw + kj;
                s += src[r * ld + oy * ow + ox];
            }
        }
        x[idx] = s;
    }
}
