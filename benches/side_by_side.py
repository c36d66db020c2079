"""strata and PyTorch trained side by side, in one run, on the same MNIST files and recipes.

Usage:  python3 benches/side_by_side.py [MODEL ...] [--threads T] [--strata PATH]

For each model (default: dnn3 mnist_mlp lenet5_classic snn500 lenet5 cnn3l) it times one
training epoch with `strata bench train MODEL` (dnn3: its 1,000 full-batch epochs) and with
benches/pytorch_reference.py, alternately, and prints seconds per epoch, images per second and
the ratio strata / PyTorch (below 1.0: strata is faster). Needs a PyTorch importable by the
Python running this script, and the strata binary (built with `cargo build --release` when
--strata is not given). Run `make data` first.
"""
import argparse, json, os, subprocess, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = ["dnn3", "mnist_mlp", "lenet5_classic", "snn500", "lenet5", "cnn3l", "journey_final"]
TRAIN_IMAGES = 60000


def strata_seconds(binary, model, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "bench", "train", model], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == model:
            return float(fields[2])
    sys.exit(f"strata bench train {model}: no result line in\n{out}")


def torch_seconds(model, threads):
    cmd = [sys.executable, os.path.join(ROOT, "benches", "pytorch_reference.py"), model,
           "--threads", str(threads)]
    if model != "dnn3":
        cmd += ["--epochs", "1"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if model == "dnn3":
        return result["train_seconds"], result["torch"]
    return result["epochs"][0]["train_seconds"], result["torch"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=MODELS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strata", help="path of the strata binary")
    a = p.parse_args()
    binary = a.strata
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "strata")
    rows = []
    version = "?"
    for model in a.models:
        s = strata_seconds(binary, model, a.threads)
        t, version = torch_seconds(model, a.threads)
        rows.append((model, s, t))
        print(f"  {model}: strata {s:.2f} s, PyTorch {t:.2f} s", file=sys.stderr, flush=True)
    print(f"one training epoch, {a.threads} threads (dnn3: 1,000 full-batch epochs); PyTorch {version}")
    print(f"{'model':<16} {'strata (s)':>11} {'PyTorch (s)':>12} {'strata img/s':>13} {'ratio':>7}")
    for model, s, t in rows:
        images = 7000 * 1000 if model == "dnn3" else TRAIN_IMAGES
        print(f"{model:<16} {s:>11.2f} {t:>12.2f} {images / s:>13.0f} {s / t:>7.2f}")


if __name__ == "__main__":
    main()
