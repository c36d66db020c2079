//! 2-D convolution (cross-correlation, as in every DL framework), NCHW.
//!
//!   forward:  y[n,co,i,j] = b[co] + Σ_{ci,p,q} W[co,ci,p,q] · x[n,ci, i·s+p-pad, j·s+q-pad]
//!             x [N,Cin,H,W], W [Cout,Cin,KH,KW], b [Cout]  ->  y [N,Cout,OH,OW]
//!             OH = (H + 2·pad - KH)/stride + 1
//!   via im2col per image:  Y_n = W · cols(x_n)      [Cout, OH·OW] = [Cout, Cin·KH·KW] · [Cin·KH·KW, OH·OW]
//!   backward: dW = Σ_n dY_n · cols(x_n)ᵀ            [Cout, Cin·KH·KW]
//!             dx_n = col2im(Wᵀ · dY_n)              [Cin, H, W]
//!             db = Σ_{n,i,j} dY                      [Cout]
//! The kernels live in `strata_kernels::conv`.

use crate::ops::cuda;
use crate::Tensor;
use std::sync::Arc;
use strata_kernels::conv::cuda as conv_cuda;
use strata_kernels::conv::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, Conv2dGeometry,
};
use strata_kernels::cuda::runtime::{CudaDevice, DeviceBuffer};

impl Tensor {
    /// Convolves `self` `[N, Cin, H, W]` with `weight` `[Cout, Cin, KH, KW]`, adding `bias`
    /// `[Cout]` if given, with the given (vertical, horizontal) stride and zero padding.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor {
        let (x, w) = (self, weight);
        assert!(
            x.rank() == 4 && w.rank() == 4 && x.shape()[1] == w.shape()[1],
            "conv2d: input {:?} must be [N, Cin, H, W] and weight {:?} [Cout, Cin, KH, KW] with the same Cin",
            x.shape(),
            w.shape()
        );
        if let Some(b) = bias {
            assert_eq!(
                b.shape(),
                &[w.shape()[0]],
                "conv2d: bias shape {:?} does not match the weight's {} output channels",
                b.shape(),
                w.shape()[0]
            );
        }
        assert!(
            stride.0 > 0 && stride.1 > 0,
            "conv2d: stride {stride:?} must be positive"
        );
        let (kh, kw) = (w.shape()[2], w.shape()[3]);
        let (h, wd) = (x.shape()[2], x.shape()[3]);
        assert!(
            h + 2 * padding.0 >= kh && wd + 2 * padding.1 >= kw,
            "conv2d: kernel {kh}x{kw} is larger than the padded input {}x{} (input {:?}, padding {padding:?})",
            h + 2 * padding.0,
            wd + 2 * padding.1,
            x.shape()
        );
        let geometry = Conv2dGeometry {
            batch: x.shape()[0],
            in_channels: x.shape()[1],
            in_h: h,
            in_w: wd,
            out_channels: w.shape()[0],
            kernel_h: kh,
            kernel_w: kw,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_h: padding.0,
            pad_w: padding.1,
        };
        let out_shape = [
            geometry.batch,
            geometry.out_channels,
            geometry.out_h(),
            geometry.out_w(),
        ];
        if let Some(device) = cuda::device_of("conv2d", &[x, w]) {
            return conv2d_on_device(device, geometry, x, w, bias);
        }
        // The conv kernels overwrite their outputs (and gradients) entirely.
        let mut out = crate::buffer_cache::take_for_overwrite(geometry.output_len());
        x.with_contiguous(|xd| {
            w.with_contiguous(|wd| match bias {
                Some(b) => {
                    b.with_contiguous(|bd| conv2d_forward(&geometry, xd, wd, Some(bd), &mut out))
                }
                None => conv2d_forward(&geometry, xd, wd, None, &mut out),
            })
        });
        let (x_saved, w_saved) = (x.clone(), w.clone());
        let has_bias = bias.is_some();
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        Tensor::from_op(out, &out_shape, "conv2d", &inputs, move |dy| {
            let dy = dy.contiguous();
            let dx = x_saved.requires_grad().then(|| {
                let mut dx = crate::buffer_cache::take_for_overwrite(geometry.input_len());
                dy.with_contiguous(|g| {
                    w_saved.with_contiguous(|wd| conv2d_backward_input(&geometry, g, wd, &mut dx))
                });
                Tensor::from_vec(dx, x_saved.shape())
            });
            let mut dw = crate::buffer_cache::take_for_overwrite(geometry.weight_len());
            let mut db = vec![0.0; geometry.out_channels];
            dy.with_contiguous(|g| {
                x_saved.with_contiguous(|xd| {
                    conv2d_backward_weight(
                        &geometry,
                        xd,
                        g,
                        &mut dw,
                        has_bias.then_some(&mut db[..]),
                    )
                })
            });
            let mut grads = vec![dx, Some(Tensor::from_vec(dw, w_saved.shape()))];
            if has_bias {
                grads.push(Some(Tensor::from_vec(db, &[geometry.out_channels])));
            }
            grads
        })
    }
}

