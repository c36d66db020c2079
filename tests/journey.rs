//! `strata journey` on a few rounds, briefly: it trains each one as `strata train` does, prints
//! the table beside the published figures, writes the table and both figures, and a second
//! invocation reuses what the first trained instead of training again.
//!
//! Needs MNIST in `datasets/mnist/` (`make data`): where it is absent the test skips with the
//! reason, except under CI=true.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use strata::kernels::test_skip::{skip, Reason};

fn journey(out: &Path, extra: &[&str]) -> std::process::Output {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "journey", "--rounds", "3,9-10", "--epochs", "2", "--device", "cpu", "--quiet",
        ])
        .args(["--limit-train", "384", "--limit-test", "200"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("strata runs")
}

#[test]
fn the_journey_trains_each_round_and_compares_it_with_the_published_one() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist/train-images-idx3-ubyte");
    if !data.is_file() {
        skip(Reason::DataAbsent(format!(
            "{} is absent (run `make data`)",
            data.display()
        )));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let first = journey(out, &[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // One row per run, with the network, its parameters and the published best beside it.
    for row in [
        "| 3 | journey_r3 | Lighter Model | 10,790 |",
        "| 9 | journey_r9 | Introducing Image Augmentation | 9,896 |",
        "| 10 | journey_final | Final | 9,896 |",
        "| 10 StepLR | journey_final | Final, with StepLR(6, 0.1) stepped | 9,896 |",
    ] {
        assert!(stdout.contains(row), "no row {row:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("| 98.87 (20) |"),
        "round 3's published best test accuracy: {stdout}"
    );
    assert!(
        stdout.contains("| 99.44 (13, 19) |"),
        "round 10's: {stdout}"
    );
    // Round 10 runs with both schedules: the StepLR run's learning rate is the recipe's.
    let stepped = strata::runs::RunResults::load(
        &out.join("journey_final-steplr-2epochs-384train-200test/results.json"),
    )
    .unwrap();
    let constant = strata::runs::RunResults::load(
        &out.join("journey_final-2epochs-384train-200test/results.json"),
    )
    .unwrap();
    assert_eq!(stepped.epochs.len(), 2);
    assert_eq!(
        stdout.matches("StepLR(step 6, gamma 0.1)").count(),
        1,
        "{stdout}"
    );
    assert!(constant.epochs.iter().all(|e| e.lr == 0.05));
    for file in [
        "journey.md",
        "journey-test-accuracy.svg",
        "journey-parameters-accuracy.svg",
    ] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            text.contains("journey_r9") || text.contains("<svg"),
            "{file}"
        );
    }
    let svg = std::fs::read_to_string(out.join("journey-test-accuracy.svg")).unwrap();
    assert!(
        svg.contains("round 9: Introducing Image Augmentation"),
        "one panel per round"
    );

    // Everything is trained: the second run reads it back.
    let start = Instant::now();
    let again = journey(out, &[]);
    let stdout_again = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success());
    assert_eq!(
        stdout_again.matches("already trained: ").count(),
        4,
        "{stdout_again}"
    );
    assert!(!stdout_again.contains("epoch  1/2"), "{stdout_again}");
    println!("second journey: {:?}", start.elapsed());
}

#[test]
fn rounds_outside_one_to_ten_are_refused() {
    for bad in ["0-3", "11", "5-2", "x"] {
        let o = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["journey", "--rounds", bad])
            .output()
            .unwrap();
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("rounds are numbers from 1 to 10"), "{bad}: {e}");
    }
}

#[test]
fn the_committed_figures_are_checked_against_the_committed_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (results, figures) = (dir.path().join("results"), dir.path().join("figures"));
    std::fs::create_dir_all(results.join("journey")).unwrap();
    for entry in std::fs::read_dir(root.join("results/journey")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            results.join("journey").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let document = dir.path().join("empty.md");
    std::fs::write(&document, "no tables\n").unwrap();
    let records = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["records", action])
            .arg("--results")
            .arg(&results)
            .arg("--figures")
            .arg(&figures)
            .arg("--documents")
            .arg(&document)
            .output()
            .unwrap()
    };
    assert!(records("tables").status.success());
    let o = records("check");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A run whose figures were not redrawn: one epoch's test accuracy moves.
    let run = results.join("journey/journey_final-mnist.json");
    let text = std::fs::read_to_string(&run).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let accuracy = &mut json["epochs"][3]["test_accuracy"];
    *accuracy = serde_json::json!(accuracy.as_f64().unwrap() - 0.5);
    std::fs::write(&run, serde_json::to_string(&json).unwrap()).unwrap();
    let o = records("check");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a stale figure passed the check");
    assert!(
        e.contains("journey-test-accuracy.svg: differs from the figure the records"),
        "{e}"
    );
}

#[test]
fn a_round_well_under_its_published_figure_asks_for_three_seeds_and_shows_their_mean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("journey")).unwrap();
    let record = std::fs::read_to_string(root.join("results/journey/journey_r3-mnist.json"))
        .expect("round 3's committed record");
    // Round 3 with every test accuracy `shift` points off, as seed `seed`.
    let write = |seed: u64, shift: f64| {
        let mut json: serde_json::Value = serde_json::from_str(&record).unwrap();
        json["seed"] = serde_json::json!(seed);
        for epoch in json["epochs"].as_array_mut().unwrap() {
            let a = epoch["test_accuracy"].as_f64().unwrap();
            epoch["test_accuracy"] = serde_json::json!(a + shift);
        }
        let name = match seed {
            0 => "journey_r3-mnist.json".to_string(),
            s => format!("journey_r3-seed{s}-mnist.json"),
        };
        std::fs::write(results.join("journey").join(name), json.to_string()).unwrap();
    };
    let document = dir.path().join("doc.md");
    let table = || {
        std::fs::write(
            &document,
            "<!-- records:journey -->\n<!-- /records:journey -->\n",
        )
        .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["records", "tables", "--documents"])
            .arg(&document)
            .arg("--results")
            .arg(&results)
            .arg("--figures")
            .arg(dir.path().join("figures"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(&document).unwrap()
    };
    // 98.74 % against the published 98.87 %: within 0.15 points, one seed is enough.
    write(0, 0.0);
    let text = table();
    assert!(
        text.contains("| 98.74 (14) |") && !text.contains("three seeds"),
        "{text}"
    );
    // 98.64 %: 0.23 under.
    write(0, -0.1);
    let text = table();
    assert!(
        text.contains("Round 3 is 0.23 points under its published best test accuracy"),
        "{text}"
    );
    write(1, 0.2);
    write(2, 0.1);
    let text = table();
    assert!(
        text.contains("Round 3 over seeds 0, 1, 2: best test accuracy 98.64, 98.94, 98.84 %, mean 98.81 % (published 98.87 %)")
            && !text.contains("points under"),
        "{text}"
    );
    // Only seed 0 is the table's row.
    assert_eq!(text.matches("| 3 | journey_r3 |").count(), 1, "{text}");
}
