//! The command line on bad input: each mistake is a clear message and a non-zero exit.

use std::process::{Command, Output};
use strata::kernels::test_skip::{skip, Reason};

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the strata binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_model_lists_the_known_ones() {
    let o = strata(&["train", "resnet50"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("unknown model 'resnet50'") && e.contains("lenet5"),
        "{e}"
    );
}

#[test]
fn missing_cifar_folder_says_what_to_put_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let o = strata(&["train", "lenet5_cifar", "--data", data, "--device", "cpu"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cifar10") && e.contains("data_batch_1.bin") && e.contains("test_batch.bin"),
        "{e}"
    );
}

#[test]
fn impossible_batch_size_is_refused() {
    let o = strata(&["train", "dnn3", "--batch-size", "0", "--device", "cpu"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--batch-size 0"), "{}", stderr(&o));
    let o = strata(&["train", "dnn3", "--batch-size", "7001", "--device", "cpu"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("impossible for 7000 training examples"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_fallback() {
    if strata::kernels::cuda::runtime::CudaDevice::open(strata::kernels::Device::Cuda(0)).is_ok() {
        skip(Reason::Hardware(
            "this machine has a GPU, so --device cuda is not an error here".into(),
        ));
        return;
    }
    let o = strata(&["train", "dnn3", "--device", "cuda", "--epochs", "1"]);
    assert!(!o.status.success());
    let message = stderr(&o);
    assert!(
        message.contains("--device cuda: no usable GPU"),
        "{message}"
    );
    assert!(message.contains("cuda-sim"), "{message}");
    let o = strata(&["train", "dnn3", "--device", "tpu"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown device"), "{}", stderr(&o));
}

#[test]
fn auto_uses_the_cpu_without_a_gpu_and_says_why() {
    if strata::kernels::cuda::runtime::CudaDevice::open(strata::kernels::Device::Cuda(0)).is_ok() {
        skip(Reason::Hardware(
            "this machine has a GPU, which auto would pick".into(),
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = strata(&[
        "train",
        "dnn3",
        "--epochs",
        "1",
        "--device",
        "auto",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("device auto: no usable GPU"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("using the CPU"), "{}", stderr(&o));
}

#[test]
fn eval_with_a_missing_weights_file_names_it() {
    let o = strata(&["eval", "dnn3", "--weights", "no/such/file.safetensors"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no/such/file.safetensors"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dnn3_trains_end_to_end_and_writes_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnn3");
    let o = strata(&[
        "train",
        "dnn3",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("epoch  3/3"), "{text}");
    for f in [
        "last.safetensors",
        "best.safetensors",
        "results.json",
        "curves.svg",
    ] {
        assert!(out.join(f).exists(), "{f} was not written");
    }
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("polyline"),
        "curves.svg has lines"
    );
    // Resuming a finished run trains nothing more and keeps the results.
    let o = strata(&[
        "train",
        "dnn3",
        "--epochs",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--resume",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("resuming dnn3 after epoch 3") && text.contains("epoch  4/4"),
        "{text}"
    );
    let o = strata(&["table", "dnn3", "--runs", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("dnn3") && text.contains("deep"),
        "{text}"
    );
}

#[test]
fn summary_and_list_describe_the_zoo() {
    let o = strata(&["summary", "journey_final"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("Total params: 9,896") && text.contains("convblock5.1"),
        "{text}"
    );
    let o = strata(&["list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("journey_r1") && text.contains("6379786"),
        "{text}"
    );
    // Every round of the journey, and where the article's text and its notebook disagree.
    for (round, params) in [
        ("journey_r2", "194884"),
        ("journey_r6", "5688"),
        ("journey_r8", "13848"),
    ] {
        assert!(
            text.contains(round) && text.contains(params),
            "{round}: {text}"
        );
    }
    assert!(
        text.contains("journey_r9: the article's text says 5° rotation")
            && text
                .contains("journey_final: the notebook creates StepLR(6, 0.1) but never steps it")
            && text.contains("`--step-lr 6,0.1` trains with the schedule the article describes"),
        "{text}"
    );
}

#[test]
fn a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnn3");
    let out_arg = out.to_str().unwrap();
    let o = strata(&[
        "train", "dnn3", "--epochs", "2", "--device", "cpu", "--quiet", "--out", out_arg,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(out.join("last.safetensors")).unwrap();
    // A learning rate of 1e30 sends the weights, then the loss, to infinity within a few epochs.
    let o = strata(&[
        "train", "dnn3", "--epochs", "50", "--lr", "1e30", "--device", "cpu", "--quiet",
        "--resume", "--out", out_arg,
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("loss became") && e.contains("training stopped"),
        "{e}"
    );
    assert!(e.contains("last good checkpoint"), "{e}");
    // The diverged epoch was not saved: the checkpoint is still the last good one, byte for byte.
    let after = std::fs::read(out.join("last.safetensors")).unwrap();
    assert!(after == good, "the last good checkpoint was overwritten");
    let o = strata(&[
        "eval",
        "dnn3",
        "--weights",
        out.join("best.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bench_kernels_runs_every_family_on_the_virtual_device() {
    let o = strata(&[
        "bench",
        "kernels",
        "--device",
        "cuda-sim",
        "--seconds",
        "0.001",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    for kernel in [
        "binary_contiguous",
        "binary_strided",
        "unary_contiguous",
        "reduce_sum_rows",
        "sgemm_register_blocked",
        "hgemm_f16",
        "hgemm_bf16",
        "convert_f32_to_f16",
        "im2col + sgemm_batched",
        "max_pool2d_forward",
        "batch_norm_forward_train",
        "softmax_cross_entropy_forward",
        "sgd_step",
        "adam_step",
    ] {
        assert!(table.contains(kernel), "no row for {kernel}:\n{table}");
    }
    assert!(table.contains("cuda-sim"), "{table}");
    // The virtual device's own table: counters and roofline estimates per kernel.
    for column in ["warp instr", "bank cf", "H100 us", "A100 us"] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
}
