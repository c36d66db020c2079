//! Scratch.
use super::*;
use crate::cuda::nvrtc;

fn run_unary(src_expr: &str, xs: &[f32]) -> Vec<f32> {
    let src = format!(
        "extern \"C\" __global__ void k(const float* x, float* y, int n) {{\n\
         int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) {{ float v = x[i]; y[i] = {src_expr}; }} }}\n"
    );
    let c = nvrtc::compile("scratch.cu", &src, nvrtc::Target::Ptx(80)).unwrap();
    let sim = Simulator::new(80);
    sim.load_ptx("scratch.cu", &c.ptx).unwrap();
    let bytes = bytemuck::cast_slice::<f32, u8>(xs);
    let x = sim.alloc(bytes.len() as u64);
    sim.write(x, bytes).unwrap();
    let y = sim.alloc(bytes.len() as u64);
    sim.launch(
        "scratch.cu",
        "k",
        [1, 1, 1],
        [64, 1, 1],
        &[
            ArgValue::Ptr(x),
            ArgValue::Ptr(y),
            ArgValue::U32(xs.len() as u32),
        ],
    )
    .unwrap();
    let mut out = vec![0f32; xs.len()];
    sim.read(y, bytemuck::cast_slice_mut(&mut out)).unwrap();
    out
}

#[test]
fn scratch() {
    let xs = [0.5f32, 1.0, 2.0, 3.0, 10.0, 0.1];
    for (e, f) in [
        ("logf(v)", f32::ln as fn(f32) -> f32),
        ("sqrtf(v)", f32::sqrt),
        ("expf(v)", f32::exp),
        ("1.0f / v", |v: f32| 1.0 / v),
        ("v / 3.0f", |v: f32| v / 3.0),
    ] {
        let got = run_unary(e, &xs);
        let want: Vec<f32> = xs.iter().map(|&v| f(v)).collect();
        eprintln!("{e}: got {got:?} want {want:?}");
    }
}
