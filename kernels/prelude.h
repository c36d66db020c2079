// strata kernel prelude: prepended to every kernels/*.cu file by NVRTC (crate
// strata_kernels::cuda::nvrtc, for GPUs and for the virtual device alike), and followed by
// `#line 1 "kernels/<file>.cu"`. NVRTC has no libc headers, so the few constants kernels need
// are defined here.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#ifndef FLT_MAX
#define FLT_MAX 3.402823466e+38f
#endif
#ifndef FLT_MIN
#define FLT_MIN 1.175494351e-38f
#endif
#ifndef INT_MAX
#define INT_MAX 2147483647
#endif
#ifndef UINT_MAX
#define UINT_MAX 0xffffffffu
#endif
