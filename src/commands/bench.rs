//! `strata bench gemm|train|layers`: GFLOP/s of the GEMM ladder, seconds per epoch, and where a
//! training step's time goes, layer by layer.

use std::time::Duration;
use strata::bench::{gemm_problems, measure_gemm};
use strata::kernels::gemm::selected_kernel;

#[derive(clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    target: Target,
    /// For `train` and `layers`: the networks to time [default: every MNIST network].
    models: Vec<String>,
    /// For `layers`: examples per batch [default: the recipe's].
    #[arg(long)]
    batch_size: Option<usize>,
    /// For `train`: epochs to time per network (the figure is the mean; a record keeps each).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// For `train`: folder holding the datasets.
    #[arg(long, default_value = "datasets")]
    data: std::path::PathBuf,
    /// Square sizes to measure (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,512,1024,2048"
    )]
    sizes: Vec<usize>,
    /// Seconds spent timing each entry.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
    /// Only rows whose label contains this text.
    #[arg(long)]
    only: Option<String>,
    /// For `gemm`: `cpu`, `cuda` / `cuda:N` to time the CUDA GEMM ladder on a GPU, or
    /// `cuda-sim` for the ladder's counters and roofline estimates on the virtual device. For
    /// `kernels` and `train`: cpu, cuda, cuda:N or cuda-sim (which adds a table of
    /// each kernel's counters and its roofline estimate on an H100 and an A100).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// For `kernels`: repetitions of the whole table; each figure is their median. For `comm`:
    /// calls timed per message size.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// For `kernels`, `train` and `comm`: write every repetition, with the command, commit, machine and
    /// date, to this JSON record (what `strata records` builds the documents' tables from).
    /// With `--device cuda-sim` (also for `gemm`): the virtual device's counters and estimates.
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    /// Single-precision matrix multiply: naive loop, strata on one thread, strata on all.
    Gemm,
    /// Seconds per training epoch and per test pass of the networks, with their recipes.
    Train,
    /// Each layer's forward and backward time in a training step, GFLOP/s and share of peak.
    Layers,
    /// One op per kernel family on `--device` (cpu, cuda, cuda:N or cuda-sim): time, GFLOP/s
    /// and GB/s of the minimum memory traffic.
    Kernels,
    /// Under mpirun: the ranks' all-reduce by message size, 4 KiB to 64 MiB (time per call,
    /// algorithm and bus bandwidth), e.g. `mpirun -n 2 strata bench comm --repeat 20`; MPI of
    /// host memory with `--device cpu`, NCCL of GPU memory with `--device cuda`.
    Comm,
}

pub fn run(args: &Args) -> Result<(), String> {
    match args.target {
        Target::Gemm => bench_gemm(args),
        Target::Train => bench_train(args),
        Target::Layers => bench_layers(args),
        Target::Kernels => bench_kernels(args),
        Target::Comm => super::bench_comm::run(args.repeat, args.record.as_deref(), &args.device),
    }
}

fn model_names(args: &Args) -> Vec<String> {
    use strata_models::zoo::{zoo, DataKind};
    if args.models.is_empty() {
        zoo()
            .into_iter()
            .filter(|e| e.recipe.data == DataKind::Mnist)
            .map(|e| e.name.to_string())
            .collect()
    } else {
        args.models.clone()
    }
}

