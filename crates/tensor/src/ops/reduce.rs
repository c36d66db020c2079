//! Reductions over axes: sum, mean, max (and argmax, which has no gradient).
//!
//!   sum over axes A:  [.., n, ..] -> [.., 1, ..] (keepdim) or [.., ..]
//!                     dx = dy broadcast back over A                      [.., n, ..]
//!   mean:             dx = dy / (number of reduced elements), broadcast
//!   max:              dx = dy at the (first) position of each maximum, 0 elsewhere
//!   sum_to(shape):    the adjoint of broadcasting, used by every broadcasting backward

use crate::ops::cuda;
use crate::shape::normalize_axis;
use crate::tensor::Data;
use crate::Tensor;
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer};
use strata_kernels::reduce::{self, reduce, ReduceOp};
use strata_kernels::strided::{contiguous_strides, numel};

/// Sorted, de-duplicated, non-negative axes; panics naming `op` if one is out of range.
fn resolve_axes(op: &str, axes: &[isize], rank: usize) -> Vec<usize> {
    let mut out: Vec<usize> = axes.iter().map(|&a| normalize_axis(op, a, rank)).collect();
    out.sort_unstable();
    let before = out.len();
    out.dedup();
    assert_eq!(before, out.len(), "{op}: axis listed twice in {axes:?}");
    out
}

/// Output shape of a reduction: reduced axes become 1 (keepdim) or disappear.
fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(d, &n)| match (axes.contains(&d), keepdim) {
            (true, true) => Some(1),
            (true, false) => None,
            (false, _) => Some(n),
        })
        .collect()
}

impl Tensor {
    fn reduce_raw(&self, op: ReduceOp, axes: &[usize], want_index: bool) -> (Data, Vec<u32>) {
        if let Some(device) = self.cuda() {
            let (out, index) = self.reduce_on_device(&device, op, axes, want_index);
            return (cuda::data(&device, out), index);
        }
        let kept = reduced_shape(self.shape(), axes, false);
        let mut out = crate::buffer_cache::take_for_overwrite(numel(&kept));
        let mut index = if want_index {
            vec![0u32; out.len()]
        } else {
            vec![]
        };
        let guard = self.read();
        reduce(
            op,
            self.shape(),
            self.strided(&guard),
            axes,
            &mut out,
            want_index.then_some(index.as_mut_slice()),
        );
        (Data::Host(out), index)
    }

