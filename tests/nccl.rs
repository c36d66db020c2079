//! NCCL, loaded at run time from `.cuda-tools/` (`make cuda-tools`): the library loads and
//! reports its version on any machine; where a GPU is present, a one-GPU group sums buffers in
//! GPU memory, and dnn3 trains through the NCCL communicator to the weights it reaches
//! without one. Without a GPU those two skip with the driver's reason.
#![cfg(feature = "nccl")]

use std::sync::Arc;
use strata::kernels::cuda::device::{probe, DriverStatus};
use strata::kernels::cuda::nccl::{availability, NcclComm, NcclId};
use strata::kernels::cuda::runtime::CudaDevice;
use strata::kernels::test_skip::{skip, Reason};
use strata::kernels::Device;
use strata_models::data::Dnn3;
use strata_models::train::{Silent, TrainConfig, Trainer};
use strata_models::zoo;
use strata_nn::distributed::nccl::NcclCommunicator;
use strata_nn::distributed::{GradientReducer, SingleProcess};
use strata_nn::{Generator, Module, ModuleExt};

#[test]
fn nccl_loads_and_reports_its_version() {
    match availability() {
        Ok(version) => {
            println!("{version}");
            assert!(version.starts_with("NCCL 2."), "{version}");
            // The unique id needs no GPU either: it names a socket on this machine.
            let id = NcclId::new().expect("ncclGetUniqueId");
            assert!(id.0.iter().any(|&b| b != 0));
        }
        Err(why) => skip(Reason::ToolsAbsent(why)),
    }
}

/// GPU 0, or a skip with the driver's reason.
fn gpu() -> Option<Arc<CudaDevice>> {
    match probe() {
        DriverStatus::Devices(_) => Some(CudaDevice::open(Device::Cuda(0)).expect("GPU 0 opens")),
        status => {
            skip(Reason::NoGpu(format!("NCCL on one GPU: {status}")));
            None
        }
    }
}

#[test]
fn nccl_sums_buffers_on_one_gpu() {
    let Some(device) = gpu() else { return };
    let comm = NcclComm::join(&device, 0, 1, NcclId::new().unwrap()).expect("a group of one");
    let a: Vec<f32> = (0..1 << 20).map(|i| (i % 977) as f32 * 0.5).collect();
    let b: Vec<f32> = (0..333).map(|i| -(i as f32)).collect();
    let (mut da, mut db) = (device.upload(&a).unwrap(), device.upload(&b).unwrap());
    comm.all_reduce_sum(&mut da).unwrap();
    comm.all_reduce_sum(&mut db).unwrap();
    // One rank: the sum is the buffer itself.
    assert_eq!(device.download(&da).unwrap(), a);
    assert_eq!(device.download(&db).unwrap(), b);
}

#[test]
fn a_network_trains_through_nccl_on_one_gpu_as_without_it() {
    let Some(_device) = gpu() else { return };
    let entry = zoo::find("dnn3").unwrap();
    let g = &mut Generator::seed(1);
    let (train, test) = (Dnn3::generate(400, g), Dnn3::generate(100, g));
    let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
    config.epochs = 2;
    config.batch_size = 50;
    let train_on_gpu = |nccl: bool| {
        let model = entry.build(0);
        model.move_to(Device::Cuda(0)).unwrap();
        let mut trainer = Trainer::new(&model, config.clone());
        if nccl {
            let host = Arc::new(SingleProcess);
            let comm = NcclCommunicator::join(host, Device::Cuda(0)).expect("NCCL joins");
            trainer
                .data_parallel(Arc::new(comm), false, GradientReducer::DEFAULT_BUCKET_BYTES)
                .unwrap();
        }
        trainer.run(&train, &test, &mut Silent).unwrap();
        model
            .parameters()
            .into_iter()
            .flat_map(|(_, p)| p.to_vec())
            .collect::<Vec<f32>>()
    };
    let (plain, through_nccl) = (train_on_gpu(false), train_on_gpu(true));
    let largest = plain
        .iter()
        .zip(&through_nccl)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("largest difference with and without NCCL: {largest:e}");
    assert!(largest <= 1e-5, "NCCL training differs by {largest}");
}
