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

use crate::Tensor;
use strata_kernels::conv::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, Conv2dGeometry,
};

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
        // The conv kernels overwrite their outputs (and gradients) entirely.
        let mut out = crate::pool::take_for_overwrite(geometry.output_len());
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
                let mut dx = crate::pool::take_for_overwrite(geometry.input_len());
                dy.with_contiguous(|g| {
                    w_saved.with_contiguous(|wd| conv2d_backward_input(&geometry, g, wd, &mut dx))
                });
                Tensor::from_vec(dx, x_saved.shape())
            });
            let mut dw = crate::pool::take_for_overwrite(geometry.weight_len());
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
