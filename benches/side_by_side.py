"""strata and PyTorch trained side by side, in one run, on the same MNIST files and recipes.

Usage:  python3 benches/side_by_side.py [MODEL ...] [--threads T] [--repeat N] [--strata PATH]
                                        [--record PATH]

For each model (default: dnn3 mnist_mlp lenet5_classic snn500 lenet5 cnn3l journey_final) it
times one training epoch with `strata bench train MODEL` (dnn3: its 1,000 full-batch epochs)
and with benches/pytorch_reference.py, alternately, N times (default 5), each in a fresh
process, and prints the medians and the ratio strata / PyTorch (below 1.0: strata is faster).
`--record` writes every repetition, with the command, commit, machine and versions, as JSON
(`make compare` writes results/compare/pytorch.json). Needs a PyTorch importable by the Python
running this script, and the strata binary (built with `cargo build --release` when --strata is
not given). Run `make data` first.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = ["dnn3", "mnist_mlp", "lenet5_classic", "snn500", "lenet5", "cnn3l", "journey_final"]


def strata_run(binary, model, threads):
    """One `strata bench train MODEL` in a fresh process: its record's row and provenance."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "record.json")
        subprocess.run([binary, "bench", "train", model, "--record", path], cwd=ROOT, env=env,
                       check=True, capture_output=True, text=True)
        with open(path) as f:
            record = json.load(f)
    return record["rows"][0], record["provenance"]


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
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--strata", help="path of the strata binary")
    p.add_argument("--record", help="write every repetition to this JSON record")
    a = p.parse_args()
    binary = a.strata
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "strata")
    rows, provenance, version = [], None, "?"
    for model in a.models:
        strata, torch, facts = [], [], {}
        for i in range(a.repeat):
            row, provenance = strata_run(binary, model, a.threads)
            strata.append(row["series"]["strata"]["values"][0])
            facts = row["facts"]
            t, version = torch_seconds(model, a.threads)
            torch.append(t)
            print(f"  {model} {i + 1}/{a.repeat}: strata {strata[-1]:.3f} s, PyTorch {t:.3f} s",
                  file=sys.stderr, flush=True)
        rows.append({"label": model, "facts": facts,
                     "series": {"strata": {"unit": "s", "values": strata},
                                "pytorch": {"unit": "s", "values": torch}}})
    print(f"one training epoch, {a.threads} threads (dnn3: 1,000 full-batch epochs); PyTorch "
          f"{version}; medians of {a.repeat}")
    print(f"{'model':<16} {'strata (s)':>11} {'PyTorch (s)':>12} {'ratio':>7}")
    for row in rows:
        s = statistics.median(row["series"]["strata"]["values"])
        t = statistics.median(row["series"]["pytorch"]["values"])
        print(f"{row['label']:<16} {s:>11.3f} {t:>12.3f} {s / t:>7.2f}")
    if a.record:
        provenance["command"] = " ".join(["python3", "benches/side_by_side.py"] + sys.argv[1:])
        provenance["machine"]["threads"] = a.threads
        record = {"kind": "compare-pytorch",
                  "method": "one training epoch with the recipe's batch size (dnn3: its 1,000 "
                            "full-batch epochs), strata and PyTorch alternately, each in a "
                            "fresh process",
                  "provenance": provenance, "versions": {"PyTorch": version}, "rows": rows}
        os.makedirs(os.path.dirname(os.path.abspath(a.record)), exist_ok=True)
        with open(a.record, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        print(f"record: {a.record}")


if __name__ == "__main__":
    main()