fn bench_kernels(args: &Args) -> Result<(), String> {
    use strata::kernels::Device;
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(format!(
            "--seconds {}: must be a positive number",
            args.seconds
        ));
    }
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let provenance = strata::records::Provenance::now();
    let device = strata::device::resolve(&args.device)?;
    let simulated = device == Device::CudaSim;
    let mut repetitions = Vec::new();
    let mut sim_records = Vec::new();
    for _ in 0..args.repeat {
        let measure = || {
            strata::bench::measure_kernels(device, Duration::from_secs_f64(args.seconds), simulated)
                .map_err(|why| format!("strata bench kernels --device {device}: {why}"))
        };
        if device == Device::CudaSim {
            let (rows, records) = super::sim_report::recording(measure)?;
            repetitions.push(rows);
            sim_records = records;
        } else {
            repetitions.push(measure()?);
        }
    }
    let rows = median_rows(&repetitions);
    let on = match strata::kernels::cuda::runtime::CudaDevice::open(device) {
        Ok(cuda) => format!("{cuda:?}"),
        Err(_) => format!("cpu, {} threads", rayon::current_num_threads()),
    };
    println!(
        "strata bench kernels on {on}: median of {} repetitions, each the best of calls over {:.2} s",
        args.repeat, args.seconds
    );
    if simulated {
        println!(
            "(the virtual device runs the CUDA kernels on the CPU, with small problems: the \
             times show that every path runs, not how fast a GPU is)"
        );
    }
    println!(
        "{:<38} {:<30} {:>10} {:>10} {:>9}",
        "op", "CUDA kernels", "ms", "GFLOP/s", "GB/s"
    );
    for row in &rows {
        println!(
            "{:<38} {:<30} {:>10.3} {:>10} {:>9.1}",
            row.label,
            row.kernels,
            row.seconds * 1e3,
            row.gflops().map_or("-".into(), |g| format!("{g:.1}")),
            row.gbytes_per_second()
        );
    }
    if device == Device::CudaSim {
        println!("\nwhat each kernel did on the virtual device (first launch of each shape):");
        super::sim_report::print_table(&sim_records);
        // The record of the virtual device holds its counters, not the interpreter's times.
        if let Some(path) = &args.record {
            let rows = super::sim_report::record_rows(&sim_records, "");
            return super::sim_report::save_record("sim-kernels", provenance, rows, path);
        }
    }
    if let Some(path) = &args.record {
        let record = kernels_record(provenance, &repetitions, args.seconds, &on);
        record.save(path)?;
        println!("record: {}", path.display());
    }
    Ok(())
}

/// Each row of the first repetition with its median time over all repetitions.
fn median_rows(repetitions: &[Vec<strata::bench::KernelRow>]) -> Vec<strata::bench::KernelRow> {
    use strata::records::Samples;
    let mut rows = repetitions[0].clone();
    for (i, row) in rows.iter_mut().enumerate() {
        row.seconds =
            Samples::new("s", repetitions.iter().map(|r| r[i].seconds).collect()).median();
    }
    rows
}

fn kernels_record(
    provenance: strata::records::Provenance,
    repetitions: &[Vec<strata::bench::KernelRow>],
    seconds: f64,
    on: &str,
) -> strata::records::BenchRecord {
    use std::collections::BTreeMap;
    use strata::records::{BenchRecord, BenchRow, Samples};
    let rows = repetitions[0]
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut facts = BTreeMap::from([
                ("kernels".to_string(), row.kernels.to_string()),
                ("bytes".to_string(), row.bytes.to_string()),
            ]);
            if let Some(flops) = row.flops {
                facts.insert("flops".into(), flops.to_string());
            }
            let ms = repetitions.iter().map(|r| r[i].seconds * 1e3).collect();
            BenchRow {
                label: row.label.clone(),
                facts,
                series: BTreeMap::from([("ms".to_string(), Samples::new("ms", ms))]),
            }
        })
        .collect();
    BenchRecord {
        kind: "kernels".into(),
        method: format!(
            "the best of calls over {seconds} s on {on}, through tensors as training calls them"
        ),
        provenance,
        versions: BTreeMap::new(),
        rows,
    }
}

