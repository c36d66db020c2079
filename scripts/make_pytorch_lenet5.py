"""The PyTorch side of strata's LeNet-5 interoperability: one network definition, two files.

    python3 scripts/make_pytorch_lenet5.py fixture
        crates/models/tests/fixtures/lenet5_pytorch.safetensors: a randomly initialised LeNet-5
        state_dict (PyTorch's names: conv1, conv2, fc1, fc2, fc3), and
        lenet5_pytorch_io.safetensors beside it: four input images and the logits PyTorch
        computed for them (the test crates/models/tests/zoo.rs compares them with strata's).

    python3 scripts/make_pytorch_lenet5.py trained
        examples/data/lenet5_mnist_pytorch.safetensors: the zoo's LeNet-5
        (docs/published-results.md) trained for one epoch of its recipe (Adam, lr 1e-3, batch
        100, pixels scaled to [0, 1]), with the test accuracy and mean loss PyTorch measured in
        its metadata, which the example load_pytorch.rs compares with what strata gets from the
        same weights. Needs MNIST (`make data`).

Run from the repository root with any PyTorch and the safetensors package.
"""
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def state_dict(model):
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def fixture():
    folder = "crates/models/tests/fixtures"
    torch.manual_seed(2021)
    model = LeNet5().eval()
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        logits = model(images)
    save_file(state_dict(model), f"{folder}/lenet5_pytorch.safetensors")
    save_file({"input": images, "logits": logits}, f"{folder}/lenet5_pytorch_io.safetensors")
    print(torch.__version__, logits[0])


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def load(split):
    images = read_idx(f"datasets/mnist/{split}-images-idx3-ubyte").float() / 255.0
    labels = read_idx(f"datasets/mnist/{split}-labels-idx1-ubyte").long()
    return images.unsqueeze(1), labels


def trained():
    torch.manual_seed(7)
    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    model = LeNet5()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(train_x))
    for start in range(0, len(order), 100):
        idx = order[start : start + 100]
        optimizer.zero_grad()
        F.cross_entropy(model(train_x[idx]), train_y[idx]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(test_x)
        test_loss = F.cross_entropy(logits, test_y).item()
        predictions = logits.argmax(1)
    correct = int((predictions == test_y).sum())
    save_file(
        state_dict(model),
        "examples/data/lenet5_mnist_pytorch.safetensors",
        metadata={
            "test_correct": str(correct),
            "test_images": str(len(test_y)),
            "test_loss": f"{test_loss:.6f}",
            "torch_version": torch.__version__,
        },
    )
    print(f"PyTorch {torch.__version__}: {correct}/{len(test_y)} correct, mean loss {test_loss:.6f}")


if __name__ == "__main__":
    commands = {"fixture": fixture, "trained": trained}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} fixture|trained")
    commands[sys.argv[1]]()
