//! `strata explain`: the worked examples are right, their gradients match autograd, and the
//! command line reports bad sizes clearly.

use std::process::Command;
use strata::explain::{explain, Op, Options};

#[test]
fn conv2d_prints_the_course_example_window_by_window() {
    let conv = explain(Op::Conv2d, &Options::default()).unwrap();
    let text = &conv.text;
    // The first window, its products and its sum, as a course draws them.
    assert!(
        text.contains("= 1·2 + 2·0 + 3·1 + 0·0 + 1·1 + 2·2 + 3·1 + 0·0 + 1·2 = 15"),
        "{text}"
    );
    assert!(
        text.contains("⌊(4 + 2·0 − 3) / 1⌋ + 1 = ⌊1/1⌋ + 1 = 2"),
        "{text}"
    );
    assert!(
        text.contains("Y (2×2):\n    15  16\n     6  15\n"),
        "{text}"
    );
    assert!(conv.agrees(), "{text}");
    let names: Vec<&str> = conv.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Y", "dL/dW", "dL/dX"]);
}

#[test]
fn max_pool2d_prints_the_course_example_and_routes_gradients_to_the_maxima() {
    let pool = explain(Op::MaxPool2d, &Options::default()).unwrap();
    assert!(
        pool.text.contains("Y (2×2):\n    2  3\n    4  2\n"),
        "{}",
        pool.text
    );
    assert!(pool.text.contains("= 4 (at X[3,1])"), "{}", pool.text);
    assert!(pool.agrees(), "{}", pool.text);
}

#[test]
fn every_op_agrees_with_autograd_on_default_and_random_examples() {
    let sized = |size, kernel, stride, padding, seed| Options {
        size: Some(size),
        kernel: Some(kernel),
        stride: Some(stride),
        padding,
        seed: Some(seed),
        ..Options::default()
    };
    let shaped = |batch, inputs, outputs, seed| Options {
        batch: Some(batch),
        inputs: Some(inputs),
        outputs: Some(outputs),
        seed: Some(seed),
        ..Options::default()
    };
    let cases = [
        (Op::Conv2d, sized(5, 3, 2, 1, 1)),
        (Op::Conv2d, sized(6, 2, 3, 0, 2)),
        (Op::Conv2d, sized(7, 3, 1, 2, 3)),
        (Op::MaxPool2d, sized(5, 3, 2, 1, 4)),
        (Op::MaxPool2d, sized(6, 2, 1, 0, 5)),
        (Op::AvgPool2d, sized(5, 3, 2, 1, 6)),
        (Op::AvgPool2d, sized(4, 2, 2, 0, 7)),
        (Op::Matmul, shaped(3, 4, 5, 8)),
        (Op::Linear, shaped(4, 3, 2, 9)),
        (Op::SoftmaxCrossEntropy, shaped(3, 4, 1, 10)),
        (Op::BatchNorm, shaped(5, 3, 1, 11)),
    ];
    for op in Op::ALL {
        let default = explain(op, &Options::default()).unwrap();
        assert!(default.agrees(), "{}:\n{}", op.name(), default.text);
    }
    for (op, options) in cases {
        let explanation = explain(op, &options).unwrap();
        assert!(
            explanation.agrees(),
            "{} {options:?}:\n{}",
            op.name(),
            explanation.text
        );
    }
}

#[test]
fn sizes_that_make_no_sense_are_refused_with_the_reason() {
    let error = |op, options| explain(op, &options).unwrap_err();
    let conv = error(
        Op::Conv2d,
        Options {
            size: Some(2),
            kernel: Some(5),
            ..Options::default()
        },
    );
    assert!(conv.contains("does not fit"), "{conv}");
    let pool = error(
        Op::MaxPool2d,
        Options {
            padding: 2,
            ..Options::default()
        },
    );
    assert!(pool.contains("more than half the kernel"), "{pool}");
    let zero = error(
        Op::Matmul,
        Options {
            batch: Some(0),
            ..Options::default()
        },
    );
    assert!(zero.contains("--batch"), "{zero}");
}

fn strata(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_command_prints_the_walk_through_and_fails_clearly_on_bad_input() {
    let (ok, stdout, _) = strata(&["explain", "conv2d", "--padding", "1"]);
    assert!(ok);
    assert!(
        stdout.contains("⌊(4 + 2·1 − 3) / 1⌋ + 1 = ⌊3/1⌋ + 1 = 4"),
        "{stdout}"
    );
    assert!(stdout.contains("Every number above matches"), "{stdout}");

    let (ok, _, stderr) = strata(&["explain", "conv3d"]);
    assert!(!ok);
    assert!(stderr.contains("cannot explain 'conv3d'") && stderr.contains("batch_norm"));

    let (ok, _, stderr) = strata(&["explain", "softmax-cross-entropy", "--inputs", "1"]);
    assert!(!ok);
    assert!(stderr.contains("at least 2 classes"), "{stderr}");
}
