//! One module per subcommand. Each returns `Err(message)` for the user; `main` prints it and
//! exits non-zero.

pub mod bench;
pub mod devices;
pub mod gradcheck;
