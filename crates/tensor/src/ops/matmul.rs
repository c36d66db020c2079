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
        let (m, n, k, batch_shape) = product_shape(a, b);
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
        let a_op = Operand::new(&from_start(a), &batch_shape);
        let b_op = Operand::new(&from_start(b), &batch_shape);
        let shape = (batch, m, n, k);
        let out: Data = match &device {
            Some(device) => {
                let (ga, gb) = (a_op.t.device_buffer(), b_op.t.device_buffer());
                let c = cuda::gemm(
                    device,
                    shape,
                    cuda::Operand::new(&ga, a_op.batch_stride, a_op.rs, a_op.cs),
                    cuda::Operand::new(&gb, b_op.batch_stride, b_op.rs, b_op.cs),
                );
                cuda::data(device, c)
            }
            None => Data::Host(host_product(shape, &a_op, &b_op)),
        };
        let (a_saved, b_saved) = (a.clone(), b.clone());
        Tensor::from_op(out, &out_shape, "matmul", &[a, b], move |dc| {
            matmul_backward(&a_saved, &b_saved, dc)
        })
    }
}

/// `(m, n, k, batch shape)` of `a · b`; panics naming both shapes if either is not at least
/// 2-D, the inner sizes differ, or the batch dimensions do not broadcast.
fn product_shape(a: &Tensor, b: &Tensor) -> (usize, usize, usize, Vec<usize>) {
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
    (m, n, k, batch_shape)
}

/// One operand of the batched GEMM: a tensor whose matrices are `batch_stride` elements apart,
/// with row and column strides `rs`, `cs`.
struct Operand {
    t: Tensor,
    batch_stride: usize,
    rs: usize,
    cs: usize,
}

impl Operand {
    /// `t` broadcast to the batch shape, falling back to a contiguous copy only when its batch
    /// dimensions cannot be stepped with one stride.
    fn new(t: &Tensor, batch_shape: &[usize]) -> Operand {
        let mut full = batch_shape.to_vec();
        full.extend_from_slice(&t.shape()[t.rank() - 2..]);
        let strides = broadcast_strides("matmul", t.shape(), t.strides(), &full);
        let nb = batch_shape.len();
        let (t, batch_stride) = match collapsed_batch_stride(&full[..nb], &strides[..nb]) {
            Some(s) => (t.clone(), s),
            None => {
                let copy = t.expand(&full).contiguous();
                (copy, full[nb] * full[nb + 1])
            }
        };
        let (rs, cs) = (t.strides()[t.rank() - 2], t.strides()[t.rank() - 1]);
        Operand {
            t,
            batch_stride,
            rs,
            cs,
        }
    }
}

/// The product of host operands into a new dense `[batch, m, n]` vector.
fn host_product(
    (batch, m, n, k): (usize, usize, usize, usize),
    a: &Operand,
    b: &Operand,
) -> Vec<f32> {
    // beta = 0 below: the GEMM overwrites every element.
    let mut out = crate::buffer_cache::take_for_overwrite(batch * m * n);
    let (ga, gb) = (a.t.read(), b.t.read());
    let sa = &ga[a.t.offset()..];
    let sb = &gb[b.t.offset()..];
    let (ra, ca, rb, cb) = (a.rs, a.cs, b.rs, b.cs);
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
            a.batch_stride,
            ra,
            ca,
            sb,
            b.batch_stride,
            rb,
            cb,
            0.0,
            &mut out,
            m * n,
            n,
            1,
        );
    }
    out
}

/// `[dA, dB]` from `dC`, each summed over the batch dimensions its operand was broadcast over.
fn matmul_backward(a: &Tensor, b: &Tensor, dc: &Tensor) -> Vec<Option<Tensor>> {
    vec![
        a.requires_grad().then(|| {
            // For a transposed operand (Linear's Wᵀ) compute the gradient already
            // transposed, dAᵀ = B·dCᵀ, so it lands in the layout of the stored tensor
            // and reaches the parameter without a transposing copy.
            let da = if is_transposed_contiguous(a) {
                b.matmul(&dc.transpose(-1, -2)).transpose(-1, -2)
            } else {
                dc.matmul(&b.transpose(-1, -2))
            };
            da.sum_to(a.shape())
        }),
        b.requires_grad().then(|| {
            let db = if is_transposed_contiguous(b) {
                dc.transpose(-1, -2).matmul(a).transpose(-1, -2)
            } else {
                a.transpose(-1, -2).matmul(dc)
            };
            db.sum_to(b.shape())
        }),
    ]
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
