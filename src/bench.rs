//! Measuring kernels: the timing harness and the GEMM problems behind `strata bench gemm` and
//! `make bench`. Timings warm up first, then repeat until a time budget has passed, and keep
//! the best run: other work on the machine only ever makes a run slower.

use std::time::{Duration, Instant};
use strata_kernels::cuda::runtime::CudaDevice;
use strata_kernels::gemm::{gemm, gemm_naive};
use strata_nn::optim::{Adam, Optimizer, Sgd, SgdConfig};
use strata_tensor::ops::DenseStage;
use strata_tensor::{DType, Generator, Tensor};

/// Seconds of the fastest of the repetitions of `f` run within about `budget`, after one
/// warm-up call. At least three repetitions are timed.
pub fn best_seconds(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// One GEMM `C[m,n] = A[m,k]·B[k,n]`, row-major and contiguous.
#[derive(Clone, Debug)]
pub struct GemmProblem {
    /// Name shown in the results table, e.g. `square 512` or `lenet5 conv2 x100`.
    pub label: String,
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// The shared (reduction) dimension: columns of `A`, rows of `B`.
    pub k: usize,
}

impl GemmProblem {
    /// Floating-point operations of one product: `2·m·n·k` (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Random operands A and B, fixed by the problem's size.
    pub fn inputs(&self) -> (Vec<f32>, Vec<f32>) {
        let mut g = Generator::seed((self.m * 31 + self.n * 7 + self.k) as u64);
        let a = (0..self.m * self.k).map(|_| g.uniform() - 0.5).collect();
        let b = (0..self.k * self.n).map(|_| g.uniform() - 0.5).collect();
        (a, b)
    }
}

/// Squares of the given sizes, then the forward convolutions of LeNet-5 and CNN3L on MNIST as
/// GEMMs (weight `[cout, cin·k·k]` times im2col `[cin·k·k, oh·ow]`), for one image and for a
/// batch of 100 laid side by side.
pub fn gemm_problems(square_sizes: &[usize]) -> Vec<GemmProblem> {
    let mut problems: Vec<GemmProblem> = square_sizes
        .iter()
        .map(|&s| GemmProblem {
            label: format!("square {s}"),
            m: s,
            n: s,
            k: s,
        })
        .collect();
    let convs = [
        ("lenet5 conv1", 6, 25, 784),
        ("lenet5 conv2", 16, 150, 100),
        ("cnn3l conv1", 16, 25, 784),
        ("cnn3l conv2", 32, 400, 196),
    ];
    for batch in [1, 100] {
        for (name, m, k, n) in convs {
            problems.push(GemmProblem {
                label: format!("{name} x{batch}"),
                m,
                n: n * batch,
                k,
            });
        }
    }
    problems
}

/// Problems above this many flops skip the naive loop, which would dominate the run.
pub const NAIVE_FLOP_LIMIT: f64 = 2.0 * 512.0 * 512.0 * 512.0;

/// GFLOP/s of strata's GEMM on all threads, on one thread, and of the naive loop.
pub struct GemmRow {
    /// GFLOP/s of strata's GEMM on the global rayon pool.
    pub all_threads: f64,
    /// GFLOP/s of strata's GEMM on a one-thread pool.
    pub one_thread: f64,
    /// GFLOP/s of the naive triple loop; `None` above [`NAIVE_FLOP_LIMIT`].
    pub naive: Option<f64>,
}

/// Measures one problem on the given operands.
pub fn measure_gemm(
    p: &GemmProblem,
    a: &[f32],
    b: &[f32],
    budget: Duration,
    one_thread: &rayon::ThreadPool,
) -> GemmRow {
    let (m, n, k) = (p.m, p.n, p.k);
    let mut c = vec![0.0f32; m * n];
    let gflops = |seconds: f64| p.flops() / seconds / 1e9;
    let mut strata = || gemm(m, n, k, 1.0, a, k, 1, b, n, 1, 0.0, &mut c, n, 1);
    let all_threads = gflops(best_seconds(budget, &mut strata));
    let one = gflops(one_thread.install(|| best_seconds(budget, &mut strata)));
    let naive = (p.flops() <= NAIVE_FLOP_LIMIT).then(|| {
        gflops(best_seconds(budget, || {
            gemm_naive(m, n, k, 1.0, a, k, 1, b, n, 1, 0.0, &mut c, n, 1)
        }))
    });
    GemmRow {
        all_threads,
        one_thread: one,
        naive,
    }
}

/// One row of `strata bench kernels`: an op on one device, its best time, and the rates.
#[derive(Clone, Debug)]
pub struct KernelRow {
    /// The op and its shape, e.g. `conv2d fwd [100,6,14,14]*[16,6,5,5]`.
    pub label: String,
    /// The kernels it launches on a CUDA device.
    pub kernels: &'static str,
    /// Best seconds per call.
    pub seconds: f64,
    /// Floating-point operations per call, when the op is arithmetic-bound enough to count.
    pub flops: Option<f64>,
    /// Bytes a call must read and write at least (each input once, each output once).
    pub bytes: f64,
}

impl KernelRow {
    /// GFLOP/s, when the op counts flops.
    pub fn gflops(&self) -> Option<f64> {
        self.flops.map(|f| f / self.seconds / 1e9)
    }
    /// GB/s of the minimum traffic.
    pub fn gbytes_per_second(&self) -> f64 {
        self.bytes / self.seconds / 1e9
    }
}

/// Times the ops behind every kernel family on `device` (tensor-level calls, so what a
/// training step pays, launch overhead included), each for about `budget`. `small` shrinks
/// every problem (for the virtual device, whose timings only show that each path runs).
pub fn measure_kernels(
    device: strata_tensor::Device,
    budget: Duration,
    small: bool,
) -> Result<Vec<KernelRow>, String> {
    let cuda = match device {
        strata_tensor::Device::Cpu => None,
        _ => Some(CudaDevice::open(device)?),
    };
    let _guard = strata_tensor::no_grad();
    let mut bench = KernelBench {
        device,
        cuda,
        budget,
        small,
        g: Generator::seed(0),
        rows: Vec::new(),
    };
    let x = bench.elementwise()?;
    bench.matmul(&x)?;
    bench.images()?;
    bench.dense_chain()?;
    bench.optimizer_steps()?;
    Ok(bench.rows)
}

/// Bytes per f32.
const F: f64 = 4.0;

/// The state `measure_kernels` shares between its op families: where and how long to time,
/// the generator every input is drawn from in turn, and the rows so far.
struct KernelBench {
    device: strata_tensor::Device,
    cuda: Option<std::sync::Arc<CudaDevice>>,
    budget: Duration,
    small: bool,
    g: Generator,
    rows: Vec<KernelRow>,
}

impl KernelBench {
    /// Uniform values in [-1, 1) on the device.
    fn make(&mut self, shape: &[usize]) -> Result<Tensor, String> {
        Tensor::uniform(shape, -1.0, 1.0, &mut self.g)
            .to(self.device)
            .map_err(|e| e.to_string())
    }

    /// `big`, or `little` for a small run.
    fn scale(&self, big: usize, little: usize) -> usize {
        if self.small {
            little
        } else {
            big
        }
    }

    /// Times `f` (synchronising a device after each call) and adds its row.
    fn time(
        &mut self,
        label: String,
        kernels: &'static str,
        flops: Option<f64>,
        bytes: f64,
        f: &mut dyn FnMut() -> Tensor,
    ) {
        let cuda = &self.cuda;
        let seconds = best_seconds(self.budget, || {
            std::hint::black_box(f());
            if let Some(cuda) = cuda {
                cuda.synchronize()
                    .unwrap_or_else(|e| panic!("bench: synchronize: {e}"));
            }
        });
        self.rows.push(KernelRow {
            label,
            kernels,
            seconds,
            flops,
            bytes,
        });
    }

    /// Elementwise maps, a broadcast bias add and a row sum; returns the square matrix the
    /// matmuls use, drawn here to keep the generator's order.
    fn elementwise(&mut self) -> Result<(Tensor, Tensor), String> {
        let n = self.scale(1 << 24, 1 << 12);
        let (a, b) = (self.make(&[n])?, self.make(&[n])?);
        self.time(
            format!("add [{n}]"),
            "binary_contiguous",
            Some(n as f64),
            3.0 * F * n as f64,
            &mut || a.add(&b),
        );
        self.time(
            format!("relu [{n}]"),
            "unary_contiguous",
            Some(n as f64),
            2.0 * F * n as f64,
            &mut || a.relu(),
        );
        let (rows, cols) = (self.scale(4096, 64), self.scale(4096, 64));
        let m = self.make(&[rows, cols])?;
        let bias = self.make(&[cols])?;
        self.time(
            format!("add bias [{rows},{cols}]+[{cols}]"),
            "binary_strided",
            Some((rows * cols) as f64),
            2.0 * F * (rows * cols) as f64,
            &mut || m.add(&bias),
        );
        self.time(
            format!("sum rows [{rows},{cols}]"),
            "reduce_sum_rows",
            Some((rows * cols) as f64),
            F * (rows * cols) as f64,
            &mut || m.sum(&[1], false),
        );
        let s = self.scale(1024, 64);
        Ok((self.make(&[s, s])?, self.make(&[s, s])?))
    }

    /// Square matrix products in f32, f16 and bf16, and the f16 conversion.
    fn matmul(&mut self, (x, y): &(Tensor, Tensor)) -> Result<(), String> {
        let s = x.shape()[0];
        let gemm_flops = 2.0 * (s * s * s) as f64;
        self.time(
            format!("matmul {s}x{s}x{s}"),
            "sgemm_register_blocked",
            Some(gemm_flops),
            3.0 * F * (s * s) as f64,
            &mut || x.matmul(y),
        );
        for dtype in [DType::F16, DType::BF16] {
            let (xh, yh) = (x.to_dtype(dtype), y.to_dtype(dtype));
            let kernel = if dtype == DType::F16 {
                "hgemm_f16"
            } else {
                "hgemm_bf16"
            };
            self.time(
                format!("matmul {dtype} {s}x{s}x{s}"),
                kernel,
                Some(gemm_flops),
                (2.0 * 2.0 + F) * (s * s) as f64,
                &mut || xh.matmul(&yh),
            );
        }
        self.time(
            format!("to_dtype f16 [{s},{s}]"),
            "convert_f32_to_f16",
            None,
            6.0 * (s * s) as f64,
            &mut || x.to_dtype(DType::F16),
        );
        Ok(())
    }

    /// LeNet-5's second convolution and pooling, a batch normalisation, softmax cross-entropy.
    fn images(&mut self) -> Result<(), String> {
        let batch = self.scale(100, 4);
        let (images, weight, conv_bias) = (
            self.make(&[batch, 6, 14, 14])?,
            self.make(&[16, 6, 5, 5])?,
            self.make(&[16])?,
        );
        let conv_flops = 2.0 * (batch * 16 * 10 * 10 * 6 * 25) as f64;
        self.time(
            format!("conv2d [{batch},6,14,14]*[16,6,5,5]"),
            "im2col + sgemm_batched",
            Some(conv_flops),
            F * (batch * (6 * 196 + 16 * 100)) as f64,
            &mut || images.conv2d(&weight, Some(&conv_bias), (1, 1), (0, 0)),
        );
        let planes = self.make(&[batch, 16, 10, 10])?;
        self.time(
            format!("max_pool2d 2x2 [{batch},16,10,10]"),
            "max_pool2d_forward",
            None,
            F * (batch * 16 * 125) as f64,
            &mut || planes.max_pool2d((2, 2), (2, 2), (0, 0)),
        );
        let norm = self.make(&[self.scale(128, 8), 32, 14, 14])?;
        let norm_len = norm.numel() as f64;
        self.time(
            format!("batch_norm train {:?}", norm.shape()),
            "batch_norm_forward_train",
            Some(5.0 * norm_len),
            2.0 * F * norm_len,
            &mut || norm.batch_norm_train(None, None, 1e-5).0,
        );
        let logits = self.make(&[self.scale(4096, 64), 10])?;
        let labels: Vec<u32> = (0..logits.shape()[0] as u32).map(|i| i % 10).collect();
        self.time(
            format!("softmax_cross_entropy {:?}", logits.shape()),
            "softmax_cross_entropy_forward",
            None,
            F * logits.numel() as f64 * 2.0,
            &mut || logits.softmax_cross_entropy(&labels),
        );
        Ok(())
    }

    /// dnn3's network as one chain: the fused kernel on the CPU, a GEMM, bias add and ReLU per
    /// layer on a device.
    fn dense_chain(&mut self) -> Result<(), String> {
        let chain_rows = self.scale(7000, 64);
        let chain_input = self.make(&[chain_rows, 3])?;
        let widths = [3usize, 5, 5, 5, 3];
        let mut chain_parameters = Vec::new();
        for w in widths.windows(2) {
            chain_parameters.push((self.make(&[w[1], w[0]])?, self.make(&[w[1]])?));
        }
        let chain_flops: usize = widths.windows(2).map(|w| 2 * w[0] * w[1]).sum();
        self.time(
            format!("dense_chain 3-5-5-5-3 [{chain_rows},3]"),
            "sgemm + bias + relu per layer",
            Some((chain_rows * chain_flops) as f64),
            F * (chain_rows * (widths[0] + widths[4])) as f64,
            &mut || {
                let stages: Vec<DenseStage> = chain_parameters
                    .iter()
                    .enumerate()
                    .map(|(l, (weight, bias))| DenseStage {
                        weight,
                        bias: Some(bias),
                        relu: l + 1 < chain_parameters.len(),
                    })
                    .collect();
                chain_input.dense_chain(&stages)
            },
        );
        Ok(())
    }

    /// The fused optimizer steps: parameter, gradient and state read, parameter and state
    /// written.
    fn optimizer_steps(&mut self) -> Result<(), String> {
        let count = self.scale(1 << 22, 1 << 12);
        let with_grad = |t: Tensor, grad: Tensor| {
            let p = t.set_requires_grad(true);
            p.set_grad(Some(grad));
            p
        };
        let p = with_grad(self.make(&[count])?, self.make(&[count])?);
        let config = SgdConfig {
            lr: 1e-3,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        };
        let mut sgd = Sgd::with_config(vec![("p".into(), p.clone())], config);
        self.time(
            format!("sgd momentum step [{count}]"),
            "sgd_step",
            Some(4.0 * count as f64),
            5.0 * F * count as f64,
            &mut || {
                sgd.step();
                p.clone()
            },
        );
        let q = with_grad(self.make(&[count])?, self.make(&[count])?);
        let mut adam = Adam::new(vec![("q".into(), q.clone())], 1e-3);
        self.time(
            format!("adam step [{count}]"),
            "adam_step",
            Some(12.0 * count as f64),
            7.0 * F * count as f64,
            &mut || {
                adam.step();
                q.clone()
            },
        );
        Ok(())
    }
}
