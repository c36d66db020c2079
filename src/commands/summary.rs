//! `strata summary MODEL`: layers, output shapes and parameter counts.

use strata_models::zoo::find;
use strata_nn::summary;

#[derive(clap::Args)]
pub struct Args {
    /// Network to describe (`strata list` shows them all).
    pub model: String,
    /// Batch size of the shapes shown.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

pub fn run(args: &Args) -> Result<(), String> {
    let entry = find(&args.model)?;
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let mut shape = vec![args.batch];
    shape.extend(entry.input_shape());
    println!("{}: {}", entry.name, entry.description);
    println!("{}", summary(&entry.build(0), &shape));
    Ok(())
}
