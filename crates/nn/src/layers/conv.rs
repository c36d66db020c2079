use crate::init;
use crate::Module;
use strata_tensor::{Generator, Tensor};

/// 2-D convolution, NCHW. Weight `[out, in, k, k]`, bias `[out]`.
pub struct Conv2d {
    /// Filters, `[out_channels, in_channels, kernel, kernel]`, trainable.
    pub weight: Tensor,
    /// One value per output channel, `[out_channels]`, trainable; `None` without a bias.
    pub bias: Option<Tensor>,
    /// Step between windows, the same along height and width.
    pub stride: usize,
    /// Zeros added on every side of the input, the same along height and width.
    pub padding: usize,
}

impl Conv2d {
    /// A square `kernel` with PyTorch's default initialisation (U(±1/√fan_in), fan_in = in·k²).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        generator: &mut Generator,
    ) -> Conv2d {
        assert!(
            kernel > 0 && stride > 0,
            "Conv2d: kernel {kernel} and stride {stride} must be positive"
        );
        let shape = [out_channels, in_channels, kernel, kernel];
        let weight = init::pytorch_default_weight(&shape, generator).set_requires_grad(true);
        let bias = bias.then(|| {
            init::pytorch_default_bias(out_channels, in_channels * kernel * kernel, generator)
                .set_requires_grad(true)
        });
        Conv2d {
            weight,
            bias,
            stride,
            padding,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            (self.stride, self.stride),
            (self.padding, self.padding),
        )
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            p.push(("bias".to_string(), b.clone()));
        }
        p
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let mut d = format!("Conv2d({}, {}, kernel={}", s[1], s[0], s[2]);
        if self.stride != 1 {
            d += &format!(", stride={}", self.stride);
        }
        if self.padding != 0 {
            d += &format!(", pad={}", self.padding);
        }
        if self.bias.is_none() {
            d += ", bias=false";
        }
        d + ")"
    }
}
