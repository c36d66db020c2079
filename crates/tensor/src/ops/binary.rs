//! add, sub, mul, div with NumPy broadcasting.
//!
//! Forward: `y = f(a, b)` on the broadcast shape `[..]` (a size-1 or missing dimension is
//! repeated by a stride-0 view, never copied).
//! Backward: the local derivatives times `dy`, then summed back to each input's own shape over
//! the dimensions that were broadcast, because a repeated element receives the sum of the
//! gradients of all its copies:
//!   add: da = dy,        db = dy
//!   sub: da = dy,        db = -dy
//!   mul: da = dy · b,    db = dy · a
//!   div: da = dy / b,    db = -dy · a / b²

use crate::ops::cuda;
use crate::shape::{broadcast_shapes, broadcast_strides};
use crate::tensor::Data;
use crate::Tensor;
use strata_kernels::elementwise::{binary, BinaryOp};
use strata_kernels::strided::{numel, Strided};

/// Computes `op(a, b)` on the broadcast shape without recording anything.
pub(crate) fn broadcast_map(
    name: &str,
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
) -> (Data, Vec<usize>) {
    let shape = broadcast_shapes(name, a.shape(), b.shape());
    let sa = broadcast_strides(name, a.shape(), a.strides(), &shape);
    let sb = broadcast_strides(name, b.shape(), b.strides(), &shape);
    if let Some(device) = cuda::device_of(name, &[a, b]) {
        let out = cuda::binary(&device, &shape, (a, &sa), (b, &sb), op);
        return (cuda::data(&device, out), shape);
    }
    let mut out = crate::buffer_cache::take_for_overwrite(numel(&shape));
    let (ga, gb) = (a.read(), b.read());
    binary(
        op,
        &shape,
        Strided::new(&ga, a.offset(), &sa),
        Strided::new(&gb, b.offset(), &sb),
        &mut out,
    );
    (Data::Host(out), shape)
}

/// A non-differentiable elementwise map used inside backward passes.
pub(crate) fn map2(a: &Tensor, b: &Tensor, op: BinaryOp) -> Tensor {
    let (data, shape) = broadcast_map("backward", a, b, op);
    Tensor::from_data(data, &shape)
}

impl Tensor {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Tensor {
        let (data, shape) = broadcast_map("add", self, other, BinaryOp::Add);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::from_op(data, &shape, "add", &[self, other], move |dy| {
            vec![Some(dy.sum_to(&sa)), Some(dy.sum_to(&sb))]
        })
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Tensor {
        let (data, shape) = broadcast_map("sub", self, other, BinaryOp::Sub);
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Tensor::from_op(data, &shape, "sub", &[self, other], move |dy| {
            vec![Some(dy.sum_to(&sa)), Some(dy.neg().sum_to(&sb))]
        })
    }

    /// `self * other` elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Tensor {
        let (data, shape) = broadcast_map("mul", self, other, BinaryOp::Mul);
        let (a, b) = (self.clone(), other.clone());
        Tensor::from_op(data, &shape, "mul", &[self, other], move |dy| {
            vec![
                a.requires_grad().then(|| dy.mul(&b).sum_to(a.shape())),
                b.requires_grad().then(|| dy.mul(&a).sum_to(b.shape())),
            ]
        })
    }

    /// `self / other` elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Tensor {
        let (data, shape) = broadcast_map("div", self, other, BinaryOp::Div);
        let (a, b) = (self.clone(), other.clone());
        Tensor::from_op(data, &shape, "div", &[self, other], move |dy| {
            vec![
                a.requires_grad().then(|| dy.div(&b).sum_to(a.shape())),
                b.requires_grad()
                    .then(|| dy.mul(&a).div(&b.mul(&b)).neg().sum_to(b.shape())),
            ]
        })
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$method(&self, &rhs)
            }
        }
    };
}
operator!(Add, add);
operator!(Sub, sub);
operator!(Mul, mul);
operator!(Div, div);

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
