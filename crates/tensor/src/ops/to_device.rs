//! `to`: a tensor's values on another device, as a differentiable op.
//!
//!   to(device)  [..] -> [..] (contiguous, on `device`)   dx = dy.to(the input's device)
//!
//! The copy goes through host memory when neither end is the host. A 16-bit tensor moves its
//! storage whole with its layout, outside autograd.

use crate::tensor::Data;
use crate::{DeviceError, Tensor};
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::{DType, Device};

impl Tensor {
    /// A copy of this tensor on `device` (this tensor itself if it is already there), with the
    /// same shape, contiguous. Gradients flow back across the move, so `x.to(cuda)?` can
    /// stand inside a differentiable computation; a model's parameters are moved with
    /// `Module::to`, which keeps them leaves.
    ///
    /// ```
    /// use strata_tensor::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, -2.0, 3.0], &[3]);
    /// // The virtual CUDA device runs the kernels' PTX on the CPU (it needs NVRTC, from
    /// // scripts/cuda-tools.sh).
    /// let Ok(on_device) = x.to(Device::CudaSim) else { return };
    /// assert_eq!(on_device.device(), Device::CudaSim);
    /// assert_eq!(on_device.relu().to_vec(), vec![1.0, 0.0, 3.0]);
    /// ```
    pub fn to(&self, device: Device) -> Result<Tensor, DeviceError> {
        let source = self.device();
        if source == device {
            return Ok(self.clone());
        }
        if self.dtype() != DType::F32 {
            // 16-bit storage moves whole, layout kept; it is not part of autograd.
            let moved = self.lock_read().moved(device).map_err(DeviceError)?;
            return Ok(self.with_layout_over(moved));
        }
        let moved = match device {
            Device::Cpu => Tensor::from_vec(self.to_vec(), self.shape()),
            _ => {
                let cuda = CudaDevice::open(device).map_err(DeviceError)?;
                let host = if self.cuda().is_some() {
                    Tensor::from_vec(self.to_vec(), self.shape())
                } else {
                    self.clone()
                };
                let buffer = host
                    .with_contiguous(|values| cuda.upload(values))
                    .map_err(DeviceError)?;
                Tensor::from_data(Data::Cuda(cuda, buffer), self.shape())
            }
        };
        Ok(Tensor::from_result(&moved, "to", &[self], move |dy| {
            vec![Some(dy.to(source).unwrap_or_else(|e| {
                panic!("to: moving the gradient back to {source}: {e}")
            }))]
        }))
    }
}
