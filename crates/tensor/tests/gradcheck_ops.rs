//! Every differentiable op against central differences, on random shapes, including
//! transposed, sliced and broadcast inputs (the cases live in `gradcheck::op_catalogue`, which
//! `strata gradcheck` runs too). The list below names every op that must be covered: an op
//! missing from the catalogue fails here by name.

use approx::assert_abs_diff_eq;
use strata_tensor::gradcheck::{gradcheck, op_catalogue, GradcheckOptions};
use strata_tensor::Tensor;

const DIFFERENTIABLE_OPS: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "exp",
    "log",
    "powf",
    "sqrt",
    "relu",
    "tanh",
    "sigmoid",
    "add_scalar",
    "mul_scalar",
    "matmul",
    "sum",
    "sum_all",
    "mean",
    "mean_all",
    "max",
    "reshape",
    "permute",
    "transpose",
    "narrow",
    "expand",
    "squeeze",
    "unsqueeze",
    "contiguous",
    "flatten_from",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "nll_loss",
    "mse_loss",
    "dense_chain",
    "batch_norm",
    "dropout",
];

#[test]
fn every_op_is_in_the_catalogue() {
    let cases = op_catalogue(7);
    let base = |name: &str| name.split(" (").next().unwrap().to_string();
    for op in DIFFERENTIABLE_OPS {
        assert!(
            cases.iter().any(|c| base(c.name) == *op),
            "op '{op}' has no gradcheck case"
        );
    }
    assert!(cases.iter().any(|c| c.name.contains("transposed")));
    assert!(cases.iter().any(|c| c.name.contains("sliced")));
    assert!(cases.iter().any(|c| c.name.contains("broadcast")));
}

#[test]
fn every_op_matches_central_differences() {
    let options = GradcheckOptions::default();
    let mut failures = Vec::new();
    let cases = op_catalogue(7);
    for case in &cases {
        match gradcheck(&case.function, &case.inputs, &options) {
            Ok(report) => {
                assert!(
                    report.elements_checked > 0,
                    "{}: nothing was checked",
                    case.name
                );
                println!(
                    "{:40} ok ({} elements, max error {:.2e})",
                    case.name, report.elements_checked, report.max_abs_error
                );
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "gradcheck failures:\n{}",
        failures.join("\n")
    );
    println!("{} op cases checked", cases.len());
}

#[test]
fn catalogue_passes_with_other_random_inputs() {
    for seed in [1, 2] {
        for case in op_catalogue(seed) {
            if let Err(e) = gradcheck(&case.function, &case.inputs, &GradcheckOptions::default()) {
                panic!("seed {seed}, {}: {e}", case.name);
            }
        }
    }
}

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    // x² with a gradient that is deliberately off: (x·x) built as x·detach(x) loses one term.
    let x = Tensor::from_vec(vec![0.7, -1.2, 0.4], &[3]).set_requires_grad(true);
    let result = gradcheck(
        |t| t[0].mul(&t[0].detach()),
        &[x],
        &GradcheckOptions::default(),
    );
    let failure = result.expect_err("a half-size gradient must be caught");
    assert_abs_diff_eq!(failure.analytic * 2.0, failure.numeric, epsilon = 1e-2);
}
