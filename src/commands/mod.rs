//! One module per subcommand. Each returns `Err(message)` for the user; `main` prints it and
//! exits non-zero.

pub mod bench;
pub mod bench_comm;
pub mod data;
pub mod devices;
pub mod eval;
pub mod explain;
pub mod gradcheck;
pub mod journey;
pub mod list;
pub mod records;
pub mod sim_report;
pub mod summary;
pub mod table;
pub mod train;
