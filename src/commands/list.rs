//! `strata list`: the zoo with recipes and published results.

use strata_models::zoo::{zoo, OptimizerKind};

pub fn run() -> Result<(), String> {
    println!(
        "{:<15} {:>10} {:>6} {:<8} {:<22} {:>6} {:>6} {:>9}",
        "model", "params", "layers", "data", "optimizer", "batch", "epochs", "published"
    );
    for e in zoo() {
        let r = &e.recipe;
        let optimizer = match r.optimizer {
            OptimizerKind::Sgd { momentum } if momentum > 0.0 => {
                format!("SGD lr {} m {}", r.lr, momentum)
            }
            OptimizerKind::Sgd { .. } => format!("SGD lr {}", r.lr),
            OptimizerKind::Adam => format!("Adam lr {}", r.lr),
        };
        println!(
            "{:<15} {:>10} {:>6} {:<8} {:<22} {:>6} {:>6} {:>8.2}%",
            e.name,
            e.parameters,
            e.weight_layers,
            format!("{:?}", r.data).to_lowercase(),
            optimizer,
            r.batch_size,
            r.epochs,
            r.published_accuracy
        );
    }
    let notes: Vec<_> = zoo()
        .into_iter()
        .filter_map(|e| Some((e.name, e.note?)))
        .collect();
    if !notes.is_empty() {
        println!("\nwhere a source's text and its code disagree (the zoo follows the code):");
        for (name, note) in notes {
            println!("  {name}: {note}");
        }
    }
    Ok(())
}
