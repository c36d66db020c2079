//! Matrix product, batched over any leading dimensions (which broadcast).
//!
//!   forward:  C = A · B          [.., m, n] = [.., m, k] · [.., k, n]
//!   backward: dA = dC · Bᵀ       [.., m, k] = [.., m, n] · [.., n, k]
//!             dB = Aᵀ · dC       [.., k, n] = [.., k, m] · [.., m, n]
//! then summed over any batch dimensions that were broadcast.
//!
//! Transposed operands are only strides to the GEMM, so `a.t().matmul(b)` costs no copy.

use crate::ops::cuda;
use crate::shape::{broadcast_shapes, broadcast_strides};
use crate::tensor::Data;
use crate::Tensor;
use strata_kernels::gemm::{gemm, gemm_batched};
use strata_kernels::strided::numel;

/// The single stride that steps through all batch dimensions in order, if there is one
/// (true for contiguous batches and for fully broadcast ones).
fn collapsed_batch_stride(shape: &[usize], strides: &[usize]) -> Option<usize> {
    let dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&n, _)| n != 1)
        .map(|(&n, &s)| (n, s))
        .collect();
    match dims.as_slice() {
        [] => Some(0),
        [(_, s)] => Some(*s),
        _ => {
            let inner = dims.last().unwrap().1;
            let mut expected = inner;
            for &(n, s) in dims.iter().rev() {
                if s != expected {
                    return None;
                }
                expected = s * n;
            }
            Some(inner)
        }
    }
}

impl Tensor {
    /// Matrix product of the last two dimensions, batched and broadcast over the rest.
    /// Panics naming both shapes if either is not at least 2-D or the inner sizes differ.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (a, b) = (self, other);
        if a.dtype() != crate::DType::F32 || b.dtype() != crate::DType::F32 {
            return a.matmul_half(b);
        }
        assert!(
            a.rank() >= 2 && b.rank() >= 2,
            "matmul: needs operands of at least 2 dimensions, got shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        );
        let (m, k) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
        let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
        assert_eq!(
            k,
            k2,
            "matmul: shapes {:?} and {:?} do not chain (inner sizes {k} and {k2})",
            a.shape(),
            b.shape()
        );
        let batch_shape = broadcast_shapes(
            "matmul",
            &a.shape()[..a.rank() - 2],
            &b.shape()[..b.rank() - 2],
        );
        let batch = numel(&batch_shape);
        let mut out_shape = batch_shape.clone();
        out_shape.extend([m, n]);
        let device = cuda::device_of("matmul", &[a, b]);
        // The CUDA GEMMs take operands from element 0 of their buffers: a view at an offset
        // is copied first (only for the forward product; autograd still sees `a` and `b`).
        let from_start = |t: &Tensor| match &device {
            Some(_) if t.offset() != 0 => t
                .detach()
                .map(strata_kernels::elementwise::UnaryOp::Identity),
            _ => t.clone(),
        };
        let (a_start, b_start) = (from_start(a), from_start(b));

        // Broadcast each operand to the batch shape, falling back to a contiguous copy only when
        // its batch dimensions cannot be stepped with one stride.
        let prepare = |t: &Tensor| -> (Tensor, usize) {
            let mut full = batch_shape.clone();
            full.extend_from_slice(&t.shape()[t.rank() - 2..]);
            let strides = broadcast_strides("matmul", t.shape(), t.strides(), &full);
            let nb = batch_shape.len();
            match collapsed_batch_stride(&full[..nb], &strides[..nb]) {
                Some(s) => (t.clone(), s),
                None => {
                    let copy = t.expand(&full).contiguous();
                    (copy, full[nb] * full[nb + 1])
                }
            }
        };
        let (a_op, a_batch_stride) = prepare(&a_start);
        let (b_op, b_batch_stride) = prepare(&b_start);
        let matrix_strides = |t: &Tensor| (t.strides()[t.rank() - 2], t.strides()[t.rank() - 1]);
        let (ra, ca) = matrix_strides(&a_op);
        let (rb, cb) = matrix_strides(&b_op);
        let out: Data = if let Some(device) = &device {
            let (ga, gb) = (a_op.device_buffer(), b_op.device_buffer());
            let c = cuda::gemm(
                device,
                (batch, m, n, k),
                cuda::Operand::new(&ga, a_batch_stride, ra, ca),
                cuda::Operand::new(&gb, b_batch_stride, rb, cb),
            );
            cuda::data(device, c)
        } else {
            // beta = 0 below: the GEMM overwrites every element.
            let mut out = crate::pool::take_for_overwrite(numel(&out_shape));
            let (ga, gb) = (a_op.read(), b_op.read());
            let sa = &ga[a_op.offset()..];
            let sb = &gb[b_op.offset()..];
            if batch == 1 {
                gemm(m, n, k, 1.0, sa, ra, ca, sb, rb, cb, 0.0, &mut out, n, 1);
            } else {
                gemm_batched(
                    batch,
                    m,
                    n,
                    k,
                    1.0,
                    sa,
                    a_batch_stride,
                    ra,
                    ca,
                    sb,
                    b_batch_stride,
                    rb,
                    cb,
                    0.0,
                    &mut out,
                    m * n,
                    n,
                    1,
                );
            }
            Data::Host(out)
        };
        let (a_saved, b_saved) = (a.clone(), b.clone());
        Tensor::from_op(out, &out_shape, "matmul", &[a, b], move |dc| {
            vec![
                a_saved.requires_grad().then(|| {
                    // For a transposed operand (Linear's Wᵀ) compute the gradient already
                    // transposed, dAᵀ = B·dCᵀ, so it lands in the layout of the stored tensor
                    // and reaches the parameter without a transposing copy.
                    let da = if is_transposed_contiguous(&a_saved) {
                        b_saved.matmul(&dc.transpose(-1, -2)).transpose(-1, -2)
                    } else {
                        dc.matmul(&b_saved.transpose(-1, -2))
                    };
                    da.sum_to(a_saved.shape())
                }),
                b_saved.requires_grad().then(|| {
                    let db = if is_transposed_contiguous(&b_saved) {
                        dc.transpose(-1, -2).matmul(&a_saved).transpose(-1, -2)
                    } else {
                        a_saved.transpose(-1, -2).matmul(dc)
                    };
                    db.sum_to(b_saved.shape())
                }),
            ]
        })
    }
}

/// Whether swapping the last two dimensions of `t` gives contiguous data (`t` is a transposed
/// view of a row-major matrix, as `weight.t()` is).
fn is_transposed_contiguous(t: &Tensor) -> bool {
    t.rank() >= 2 && !t.is_contiguous() && t.transpose(-1, -2).is_contiguous()
}

#[cfg(test)]
mod tests {
    use super::collapsed_batch_stride;

    #[test]
    fn batch_strides_collapse_only_when_uniform() {
        assert_eq!(collapsed_batch_stride(&[2, 3], &[3, 1]), Some(1));
        assert_eq!(collapsed_batch_stride(&[2, 3], &[0, 0]), Some(0));
        assert_eq!(collapsed_batch_stride(&[2, 1], &[5, 0]), Some(5));
        assert_eq!(collapsed_batch_stride(&[2, 3], &[1, 2]), None);
    }
}
