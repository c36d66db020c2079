//! `make kernels-report`: compiles every kernels/*.cu with NVRTC and assembles it with ptxas
//! for sm_80 and sm_90, then prints registers, shared memory, stack and spills per kernel.
//! Needs scripts/cuda-tools.sh; no GPU.

use strata_kernels::cuda::{device, nvrtc, ptxas};

fn main() {
    match nvrtc::availability() {
        Ok(found) => println!("{found}"),
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    }
    println!("driver: {}\n", device::probe());
    match ptxas::report() {
        Ok(rows) => print!("{}", ptxas::format_table(&rows)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
