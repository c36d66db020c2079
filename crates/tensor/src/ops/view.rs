//! Views: new shapes over the same storage, no data copied.
//!
//!   reshape  [a,b,..] -> [c,d,..] (same count)   dx = dy.reshape([a,b,..])
//!   permute  [d0,d1,..] -> [d_p0,d_p1,..]        dx = dy.permute(p⁻¹)
//!   narrow   [.., n, ..] -> [.., len, ..]        dx = zeros with dy written into the slice
//!   expand   [1, n] -> [m, n] (stride 0)          dx = dy summed over the expanded dims
//!   squeeze / unsqueeze                           dx = dy.reshape(input shape)
//!   contiguous                                    dx = dy (a copy only in the forward pass)

use crate::shape::{broadcast_strides, normalize_axis};
use crate::{Device, Tensor};
use strata_kernels::strided::{contiguous_strides, copy_strided, numel};

impl Tensor {
    /// The same elements in a new shape. A view when the data is contiguous, otherwise a
    /// contiguous copy first (like PyTorch's `reshape`). Panics if the counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(
            numel(shape),
            self.numel(),
            "reshape: cannot view shape {:?} ({} elements) as {shape:?} ({} elements)",
            self.shape(),
            self.numel(),
            numel(shape)
        );
        let source = self.contiguous();
        let input_shape = self.shape().to_vec();
        Tensor::view_of(
            &source,
            shape.to_vec(),
            contiguous_strides(shape),
            source.offset(),
            "reshape",
            move |dy| vec![Some(dy.reshape(&input_shape))],
        )
    }

    /// Flattens dimensions `start..` into one: `[n, c, h, w].flatten_from(1) = [n, c·h·w]`.
    pub fn flatten_from(&self, start: usize) -> Tensor {
        assert!(
            start <= self.rank(),
            "flatten_from: start dimension {start} is beyond rank {}",
            self.rank()
        );
        let mut shape = self.shape()[..start].to_vec();
        shape.push(self.shape()[start..].iter().product());
        self.reshape(&shape)
    }

    /// Reorders dimensions: output dimension `i` is input dimension `order[i]`.
    pub fn permute(&self, order: &[usize]) -> Tensor {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        assert!(
            order.len() == rank
                && order
                    .iter()
                    .all(|&d| d < rank && !std::mem::replace(&mut seen[d], true)),
            "permute: {order:?} is not a permutation of the {rank} dimensions of shape {:?}",
            self.shape()
        );
        let shape = order.iter().map(|&d| self.shape()[d]).collect();
        let strides = order.iter().map(|&d| self.strides()[d]).collect();
        let mut inverse = vec![0; rank];
        for (i, &d) in order.iter().enumerate() {
            inverse[d] = i;
        }
        Tensor::view_of(self, shape, strides, self.offset(), "permute", move |dy| {
            vec![Some(dy.permute(&inverse))]
        })
    }

    /// Swaps two dimensions (negative counts from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Tensor {
        let a = normalize_axis("transpose", a, self.rank());
        let b = normalize_axis("transpose", b, self.rank());
        let mut order: Vec<usize> = (0..self.rank()).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// Transpose of a matrix (`[m, n] -> [n, m]`).
    pub fn t(&self) -> Tensor {
        assert_eq!(
            self.rank(),
            2,
            "t: needs a 2-D tensor but got shape {:?}",
            self.shape()
        );
        self.transpose(0, 1)
    }

    /// Elements `start..start+len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor {
        let axis = normalize_axis("narrow", axis, self.rank());
        let size = self.shape()[axis];
        assert!(
            start + len <= size,
            "narrow: range {start}..{} is out of bounds for dimension {axis} of size {size} (shape {:?})",
            start + len,
            self.shape()
        );
        let mut shape = self.shape().to_vec();
        shape[axis] = len;
        let offset = self.offset() + start * self.strides()[axis];
        let input_shape = self.shape().to_vec();
        Tensor::view_of(
            self,
            shape,
            self.strides().to_vec(),
            offset,
            "narrow",
            move |dy| {
                // dx: zeros, with dy written into the narrowed range.
                // On a CUDA device the scatter goes through host memory: no network here
                // narrows on its training path, so it has no kernel of its own.
                let device = dy.device();
                let dy = dy
                    .to(Device::Cpu)
                    .unwrap_or_else(|e| panic!("narrow backward: {e}"));
                let strides = contiguous_strides(&input_shape);
                let mut dx = vec![0.0; numel(&input_shape)];
                let guard = dy.read();
                copy_strided(
                    dy.shape(),
                    dy.strided(&guard),
                    &mut dx,
                    start * strides[axis],
                    &strides,
                );
                let dx = Tensor::from_vec(dx, &input_shape);
                vec![Some(
                    dx.to(device)
                        .unwrap_or_else(|e| panic!("narrow backward: {e}")),
                )]
            },
        )
    }

    /// A view repeating size-1 (or missing leading) dimensions to `shape`, without copying.
    pub fn expand(&self, shape: &[usize]) -> Tensor {
        let strides = broadcast_strides("expand", self.shape(), self.strides(), shape);
        let input_shape = self.shape().to_vec();
        Tensor::view_of(
            self,
            shape.to_vec(),
            strides,
            self.offset(),
            "expand",
            move |dy| vec![Some(dy.sum_to(&input_shape))],
        )
    }

    /// Removes dimension `axis`, which must have size 1.
    pub fn squeeze(&self, axis: isize) -> Tensor {
        let axis = normalize_axis("squeeze", axis, self.rank());
        assert_eq!(
            self.shape()[axis],
            1,
            "squeeze: dimension {axis} of shape {:?} is not 1",
            self.shape()
        );
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        shape.remove(axis);
        strides.remove(axis);
        let input_shape = self.shape().to_vec();
        Tensor::view_of(self, shape, strides, self.offset(), "squeeze", move |dy| {
            vec![Some(dy.reshape(&input_shape))]
        })
    }

    /// Inserts a dimension of size 1 at `axis` (`0..=rank`).
    pub fn unsqueeze(&self, axis: usize) -> Tensor {
        assert!(
            axis <= self.rank(),
            "unsqueeze: axis {axis} is out of range for shape {:?}",
            self.shape()
        );
        let mut shape = self.shape().to_vec();
        let mut strides = self.strides().to_vec();
        shape.insert(axis, 1);
        strides.insert(axis, 0);
        let input_shape = self.shape().to_vec();
        Tensor::view_of(
            self,
            shape,
            strides,
            self.offset(),
            "unsqueeze",
            move |dy| vec![Some(dy.reshape(&input_shape))],
        )
    }

    /// This tensor if it is already contiguous, otherwise a row-major copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let copy = self.map(strata_kernels::elementwise::UnaryOp::Identity);
        Tensor::from_result(&copy, "contiguous", &[self], |dy| vec![Some(dy.clone())])
    }
}
