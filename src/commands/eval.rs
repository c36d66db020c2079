//! `strata eval MODEL --weights FILE`: test loss and accuracy of saved weights.

use std::path::PathBuf;
use std::time::Instant;
use strata::datasets::{self, DatasetChoice};
use strata_models::train::evaluate;
use strata_models::zoo::find;
use strata_nn::checkpoint::load_module;
use strata_nn::ModuleExt;

#[derive(clap::Args)]
pub struct Args {
    /// Network the weights belong to.
    pub model: String,
    /// A safetensors file written by `strata train` (best.safetensors or last.safetensors) or
    /// by PyTorch's safetensors.torch.save_file(model.state_dict(), ...).
    #[arg(long)]
    pub weights: PathBuf,
    /// Dataset [default: the one the network was published with].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetChoice>,
    /// Folder holding the datasets.
    #[arg(long, default_value = "datasets")]
    pub data: PathBuf,
    /// Where to run: auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N, or
    /// cuda-sim (the virtual CUDA device: the kernels' PTX interpreted with memcheck,
    /// racecheck, initcheck and synccheck; slow, for checking the CUDA path).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Examples per evaluation batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

pub fn run(args: &Args) -> Result<(), String> {
    let entry = find(&args.model)?;
    let device = strata::device::resolve(&args.device)?;
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let model = entry.build(0);
    super::train::check_model_of(&args.weights, entry.name)?;
    load_module(&model, &args.weights).map_err(|e| e.to_string())?;
    model
        .move_to(device)
        .map_err(|e| format!("moving {} to {device}: {e}", entry.name))?;
    let choice = args
        .dataset
        .unwrap_or_else(|| DatasetChoice::default_for(&entry));
    let (_, test) = datasets::load(&entry, choice, &args.data, 0)?;
    let start = Instant::now();
    let (loss, accuracy) = evaluate(&model, test.as_ref(), entry.recipe.loss, args.batch_size);
    println!(
        "{} on {} test set ({} examples): loss {loss:.4}, accuracy {accuracy:.2}% ({:.2} s)",
        entry.name,
        choice.name(),
        test.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
