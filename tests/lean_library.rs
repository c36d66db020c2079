//! The library crates stay free of the command line's dependencies, so a program that links
//! strata does not compile argument parsing, progress bars or plotting.

use std::process::Command;

const COMMAND_LINE_CRATES: [&str; 4] = ["clap", "indicatif", "plotters", "mimalloc"];

fn normal_dependencies(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn library_crates_pull_in_no_command_line_crates() {
    for package in [
        "strata-kernels",
        "strata-tensor",
        "strata-nn",
        "strata-models",
    ] {
        let crates = normal_dependencies(&["-p", package]);
        assert!(crates.iter().any(|c| c == package), "{package}: {crates:?}");
        for unwanted in COMMAND_LINE_CRATES {
            assert!(
                !crates.iter().any(|c| c == unwanted),
                "{package} depends on {unwanted}"
            );
        }
    }
}

#[test]
fn the_facade_without_the_cli_feature_is_lean_and_with_it_is_not() {
    let lean = normal_dependencies(&["-p", "strata", "--no-default-features"]);
    for unwanted in COMMAND_LINE_CRATES {
        assert!(
            !lean.iter().any(|c| c == unwanted),
            "strata without default features depends on {unwanted}"
        );
    }
    // The check above would pass vacuously if `cargo tree` printed nothing useful.
    let full = normal_dependencies(&["-p", "strata"]);
    assert!(full.iter().any(|c| c == "clap"), "{full:?}");
}
