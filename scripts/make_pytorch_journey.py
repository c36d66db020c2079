"""The PyTorch side of the journey's round 5 ("Bringing In Regularization"), built as its notebook
builds it, for crates/models/tests/zoo.rs:

    python3 scripts/make_pytorch_journey.py

trains the network for one epoch of the notebook's recipe (SGD lr 0.01, momentum 0.9, batches
of 128, NLL), so that its BatchNorm running statistics are real, then writes

    crates/models/tests/fixtures/journey_r5_pytorch.safetensors      the state_dict
    crates/models/tests/fixtures/journey_r5_pytorch_io.safetensors   64 normalised MNIST test
                                                                     images and PyTorch's
                                                                     log-probabilities for them

The test loads the state_dict into strata's `journey_r5` and must reproduce the predictions.
Needs MNIST (`make data`). Run from the repository root with any PyTorch and safetensors.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

# scripts/ is on the module path when this runs as a script.
from make_pytorch_lenet5 import read_idx


def cbr(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.convblock1 = cbr(1, 8, 3)
        self.convblock2 = cbr(8, 16, 3)
        self.convblock3 = cbr(16, 16, 3)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.convblock4 = cbr(16, 8, 1)
        self.convblock5 = cbr(8, 16, 3)
        self.convblock6 = cbr(16, 16, 3)
        self.dropout = nn.Dropout(0.25)
        self.convblock7 = cbr(16, 10, 1)
        self.convblock8 = nn.Sequential(nn.Conv2d(10, 10, 7, bias=False))

    def forward(self, x):
        x = self.convblock3(self.convblock2(self.convblock1(x)))
        x = self.pool1(x)
        x = self.convblock6(self.convblock5(self.convblock4(x)))
        x = self.dropout(x)
        x = self.convblock8(self.convblock7(x))
        return F.log_softmax(x.view(-1, 10), dim=-1)


def load(split):
    images = read_idx(f"datasets/mnist/{split}-images-idx3-ubyte").float() / 255.0
    labels = read_idx(f"datasets/mnist/{split}-labels-idx1-ubyte").long()
    return ((images - 0.1307) / 0.3081).unsqueeze(1), labels


def main():
    torch.manual_seed(1)
    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(train_x))
    model.train()
    for start in range(0, len(order), 128):
        idx = order[start : start + 128]
        optimizer.zero_grad()
        F.nll_loss(model(train_x[idx]), train_y[idx]).backward()
        optimizer.step()
    model.eval()
    images = test_x[:64].contiguous()
    with torch.no_grad():
        log_probs = model(images)
        correct = int((model(test_x).argmax(1) == test_y).sum())
    folder = "crates/models/tests/fixtures"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{folder}/journey_r5_pytorch.safetensors")
    save_file(
        {"input": images, "log_probs": log_probs, "labels": test_y[:64].float()},
        f"{folder}/journey_r5_pytorch_io.safetensors",
        metadata={"torch_version": torch.__version__, "test_correct": str(correct)},
    )
    print(f"PyTorch {torch.__version__}: round 5 after one epoch, {correct}/10000 test images correct")


if __name__ == "__main__":
    main()