    /// The CUDA path: the reduced axes are moved last and the view made dense, so each output
    /// element is one row for `reduce_sum_rows` / `reduce_max_rows` (indices come back to the
    /// host, as on the CPU path, where only `max`'s backward and `argmax` use them).
    fn reduce_on_device(
        &self,
        device: &CudaDevice,
        op: ReduceOp,
        axes: &[usize],
        want_index: bool,
    ) -> (DeviceBuffer<f32>, Vec<u32>) {
        let order: Vec<usize> = (0..self.rank())
            .filter(|d| !axes.contains(d))
            .chain(axes.iter().copied())
            .collect();
        let permuted = self.detach().permute(&order);
        let cols: usize = axes.iter().map(|&d| self.shape()[d]).product();
        let rows = self.numel() / cols.max(1);
        let x = cuda::dense(device, &permuted);
        match op {
            ReduceOp::Sum => (cuda::sum_rows(device, &x, rows, cols), Vec::new()),
            ReduceOp::Max => {
                let mut out = cuda::zeros(device, rows);
                let mut index = cuda::check("max", device.zeros::<u32>(rows));
                cuda::check(
                    "max",
                    reduce::cuda::max_rows(device, (rows, cols), &x, &mut out, &mut index),
                );
                let index = if want_index {
                    cuda::check("max", device.download(&index))
                } else {
                    Vec::new()
                };
                (out, index)
            }
        }
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` keeps them as size 1.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Tensor {
        let axes = resolve_axes("sum", axes, self.rank());
        let (data, _) = self.reduce_raw(ReduceOp::Sum, &axes, false);
        let shape = reduced_shape(self.shape(), &axes, keepdim);
        let input_shape = self.shape().to_vec();
        let kept_shape = reduced_shape(self.shape(), &axes, true);
        Tensor::from_op(data, &shape, "sum", &[self], move |dy| {
            vec![Some(
                dy.reshape(&kept_shape).expand(&input_shape).contiguous(),
            )]
        })
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Tensor {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Tensor {
        let resolved = resolve_axes("mean", axes, self.rank());
        let count: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        self.sum(axes, keepdim)
            .mul_scalar(1.0 / count.max(1) as f32)
    }

    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Tensor {
        self.sum_all().mul_scalar(1.0 / self.numel().max(1) as f32)
    }

    /// Maximum over `axes`. The gradient goes to the first maximum of each group.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Tensor {
        let axes = resolve_axes("max", axes, self.rank());
        let (data, winners) = self.reduce_raw(ReduceOp::Max, &axes, true);
        let shape = reduced_shape(self.shape(), &axes, keepdim);
        let input_shape = self.shape().to_vec();
        Tensor::from_op(data, &shape, "max", &[self], move |dy| {
            // Output element o sits at kept index K(o); its winner at reduced index R(winner).
            let kept: Vec<usize> = (0..input_shape.len())
                .filter(|d| !axes.contains(d))
                .collect();
            let kept_shape: Vec<usize> = kept.iter().map(|&d| input_shape[d]).collect();
            let red_shape: Vec<usize> = axes.iter().map(|&d| input_shape[d]).collect();
            let strides = contiguous_strides(&input_shape);
            let device = dy.device();
            let dy = dy.to_vec();
            let mut dx = vec![0.0; numel(&input_shape)];
            for (o, (&g, &w)) in dy.iter().zip(&winners).enumerate() {
                let mut at = 0;
                let mut rest = o;
                for (i, &d) in kept.iter().enumerate().rev() {
                    at += (rest % kept_shape[i]) * strides[d];
                    rest /= kept_shape[i];
                }
                let mut rest = w as usize;
                for (i, &d) in axes.iter().enumerate().rev() {
                    at += (rest % red_shape[i]) * strides[d];
                    rest /= red_shape[i];
                }
                dx[at] += g;
            }
            let dx = Tensor::from_vec(dx, &input_shape);
            vec![Some(
                dx.to(device)
                    .unwrap_or_else(|e| panic!("max backward: {e}")),
            )]
        })
    }

    /// Index of the maximum along `axis` (first one on ties), as float indices; no gradient.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Tensor {
        let axis = normalize_axis("argmax", axis, self.rank());
        let (_, index) = self.reduce_raw(ReduceOp::Max, &[axis], true);
        let shape = reduced_shape(self.shape(), &[axis], keepdim);
        let host = Tensor::from_vec(index.into_iter().map(|i| i as f32).collect(), &shape);
        host.to(self.device())
            .unwrap_or_else(|e| panic!("argmax: {e}"))
    }

    /// Sums a broadcast gradient back to `shape`: over leading dimensions `shape` lacks and over
    /// dimensions where `shape` has size 1. The adjoint of `expand(shape -> self.shape())`.
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        let lead = self.rank().checked_sub(shape.len()).unwrap_or_else(|| {
            panic!(
                "sum_to: cannot reduce shape {:?} to the larger rank of {shape:?}",
                self.shape()
            )
        });
        let axes: Vec<isize> = (0..self.rank())
            .filter(|&d| {
                d < lead || {
                    let target = shape[d - lead];
                    assert!(
                        target == self.shape()[d] || target == 1,
                        "sum_to: shape {:?} does not broadcast from {shape:?}",
                        self.shape()
                    );
                    target == 1 && self.shape()[d] != 1
                }
            })
            .map(|d| d as isize)
            .collect();
        self.sum(&axes, true).reshape(shape)
    }
}