/// `cols <- im2col(x)` for every image of the batch, in a new buffer laid out as
/// `(ld, image_stride)` (see `strata_kernels::conv::cuda`).
fn im2col_on_device(
    device: &CudaDevice,
    g: &Conv2dGeometry,
    x: &DeviceBuffer<f32>,
    layout: (usize, usize),
) -> DeviceBuffer<f32> {
    let (k, p) = (
        g.in_channels * g.kernel_h * g.kernel_w,
        g.out_h() * g.out_w(),
    );
    let mut cols = cuda::zeros(device, g.batch * k * p);
    cuda::check("conv2d", conv_cuda::im2col(device, g, x, &mut cols, layout));
    cols
}

/// The CUDA path of `conv2d`, on im2col, the GEMM kernels and col2im:
///   forward   Y_n = W · cols_n                 one batched GEMM, W shared (batch stride 0)
///   dx        dcols_n = Wᵀ · dY_n, then col2im  one batched GEMM, col2im gathers (no atomics)
///   dW        dY' · colsᵀ with dY' = [Cout, N·P] and cols = [K, N·P]: one GEMM whose inner
///             dimension runs over the whole batch, so no per-image partial sums are added
///   db        the sum of dY over N, OH, OW
fn conv2d_on_device(
    device: Arc<CudaDevice>,
    geometry: Conv2dGeometry,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Tensor {
    let g = geometry;
    let (n, cout) = (g.batch, g.out_channels);
    let (k, p) = (
        g.in_channels * g.kernel_h * g.kernel_w,
        g.out_h() * g.out_w(),
    );
    let out_shape = [n, cout, g.out_h(), g.out_w()];
    cuda::check_sizes("conv2d", &[g.input_len(), g.output_len(), n * k * p]);
    let y = {
        let (xd, wd) = (cuda::dense(&device, x), cuda::dense(&device, w));
        let cols = im2col_on_device(&device, &g, &xd, (p, k * p));
        let y = cuda::gemm(
            &device,
            (n, cout, p, k),
            cuda::Operand::new(&wd, 0, k, 1),
            cuda::Operand::new(&cols, k * p, p, 1),
        );
        cuda::tensor(&device, y, &out_shape)
    };
    let y = match bias {
        Some(b) => y.add(&b.detach().reshape(&[1, cout, 1, 1])),
        None => y,
    };
    let (x_saved, w_saved) = (x.clone(), w.clone());
    let has_bias = bias.is_some();
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Tensor::from_result(&y, "conv2d", &inputs, move |dy| {
        let dyd = cuda::dense(&device, dy);
        let wd = cuda::dense(&device, &w_saved);
        let dx = x_saved.requires_grad().then(|| {
            let dcols = cuda::gemm(
                &device,
                (n, k, p, cout),
                cuda::Operand::new(&wd, 0, 1, k),
                cuda::Operand::new(&dyd, cout * p, p, 1),
            );
            let mut dx = cuda::zeros(&device, g.input_len());
            cuda::check(
                "conv2d backward",
                conv_cuda::col2im(&device, &g, &dcols, (p, k * p), &mut dx),
            );
            cuda::tensor(&device, dx, x_saved.shape())
        });
        let dy_by_channel = dy.reshape(&[n, cout, p]).permute(&[1, 0, 2]);
        let dy_wide = cuda::dense(&device, &dy_by_channel);
        let xd = cuda::dense(&device, &x_saved);
        let cols_wide = im2col_on_device(&device, &g, &xd, (n * p, p));
        let dw = cuda::gemm(
            &device,
            (1, cout, k, n * p),
            cuda::Operand::new(&dy_wide, 0, n * p, 1),
            cuda::Operand::new(&cols_wide, 0, 1, n * p),
        );
        let mut grads = vec![dx, Some(cuda::tensor(&device, dw, w_saved.shape()))];
        if has_bias {
            grads.push(Some(dy.sum(&[0, 2, 3], false)));
        }
        grads
    })
}
