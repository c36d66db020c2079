//! The device runtime's launch contract, on the virtual device: arguments are checked against
//! the kernel's declaration in its `.cu` file before anything runs, buffers round-trip, and a
//! kernel launched by name computes what its CPU twin computes.
#![cfg(feature = "cuda-sim")]

use strata_kernels::cuda::runtime::{CudaDevice, KernelArg, Launch};
use strata_kernels::Device;

fn virtual_device() -> std::sync::Arc<CudaDevice> {
    CudaDevice::open(Device::CudaSim).expect("the virtual device opens where NVRTC is installed")
}

#[test]
fn buffers_round_trip_and_a_launch_by_name_computes() {
    let device = virtual_device();
    let x: Vec<f32> = (0..1000).map(|i| i as f32 - 500.0).collect();
    let input = device.upload(&x).unwrap();
    assert_eq!(device.download(&input).unwrap(), x);
    let mut out = device.zeros::<f32>(x.len()).unwrap();
    device
        .launch(
            "unary_contiguous",
            Launch::elements(x.len()),
            &mut [
                KernelArg::F32s(&input),
                KernelArg::F32sMut(&mut out),
                KernelArg::U64(x.len() as u64),
                KernelArg::I32(5), // UNARY_RELU
                KernelArg::F32(0.0),
            ],
        )
        .unwrap();
    let want: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(device.download(&out).unwrap(), want);
}

#[test]
fn a_wrong_argument_is_refused_before_the_kernel_runs() {
    let device = virtual_device();
    let input = device.upload(&[1.0f32, -2.0]).unwrap();
    let mut out = device.upload(&[7.0f32, 7.0]).unwrap();
    // A float where the kernel declares `unsigned long long n`.
    let err = device
        .launch(
            "unary_contiguous",
            Launch::elements(2),
            &mut [
                KernelArg::F32s(&input),
                KernelArg::F32sMut(&mut out),
                KernelArg::F32(2.0),
                KernelArg::I32(5),
                KernelArg::F32(0.0),
            ],
        )
        .unwrap_err();
    assert!(
        err.contains("parameter 2") && err.contains("unsigned long long"),
        "{err}"
    );
    assert!(err.contains("kernels/elementwise.cu"), "{err}");
    // Nothing ran: the output still holds what was uploaded.
    assert_eq!(device.download(&out).unwrap(), vec![7.0, 7.0]);
    // A read-only buffer where the kernel writes.
    let err = device
        .launch(
            "unary_contiguous",
            Launch::elements(2),
            &mut [
                KernelArg::F32s(&input),
                KernelArg::F32s(&input),
                KernelArg::U64(2),
                KernelArg::I32(5),
                KernelArg::F32(0.0),
            ],
        )
        .unwrap_err();
    assert!(err.contains("`float*`"), "{err}");
    let err = device
        .launch(
            "unary_contiguous",
            Launch::elements(2),
            &mut [KernelArg::I32(1)],
        )
        .unwrap_err();
    assert!(err.contains("takes 5 arguments, was given 1"), "{err}");
    let err = device
        .launch("no_such_kernel", Launch::elements(1), &mut [])
        .unwrap_err();
    assert!(err.contains("no kernel named no_such_kernel"), "{err}");
}

#[test]
fn a_missing_gpu_is_an_error_that_says_why() {
    // cuda:63 exists nowhere (and on a machine without a driver no cuda:N does).
    let err = CudaDevice::open(Device::Cuda(63)).unwrap_err();
    assert!(err.starts_with("cuda:63: "), "{err}");
    assert!(CudaDevice::open(Device::Cpu).is_err());
}

#[test]
fn empty_buffers_and_oversized_launches_are_handled() {
    let device = virtual_device();
    let empty = device.upload::<f32>(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(device.download(&empty).unwrap(), Vec::<f32>::new());
    assert_eq!(device.zeros::<u32>(0).unwrap().len(), 0);
    // The 32-bit index limit is checked before a launch is built, naming the op.
    use strata_kernels::cuda::runtime::check_int_sizes;
    assert!(check_int_sizes("relu", &[1 << 20]).is_ok());
    let err = check_int_sizes("relu", &[10, 1 << 31]).unwrap_err();
    assert!(
        err.contains("relu on CUDA") && err.contains("2147483648"),
        "{err}"
    );
}
