"""Models that take [0, 1] images and normalise inside.

Keeping normalisation inside the model means every attack, every eps and every
AutoAttack call works in plain pixel space: eps = 8/255 means 8 grey levels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice, check_number
from .data import CIFAR_MEAN, CIFAR_STD


class Normalize(nn.Module):
    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """Three conv blocks (width, 2*width, 2*width) + linear head: trains on a laptop CPU.

    Input (N, 3, 32, 32) in [0, 1] -> logits (N, num_classes).
    """

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        w = check_number("width", width, low=1, integer=True)
        self.arch = f"small_cnn-w{w}-c{num_classes}"
        self.norm = Normalize()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 2 * w))
        self.head = nn.Linear(2 * w * 4 * 4, num_classes)

    def forward(self, x):
        return self.head(self.features(self.norm(x)).flatten(1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        # pre-activation: the shortcut branches off after the first BN-ReLU (He et al. 2016)
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for 32x32 inputs, the paper's CIFAR-10 model. [0, 1] in, logits out."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.arch = f"preact_resnet18-c{num_classes}"
        self.norm = Normalize()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(self.norm(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


MODELS = ("small_cnn", "preact_resnet18")


def build_model(name: str = "small_cnn", *, width: int = 16, num_classes: int = 10,
                channels_last: bool = True) -> nn.Module:
    """A fresh model by name. channels_last is faster for convs on CPU and on GPUs."""
    check_choice("model", name, MODELS)
    model = SmallCNN(width, num_classes) if name == "small_cnn" else PreActResNet18(num_classes)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