fn bench_layers(args: &Args) -> Result<(), String> {
    use strata::profile::{measured_peak_gflops, profile_model};
    use strata_models::zoo::find;
    if args.batch_size == Some(0) {
        return Err("--batch-size must be at least 1".into());
    }
    let budget = Duration::from_secs_f64(args.seconds.max(0.01));
    let peak = measured_peak_gflops(budget);
    println!(
        "strata bench layers: one training step, {} threads; peak = best 1024³ GEMM = {peak:.1} GFLOP/s",
        rayon::current_num_threads()
    );
    let ms = |s: f64| s * 1e3;
    for name in model_names(args) {
        let entry = find(&name)?;
        let batch = args.batch_size.unwrap_or(entry.recipe.batch_size);
        let profile = profile_model(&entry, batch, budget);
        println!("\n{name}, batch {batch}");
        println!(
            "{:<12} {:<40} {:>17} {:>9} {:>9} {:>9} {:>9} {:>6}",
            "layer", "", "output", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "% peak"
        );
        let mut total = 0.0;
        for l in &profile.layers {
            let rate = |flops: Option<f64>, s: f64| flops.filter(|_| s > 0.0).map(|f| f / s / 1e9);
            let (fwd, bwd) = (
                rate(l.forward_flops, l.forward_seconds),
                rate(l.backward_flops, l.backward_seconds),
            );
            let seconds = l.forward_seconds + l.backward_seconds;
            let all_flops = l.forward_flops.zip(l.backward_flops).map(|(f, b)| f + b);
            let share = rate(all_flops, seconds).map(|r| 100.0 * r / peak);
            let show = |v: Option<f64>, digits: usize| {
                v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
            };
            let mut description = l.description.clone();
            description.truncate(40);
            println!(
                "{:<12} {:<40} {:>17} {:>9.3} {:>9.3} {:>9} {:>9} {:>6}",
                l.name,
                description,
                format!("{:?}", l.output_shape),
                ms(l.forward_seconds),
                ms(l.backward_seconds),
                show(fwd, 1),
                show(bwd, 1),
                show(share, 0)
            );
            total += seconds;
        }
        println!(
            "{:<53} {:>17} {:>9.3}",
            "loss, forward + backward",
            "",
            ms(profile.loss_seconds)
        );
        println!(
            "{:<53} {:>17} {:>9.3}",
            "optimizer step",
            "",
            ms(profile.optimizer_seconds)
        );
        total += profile.loss_seconds + profile.optimizer_seconds;
        println!(
            "sum of the parts {:.3} ms; a whole training step measured in one {:.3} ms",
            ms(total),
            ms(profile.step_seconds)
        );
    }
    Ok(())
}

