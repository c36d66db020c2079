//! `strata gradcheck`: every op of the catalogue through the numerical gradient check.

use strata::tensor::gradcheck::{gradcheck, op_catalogue, GradcheckOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Seed of the random inputs and projection weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Half-width ε of the central difference.
    #[arg(long, default_value_t = 1e-2)]
    eps: f64,
    /// Only ops whose name contains this text.
    #[arg(long)]
    only: Option<String>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let options = GradcheckOptions {
        eps: args.eps,
        seed: args.seed,
        ..GradcheckOptions::default()
    };
    let cases: Vec<_> = op_catalogue(args.seed)
        .into_iter()
        .filter(|c| args.only.as_deref().is_none_or(|o| c.name.contains(o)))
        .collect();
    if cases.is_empty() {
        return Err(format!(
            "no op matches '{}'",
            args.only.as_deref().unwrap_or_default()
        ));
    }
    println!(
        "{:<40} {:>9} {:>12}  result",
        "op", "elements", "max |error|"
    );
    let mut failed = 0;
    for case in &cases {
        match gradcheck(&case.function, &case.inputs, &options) {
            Ok(r) => println!(
                "{:<40} {:>9} {:>12.2e}  ok",
                case.name, r.elements_checked, r.max_abs_error
            ),
            Err(e) => {
                failed += 1;
                println!("{:<40} {:>9} {:>12}  FAILED: {e}", case.name, "-", "-");
            }
        }
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        Err(format!("{failed} op(s) failed the gradient check"))
    } else {
        Ok(())
    }
}
