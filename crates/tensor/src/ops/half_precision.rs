//! 16-bit storage: f16 and bf16 tensors.
//!
//! Tensors compute in f32. A 16-bit tensor holds the same values rounded to f16 or bf16 (half
//! the memory and bandwidth) and supports what storage needs: conversion both ways on either
//! device (`to_dtype`), moving (`to`), views, reading back (`to_vec`), and the GEMM that reads
//! 16-bit operands and accumulates in f32 (`matmul`, by `hgemm_f16`/`hgemm_bf16` on CUDA and
//! `gemm_half` on the CPU). They are not part of autograd: `to_dtype` makes a new leaf.
//!
//!   to_dtype(f16|bf16):  x [..] f32 -> bits [..] u16, rounded to nearest, ties to even
//!   to_dtype(f32):       bits [..] -> x [..], exact (every 16-bit value is an f32)
//!   matmul:              C [m, n] f32 = A [m, k] 16-bit · B [k, n] 16-bit, f32 accumulation

use crate::ops::cuda;
use crate::tensor::{Buffer, Data};
use crate::{DType, Tensor};
use strata_kernels::half_precision::cuda::{self as half_cuda, HalfMatrix};
use strata_kernels::half_precision::{gemm_half, HalfFormat};

impl Tensor {
    /// This tensor's values stored as `dtype`: a new leaf (no gradient flows through it) on the
    /// same device. To f16/bf16 the values are rounded to nearest, ties to even, as the `half`
    /// crate and the CUDA conversion kernels do (bit for bit the same on both devices); back to
    /// f32 is exact. A 16-bit view keeps its layout; an f32 view is made contiguous first.
    ///
    /// ```
    /// use strata_tensor::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 1.0 / 3.0, 65520.0], &[3]);
    /// let h = x.to_dtype(DType::F16);
    /// assert_eq!(h.dtype(), DType::F16);
    /// // 1/3 rounds to the nearest f16; 65520 is halfway to 65536 and overflows to infinity.
    /// assert_eq!(h.to_vec(), vec![1.0, 0.33325195, f32::INFINITY]);
    /// let b = x.to_dtype(DType::BF16);
    /// assert_eq!(b.to_vec(), vec![1.0, 0.33398438, 65536.0]);
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        let current = self.dtype();
        if current == dtype {
            return self.clone();
        }
        match (current.half_format(), dtype.half_format()) {
            (Some(_), Some(_)) => self.to_dtype(DType::F32).to_dtype(dtype),
            (None, Some(format)) => self.narrow_to(format),
            (Some(format), None) => self.widen_from(format),
            (None, None) => unreachable!("f32 to f32 returned above"),
        }
    }

    /// f32 -> 16-bit: the values made dense, then converted.
    fn narrow_to(&self, format: HalfFormat) -> Tensor {
        let data = match self.cuda() {
            None => Data::HostHalf(format, self.with_contiguous(|v| format.narrow(v))),
            Some(device) => {
                let n = self.numel();
                cuda::check_sizes("to_dtype", &[n]);
                let x = cuda::dense(&device, self);
                let mut bits = cuda::check("to_dtype", device.zeros::<u16>(n));
                let launched = half_cuda::narrow(&device, format, &x, &mut bits, n);
                cuda::check("to_dtype", launched);
                Data::CudaHalf(device.clone(), format, bits)
            }
        };
        Tensor::from_data(data, self.shape())
    }

    /// 16-bit -> f32: the whole storage converted, this tensor's layout kept over it.
    fn widen_from(&self, format: HalfFormat) -> Tensor {
        let widened = match &*self.lock_read() {
            Buffer::HostHalf { bits, .. } => Data::Host(format.widen(bits)),
            Buffer::CudaHalf { device, bits, .. } => {
                cuda::check_sizes("to_dtype", &[bits.len()]);
                let mut out = cuda::zeros(device, bits.len());
                let launched = half_cuda::widen(device, format, bits, &mut out, bits.len());
                cuda::check("to_dtype", launched);
                Data::Cuda(device.clone(), out)
            }
            _ => unreachable!("widen_from is only called on 16-bit storage"),
        };
        self.with_layout_over(Tensor::buffer_of(widened))
    }

    /// `self · other` for two 2-D 16-bit tensors of one format: an f32 `[m, n]` result with
    /// f32 accumulation. Either operand may be a transposed view.
    pub(crate) fn matmul_half(&self, other: &Tensor) -> Tensor {
        let (a, b) = (self, other);
        let (da, db) = (a.dtype(), b.dtype());
        assert!(
            da == db && a.rank() == 2 && b.rank() == 2,
            "matmul: 16-bit operands must be two matrices of one dtype, got {da} {:?} and {db} {:?}",
            a.shape(),
            b.shape()
        );
        assert!(
            !(crate::is_grad_enabled() && (a.requires_grad() || b.requires_grad())),
            "matmul: {da} tensors do not take part in autograd; convert to f32 to train"
        );
        let format = da.half_format().expect("a 16-bit dtype");
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        assert_eq!(
            k,
            b.shape()[0],
            "matmul: shapes {:?} and {:?} do not chain",
            a.shape(),
            b.shape()
        );
        let device = cuda::device_of("matmul", &[a, b]);
        let (sa, sb) = (a.strides(), b.strides());
        let (ga, gb) = (a.lock_read(), b.lock_read());
        let data = match (&*ga, &*gb, device) {
            (Buffer::HostHalf { bits: ba, .. }, Buffer::HostHalf { bits: bb, .. }, None) => {
                let mut c = vec![0.0; m * n];
                gemm_half(
                    format,
                    m,
                    n,
                    k,
                    1.0,
                    &ba[a.offset()..],
                    sa[0],
                    sa[1],
                    &bb[b.offset()..],
                    sb[0],
                    sb[1],
                    0.0,
                    &mut c,
                    n,
                    1,
                );
                Data::Host(c)
            }
            (
                Buffer::CudaHalf { bits: ba, .. },
                Buffer::CudaHalf { bits: bb, .. },
                Some(device),
            ) => {
                assert!(
                    a.offset() == 0 && b.offset() == 0,
                    "matmul: the CUDA half-precision GEMM reads operands from the start of \
                     their storage; this view starts at an offset (convert it with to_dtype)"
                );
                cuda::check_sizes("matmul", &[ba.len(), bb.len(), m * n]);
                let mut c = cuda::zeros(&device, m * n);
                let lhs = HalfMatrix {
                    bits: ba,
                    row_stride: sa[0],
                    col_stride: sa[1],
                };
                let rhs = HalfMatrix {
                    bits: bb,
                    row_stride: sb[0],
                    col_stride: sb[1],
                };
                let launched = half_cuda::hgemm(&device, format, (m, n, k), lhs, rhs, &mut c);
                cuda::check("matmul", launched);
                Data::Cuda(device, c)
            }
            _ => unreachable!("device_of checked that both operands share a device"),
        };
        Tensor::from_data(data, &[m, n])
    }
}