fn bench_train(args: &Args) -> Result<(), String> {
    use strata::datasets::{load, DatasetChoice};
    use strata_models::train::{evaluate, Silent, TrainConfig, Trainer};
    use strata_models::zoo::{find, zoo, DataKind};
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    use std::collections::BTreeMap;
    use strata::records::Samples;
    let provenance = strata::records::Provenance::now();
    let mut rows = Vec::new();
    let device = strata::device::resolve(&args.device)?;
    let names: Vec<String> = if args.models.is_empty() {
        zoo()
            .into_iter()
            .filter(|e| e.recipe.data != DataKind::Cifar10)
            .map(|e| e.name.to_string())
            .collect()
    } else {
        args.models.clone()
    };
    println!(
        "strata bench train on {device}: recipe batch size, {} threads, mean of {} epoch(s)",
        rayon::current_num_threads(),
        args.epochs
    );
    println!(
        "{:<15} {:>6} {:>12} {:>8} {:>12} {:>10}",
        "model", "batch", "train (s)", "epochs", "test pass (s)", "img/s"
    );
    for name in &names {
        let entry = find(name)?;
        let (train, test) = load(&entry, DatasetChoice::default_for(&entry), &args.data, 0)?;
        let model = entry.build(0);
        strata_nn::ModuleExt::move_to(&model, device)
            .map_err(|e| format!("moving {name} to {device}: {e}"))?;
        let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
        // dnn3's epochs are single full batches: its whole 1,000-epoch recipe is one row.
        let repeat = if entry.recipe.data == DataKind::Dnn3 {
            1000
        } else {
            1
        };
        config.epochs = args.epochs * repeat;
        let mut trainer = Trainer::new(&model, config.clone());
        if let Some(degrees) = entry.recipe.rotation_degrees {
            let (mean, std) = entry.recipe.normalization.mean_std();
            let fill = -mean / std;
            trainer.augment = Some(Box::new(move |x, g, place| {
                strata_models::data::random_rotation_of_rows(
                    x,
                    degrees,
                    fill,
                    g,
                    place.rows.clone(),
                    place.global,
                )
            }));
        }
        let reports = trainer
            .run(train.as_ref(), test.as_ref(), &mut Silent)
            .map_err(|e| e.to_string())?;
        // One sample per timed epoch (for dnn3, per 1,000 of its full-batch epochs).
        let samples: Vec<f64> = reports
            .chunks(repeat)
            .map(|chunk| chunk.iter().map(|r| r.train_seconds).sum())
            .collect();
        let train_seconds = samples.iter().sum::<f64>() / args.epochs as f64;
        let start = std::time::Instant::now();
        evaluate(
            &model,
            test.as_ref(),
            entry.recipe.loss,
            config.eval_batch_size,
        );
        let test_seconds = start.elapsed().as_secs_f64();
        println!(
            "{:<15} {:>6} {:>12.2} {:>8} {:>12.2} {:>10.0}",
            entry.name,
            config.batch_size,
            train_seconds,
            repeat,
            test_seconds,
            (train.len() * repeat) as f64 / train_seconds
        );
        rows.push(strata::records::BenchRow {
            label: entry.name.to_string(),
            facts: BTreeMap::from([
                ("batch".to_string(), config.batch_size.to_string()),
                ("epochs per value".to_string(), repeat.to_string()),
            ]),
            series: BTreeMap::from([
                ("strata".to_string(), Samples::new("s", samples)),
                (
                    "test pass".to_string(),
                    Samples::new("s", vec![test_seconds]),
                ),
            ]),
        });
    }
    if let Some(path) = &args.record {
        let record = strata::records::BenchRecord {
            kind: "train".into(),
            method: "one training epoch with the recipe's batch size (dnn3: its 1,000 \
                     full-batch epochs), data loaded beforehand"
                .into(),
            provenance,
            versions: BTreeMap::new(),
            rows,
        };
        record.save(path)?;
        println!("record: {}", path.display());
    }
    Ok(())
}

