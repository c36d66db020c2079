use crate::Module;
use strata_tensor::Tensor;

/// Max over `kernel`×`kernel` windows moved by `stride`.
pub struct MaxPool2d {
    /// Window size, the same along height and width.
    pub kernel: usize,
    /// Step between windows ([`MaxPool2d::new`] sets it to `kernel`).
    pub stride: usize,
    /// Implicit `-inf` padding on every side, at most `kernel / 2`.
    pub padding: usize,
}

impl MaxPool2d {
    /// Stride equal to the window, no padding (PyTorch's default for `MaxPool2d(k)`).
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d {
            kernel,
            stride: kernel,
            padding: 0,
        }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        x.max_pool2d((k, k), (s, s), (p, p))
    }

    fn describe(&self) -> String {
        format!("MaxPool2d({}, stride={})", self.kernel, self.stride)
    }
}

/// Mean over `kernel`×`kernel` windows moved by `stride` (padding counts in the divisor).
pub struct AvgPool2d {
    /// Window size, the same along height and width.
    pub kernel: usize,
    /// Step between windows ([`AvgPool2d::new`] sets it to `kernel`).
    pub stride: usize,
    /// Implicit zero padding on every side, at most `kernel / 2`; padded zeros count in the
    /// divisor (PyTorch's `count_include_pad=True`).
    pub padding: usize,
}

impl AvgPool2d {
    /// Stride equal to the window, no padding.
    pub fn new(kernel: usize) -> AvgPool2d {
        AvgPool2d {
            kernel,
            stride: kernel,
            padding: 0,
        }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        x.avg_pool2d((k, k), (s, s), (p, p))
    }

    fn describe(&self) -> String {
        format!("AvgPool2d({}, stride={})", self.kernel, self.stride)
    }
}

/// Mean over each whole feature map: `[N, C, H, W] -> [N, C, 1, 1]`.
pub struct GlobalAvgPool2d;

impl Module for GlobalAvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        assert_eq!(
            x.rank(),
            4,
            "GlobalAvgPool2d: input must be [N, C, H, W] but has shape {:?}",
            x.shape()
        );
        let (h, w) = (x.shape()[2], x.shape()[3]);
        x.avg_pool2d((h, w), (h, w), (0, 0))
    }

    fn describe(&self) -> String {
        "GlobalAvgPool2d".into()
    }
}
