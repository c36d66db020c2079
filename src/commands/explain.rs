//! `strata explain OP`: an op worked through step by step on a small input, its gradients
//! checked against autograd.

use strata::explain::{explain, Op, Options};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    strata explain conv2d                       the course example: 4×4 input, 3×3 kernel → [[15,16],[6,15]]\n  \
    strata explain conv2d --size 5 --stride 2 --padding 1\n  \
    strata explain max_pool2d\n  \
    strata explain softmax-cross-entropy --batch 3 --inputs 4\n  \
    strata explain linear --seed 7")]
pub struct Args {
    /// The op: conv2d, max_pool2d, avg_pool2d, matmul, softmax-cross-entropy, batch_norm or
    /// linear.
    op: String,
    /// Input height and width (conv2d, pooling). Default 4, the course example.
    #[arg(long)]
    size: Option<usize>,
    /// Kernel (window) size (conv2d: default 3; pooling: default 2).
    #[arg(long)]
    kernel: Option<usize>,
    /// Stride (conv2d: default 1; pooling: default the kernel size).
    #[arg(long)]
    stride: Option<usize>,
    /// Zero padding on each side (conv2d, pooling).
    #[arg(long, default_value_t = 0)]
    padding: usize,
    /// Rows: the batch size N (linear, softmax-cross-entropy, batch_norm) or M of [M,K]·[K,N].
    #[arg(long)]
    batch: Option<usize>,
    /// Input columns: in features (linear), classes (softmax-cross-entropy), channels
    /// (batch_norm) or K of [M,K]·[K,N].
    #[arg(long)]
    inputs: Option<usize>,
    /// Out features (linear) or N of [M,K]·[K,N].
    #[arg(long)]
    outputs: Option<usize>,
    /// Draw the example's numbers at random (small integers) from this seed instead of using
    /// the course example.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let op = Op::parse(&args.op)?;
    let options = Options {
        size: args.size,
        kernel: args.kernel,
        stride: args.stride,
        padding: args.padding,
        batch: args.batch,
        inputs: args.inputs,
        outputs: args.outputs,
        seed: args.seed,
    };
    let explanation = explain(op, &options)?;
    print!("{}", explanation.text);
    if explanation.agrees() {
        println!("\nEvery number above matches strata's own computation.");
        Ok(())
    } else {
        let failed: Vec<&str> = explanation
            .checks
            .iter()
            .filter(|c| !c.agrees())
            .map(|c| c.name.as_str())
            .collect();
        Err(format!(
            "explain {}: strata disagrees with the worked example on {}",
            op.name(),
            failed.join(", ")
        ))
    }
}
