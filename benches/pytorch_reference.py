"""PyTorch side of the strata comparison: the zoo's published recipes (docs/published-results.md)
on the same MNIST files.

Usage:  python3 benches/pytorch_reference.py MODEL [--epochs N] [--seed S] [--threads T]
MODEL is one of mnist_mlp, lenet5_classic, snn500, cnn3l, lenet5, journey_final or dnn3.
Prints one line per epoch (train seconds, test seconds, test accuracy) and a final JSON line.
Needs torch (Debian's python3-torch or pip). Reads datasets/mnist/ (run `make data` first).
"""
import argparse, json, math, os, struct, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(count, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def mnist(norm):
    d = os.path.join(ROOT, "datasets", "mnist")
    xs = [idx(os.path.join(d, f)) for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")]
    ys = [idx(os.path.join(d, f)) for f in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")]
    mean, std = norm
    xs = [torch.from_numpy((x.astype(np.float32) / 255 - mean) / std) for x in xs]
    ys = [torch.from_numpy(y.astype(np.int64)) for y in ys]
    return xs[0], ys[0], xs[1], ys[1]


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def lenet5_classic():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84),
                         nn.Tanh(), nn.Linear(84, 10))


def snn500():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))


def cnn3l():
    return nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1568, 10))


def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def journey_final():
    def block(cin, cout, k):  # bias=False on every conv, as round 10's notebook
        return [nn.Conv2d(cin, cout, k, bias=False), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout(0.1)]
    return nn.Sequential(*block(1, 8, 3), *block(8, 16, 3), nn.MaxPool2d(2), *block(16, 16, 3), *block(16, 32, 3),
                         nn.Conv2d(32, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.1),
                         *block(8, 16, 3), nn.AvgPool2d(6), nn.Conv2d(16, 10, 1, bias=False), nn.Flatten(),
                         nn.LogSoftmax(dim=1))


def rotate(x, degrees):
    """Each image turned by its own angle, uniform in ±degrees, bilinear, zero outside."""
    angle = (torch.rand(x.shape[0]) * 2 - 1) * degrees * math.pi / 180
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


MNIST_NORM, RAW = (0.1307, 0.3081), (0.0, 1.0)
RECIPES = {  # model: (builder, normalisation, optimizer, lr, momentum, batch, epochs)
    "mnist_mlp": (mlp, MNIST_NORM, "sgd", 0.01, 0.5, 64, 5),
    "lenet5_classic": (lenet5_classic, MNIST_NORM, "sgd", 0.9, 0.0, 256, 5),
    "snn500": (snn500, RAW, "adam", 1e-3, 0.0, 100, 20),
    "cnn3l": (cnn3l, RAW, "adam", 1e-3, 0.0, 100, 20),
    "lenet5": (lenet5, RAW, "adam", 1e-3, 0.0, 100, 20),
    "journey_final": (journey_final, MNIST_NORM, "sgd", 0.05, 0.9, 128, 20),
}
# journey_final: NLL on log-probabilities, StepLR(6, 0.1), training images rotated by up to 7 degrees.
NLL, ROTATED, STEP_LR = {"journey_final"}, {"journey_final": 7.0}, {"journey_final": (6, 0.1)}


def dnn3(epochs, seed):
    """dnn3's cost is framework overhead: 1,000 full-batch SGD steps of a 98-parameter network
    on 7,000 rows of 3 features with an MSE loss. The rows are random (the timing does not
    depend on their values); strata generates its own set with the same shape."""
    torch.manual_seed(seed)
    x = torch.randn(7000, 3)
    target = F.one_hot(torch.randint(0, 3, (7000,)), 3).float()
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for _ in range(epochs):
        optimizer.zero_grad()
        F.mse_loss(model(x), target).backward()
        optimizer.step()
    train_s = time.perf_counter() - start
    print(f"dnn3: {epochs} full-batch epochs  train {train_s:6.2f} s", flush=True)
    print(json.dumps({"model": "dnn3", "torch": torch.__version__, "epochs": epochs, "train_seconds": train_s}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=sorted(RECIPES) + ["dnn3"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.model == "dnn3":
        return dnn3(a.epochs or 1000, a.seed)
    torch.manual_seed(a.seed)
    build, norm, opt, lr, momentum, batch, epochs = RECIPES[a.model]
    epochs = a.epochs or epochs
    xtr, ytr, xte, yte = mnist(norm)
    model = build()
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if opt == "adam"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))
    schedule = (torch.optim.lr_scheduler.StepLR(optimizer, *STEP_LR[a.model]) if a.model in STEP_LR else None)
    loss_of = F.nll_loss if a.model in NLL else F.cross_entropy
    results = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), batch):
            idx_ = order[i:i + batch]
            x = xtr[idx_]
            if a.model in ROTATED:
                x = rotate(x, ROTATED[a.model])
            optimizer.zero_grad()
            loss = loss_of(model(x), ytr[idx_])
            loss.backward()
            optimizer.step()
        train_s = time.perf_counter() - start
        if schedule:
            schedule.step()
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                          for i in range(0, len(xte), 1000))
        test_s = time.perf_counter() - start
        acc = 100.0 * correct / len(xte)
        results.append({"epoch": epoch, "train_seconds": train_s, "test_seconds": test_s, "test_accuracy": acc})
        print(f"epoch {epoch:2d}/{epochs}  train {train_s:6.2f} s  test {test_s:5.2f} s  acc {acc:6.2f}%", flush=True)
    print(json.dumps({"model": a.model, "torch": torch.__version__, "threads": a.threads, "seed": a.seed,
                      "epochs": results}))


if __name__ == "__main__":
    main()