/// The CUDA GEMM ladder on one GPU, then the GEMM on f16 and bf16 operands (f32 accumulation):
/// GFLOP/s per kernel and as a fraction of the fastest.
fn bench_gemm_cuda(args: &Args, ordinal: usize) -> Result<(), String> {
    use std::time::Instant;
    use strata::kernels::cuda::gpu::{GemmKernel, Gpu};
    use strata::kernels::half_precision::HalfFormat;
    let gpu = Gpu::open(ordinal).map_err(|reason| {
        format!("strata bench gemm --device cuda:{ordinal}: no usable GPU: {reason}")
    })?;
    println!(
        "strata bench gemm on {gpu:?}: C = A·B, row-major, C in f32; GFLOP/s, best of launches over {:.1} s",
        args.seconds
    );
    let halves = [
        ("hgemm_f16", HalfFormat::F16),
        ("hgemm_bf16", HalfFormat::Bf16),
    ];
    print!("{:<12}", "size");
    for name in GemmKernel::LADDER
        .map(GemmKernel::name)
        .iter()
        .chain(&halves.map(|h| h.0))
    {
        print!(" {:>24}", name);
    }
    println!();
    // Best time of `launch` over the time budget, after one untimed launch (which compiles
    // and loads the module).
    let best_seconds = |launch: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        launch()?;
        gpu.synchronize()?;
        let budget = Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        let mut best = f64::INFINITY;
        while start.elapsed() < budget || best.is_infinite() {
            let t = Instant::now();
            launch()?;
            gpu.synchronize()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    for &size in &args.sizes {
        let (m, n, k) = (size, size, size);
        let mut g = strata::tensor::Generator::seed(0);
        let a = strata::tensor::Tensor::uniform(&[m, k], -1.0, 1.0, &mut g).to_vec();
        let b = strata::tensor::Tensor::uniform(&[k, n], -1.0, 1.0, &mut g).to_vec();
        let (da, db) = (gpu.upload(&a)?, gpu.upload(&b)?);
        let mut dc = gpu.zeros(m * n)?;
        let flops = 2.0 * (m * n * k) as f64;
        let mut rates = Vec::new();
        for kernel in GemmKernel::LADDER {
            let seconds = best_seconds(&mut || gpu.gemm(kernel, (m, n, k), &da, &db, &mut dc))?;
            rates.push(flops / seconds / 1e9);
        }
        for (_, format) in halves {
            let (ha, hb) = (
                gpu.upload_half(&format.narrow(&a))?,
                gpu.upload_half(&format.narrow(&b))?,
            );
            let seconds =
                best_seconds(&mut || gpu.gemm_half(format, (m, n, k), &ha, &hb, &mut dc))?;
            rates.push(flops / seconds / 1e9);
        }
        let fastest = rates.iter().cloned().fold(0.0, f64::max);
        print!("{:<12}", format!("square {size}"));
        for rate in &rates {
            print!(" {:>14.1} ({:>5.1} %)", rate, 100.0 * rate / fastest);
        }
        println!();
    }
    Ok(())
}

fn bench_gemm(args: &Args) -> Result<(), String> {
    if args.sizes.contains(&0) {
        return Err("--sizes needs positive sizes, e.g. --sizes 256,512".into());
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(format!(
            "--seconds {}: must be a positive number",
            args.seconds
        ));
    }
    let device = args.device.trim().to_ascii_lowercase();
    if device == "cuda-sim" {
        // Interpreted: small sizes unless asked (256³ is about ten seconds per rung).
        let sizes: Vec<usize> = if args.sizes == [64, 128, 256, 512, 1024, 2048] {
            vec![64, 128, 256]
        } else {
            args.sizes.clone()
        };
        return super::sim_report::gemm_ladder(&sizes, args.record.as_deref());
    }
    if let Some(rest) = device.strip_prefix("cuda") {
        let ordinal = match rest.strip_prefix(':') {
            None if rest.is_empty() => 0,
            Some(n) => n
                .parse()
                .map_err(|_| format!("--device {}: expected cuda or cuda:N", args.device))?,
            None => return Err(format!("--device {}: expected cuda or cuda:N", args.device)),
        };
        return bench_gemm_cuda(args, ordinal);
    }
    if device != "cpu" {
        return Err(format!(
            "--device {}: strata bench gemm runs on cpu, cuda or cuda:N",
            args.device
        ));
    }
    let threads = rayon::current_num_threads();
    let budget = Duration::from_secs_f64(args.seconds);
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| format!("cannot build a one-thread pool: {e}"))?;
    println!(
        "strata bench gemm: C = A·B, f32, row-major; micro-kernel {}; GFLOP/s, best of runs over {:.1} s",
        selected_kernel(),
        args.seconds
    );
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>9} {:>10} {:>10}",
        "shape",
        "m",
        "n",
        "k",
        "naive",
        "1 thread",
        format!("{threads} threads")
    );
    for p in gemm_problems(&args.sizes) {
        if args.only.as_deref().is_some_and(|o| !p.label.contains(o)) {
            continue;
        }
        let (a, b) = p.inputs();
        let row = measure_gemm(&p, &a, &b, budget, &one_thread);
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>9} {:>10.1} {:>10.1}",
            p.label,
            p.m,
            p.n,
            p.k,
            row.naive.map_or("-".into(), |g| format!("{g:.2}")),
            row.one_thread,
            row.all_threads
        );
    }
    println!("GFLOP/s = 2·m·n·k / seconds / 1e9. `make bench` adds the matrixmultiply crate as a yardstick.");
    Ok(())
}
