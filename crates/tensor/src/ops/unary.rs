//! Elementwise functions of one tensor. Same shape in and out: `[..] -> [..]`.
//!
//!   neg:      dx = -dy
//!   exp:      dx = dy · y                  (y = eˣ)
//!   log:      dx = dy / x
//!   powf(p):  dx = dy · p · x^(p-1)
//!   sqrt:     dx = dy / (2 y)
//!   relu:     dx = dy · [x > 0]
//!   tanh:     dx = dy · (1 - y²)
//!   sigmoid:  dx = dy · y · (1 - y)
//!   x + c:    dx = dy;   x · c:  dx = dy · c

use crate::ops::binary::map2;
use crate::ops::cuda;
use crate::Tensor;
use strata_kernels::elementwise::{unary, BinaryOp, UnaryOp};

impl Tensor {
    /// Applies `op` without recording anything.
    pub(crate) fn map(&self, op: UnaryOp) -> Tensor {
        if let Some(device) = self.cuda() {
            let out = cuda::map(&device, self, op);
            return cuda::tensor(&device, out, self.shape());
        }
        let mut out = crate::buffer_cache::take_for_overwrite(self.numel());
        unary(op, self.shape(), self.strided(&self.read()), &mut out);
        Tensor::from_vec(out, self.shape())
    }

    fn unary_op(
        &self,
        name: &'static str,
        op: UnaryOp,
        backward: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
    ) -> Tensor {
        let y = self.map(op);
        let x = self.clone();
        let y_saved = y.clone();
        Tensor::from_result(&y, name, &[self], move |dy| {
            vec![Some(backward(dy, &x, &y_saved))]
        })
    }

    /// `-self` elementwise (PyTorch `torch.neg`).
    pub fn neg(&self) -> Tensor {
        self.unary_op("neg", UnaryOp::Neg, |dy, _, _| dy.neg())
    }

    /// `e^self` elementwise. Overflows to `inf` above about `88.7`.
    pub fn exp(&self) -> Tensor {
        self.unary_op("exp", UnaryOp::Exp, |dy, _, y| dy.mul(y))
    }

    /// Natural logarithm.
    pub fn log(&self) -> Tensor {
        self.unary_op("log", UnaryOp::Log, |dy, x, _| dy.div(x))
    }

    /// `self^p` elementwise.
    pub fn powf(&self, p: f32) -> Tensor {
        self.unary_op("powf", UnaryOp::Powf(p), move |dy, x, _| {
            dy.mul(&x.map(UnaryOp::Powf(p - 1.0)).map(UnaryOp::MulScalar(p)))
        })
    }

    /// Square root elementwise; NaN for negative elements, and an infinite gradient at 0.
    pub fn sqrt(&self) -> Tensor {
        self.unary_op("sqrt", UnaryOp::Sqrt, |dy, _, y| {
            dy.div(&y.map(UnaryOp::MulScalar(2.0)))
        })
    }

    /// `max(self, 0)` elementwise (PyTorch `torch.relu`). The gradient at exactly 0 is 0, as in
    /// PyTorch.
    ///
    /// ```
    /// use strata_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0, 0.0, 3.0], &[3]);
    /// assert_eq!(x.relu().to_vec(), vec![0.0, 0.0, 3.0]);
    /// ```
    pub fn relu(&self) -> Tensor {
        self.unary_op("relu", UnaryOp::Relu, |dy, x, _| {
            map2(dy, x, BinaryOp::ReluBackward)
        })
    }

    /// Hyperbolic tangent elementwise, in `(-1, 1)`.
    pub fn tanh(&self) -> Tensor {
        self.unary_op("tanh", UnaryOp::Tanh, |dy, _, y| {
            map2(dy, y, BinaryOp::TanhBackward)
        })
    }

    /// Logistic function `1 / (1 + e^-self)` elementwise, in `(0, 1)`; stable for large `|x|`.
    pub fn sigmoid(&self) -> Tensor {
        self.unary_op("sigmoid", UnaryOp::Sigmoid, |dy, _, y| {
            map2(dy, y, BinaryOp::SigmoidBackward)
        })
    }

    /// `self + c`.
    pub fn add_scalar(&self, c: f32) -> Tensor {
        self.unary_op("add_scalar", UnaryOp::AddScalar(c), |dy, _, _| dy.clone())
    }

    /// `self · c`.
    pub fn mul_scalar(&self, c: f32) -> Tensor {
        self.unary_op("mul_scalar", UnaryOp::MulScalar(c), move |dy, _, _| {
            dy.map(UnaryOp::MulScalar(c))
        })
    }
}
