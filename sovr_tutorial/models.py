"""Models that take [0, 1] images and normalise inside.

Keeping normalisation inside the model means every attack, every eps and every
AutoAttack call works in plain pixel space: eps = 8/255 means 8 grey levels.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .checks import check_choice, check_number

# Per-channel mean and std of the CIFAR-10 training images (official set), in [0, 1] units.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)


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


class CNN(nn.Module):
    """A deeper CNN for the laptop tiers: ``depth`` stages of two 3x3 conv-BN-ReLU layers
    (widths w, 2w, 4w, ...), each stage but the last followed by 2x2 max-pooling, then
    global average pooling and a linear head. depth=3, width=32: 6 convs, ~0.3M weights.
    Input (N, 3, 32, 32) in [0, 1] -> logits (N, num_classes).
    """

    def __init__(self, width: int = 32, num_classes: int = 10, depth: int = 3):
        super().__init__()
        w = check_number("width", width, low=1, integer=True)
        depth = check_number("depth", depth, low=1, high=5, integer=True)
        self.arch = f"cnn-w{w}-d{depth}-c{num_classes}"
        self.norm = Normalize()
        layers, cin = [], 3
        for stage in range(depth):
            cout = w * 2 ** stage
            for _ in range(2):
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            if stage < depth - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.features(self.norm(x)), 1).flatten(1))


class MLP(nn.Module):
    """The toy world's model: points (N, in_dim) in [0, 1] -> logits, ``depth`` hidden ReLU
    layers of ``width`` units. No normalisation layer: the points are already in [0, 1]."""

    def __init__(self, width: int = 128, num_classes: int = 6, depth: int = 2, in_dim: int = 2):
        super().__init__()
        w = check_number("width", width, low=1, integer=True)
        depth = check_number("depth", depth, low=1, integer=True)
        self.arch = f"mlp-w{w}-d{depth}-i{in_dim}-c{num_classes}"
        layers, cin = [], in_dim
        for _ in range(depth):
            layers += [nn.Linear(cin, w), nn.ReLU()]
            cin = w
        self.net = nn.Sequential(*layers, nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.net(x)


MODELS = ("small_cnn", "cnn", "preact_resnet18", "mlp")


def build_model(name: str = "small_cnn", *, width: int = 16, num_classes: int = 10,
                depth: int = 3, channels_last: bool = True) -> nn.Module:
    """A fresh model by name. channels_last is faster for convs on CPU and on GPUs."""
    check_choice("model", name, MODELS)
    if name == "mlp":
        return MLP(width, num_classes, depth=depth)
    if name == "small_cnn":
        model = SmallCNN(width, num_classes)
    elif name == "cnn":
        model = CNN(width, num_classes, depth=depth)
    else:
        model = PreActResNet18(num_classes)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


@contextmanager
def eval_mode(model: nn.Module):
    """Run the block with every module of ``model`` in eval mode, then give each module
    back its own mode: a BatchNorm frozen inside a training model stays frozen."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


class FoldedBN(nn.Module):
    """``model`` as it computes in eval mode, with each BatchNorm that directly follows a
    convolution folded into it: in eval mode a BatchNorm is the fixed affine map
    ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so conv-then-BN is one conv with
    weight ``W * gamma / sqrt(var + eps)`` (per output channel) and bias
    ``(b - mean) * gamma / sqrt(var + eps) + beta`` (``torch.nn.utils.fusion``).

    Every other layer (the normalisation, ReLUs, pooling, the head, a BatchNorm that follows
    no conv such as PreAct ResNet's ``bn1``) is ``model``'s own, shared. The folded weights
    are a snapshot without gradients: :meth:`refresh` recomputes them from ``model``'s
    current weights and BatchNorm statistics (after an SGD step). Gradients flow to the
    input, which is what an attack needs; the folded model is for eval mode only, the
    attacks' mode (a train-mode BatchNorm normalises by the batch, which no fold can do).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        graph = torch.fx.symbolic_trace(model)   # shares model's modules and buffers
        modules = dict(graph.named_modules())
        self._pairs = []                          # (folded conv, model's conv, model's BN)
        for node in list(graph.graph.nodes):
            if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
                continue
            src = node.args[0]
            bn = modules[node.target]
            if not (isinstance(src, torch.fx.Node) and src.op == "call_module"
                    and isinstance(modules[src.target], nn.Conv2d) and len(src.users) == 1
                    and bn.track_running_stats):
                continue
            conv = modules[src.target]
            folded = copy.deepcopy(conv)
            if folded.bias is None:
                folded.bias = nn.Parameter(conv.weight.new_zeros(conv.out_channels))
            folded.requires_grad_(False)
            name = f"folded{len(self._pairs)}"
            graph.add_submodule(name, folded)
            src.target = name
            node.replace_all_uses_with(src)
            graph.graph.erase_node(node)
            self._pairs.append((folded, conv, bn))
        graph.graph.lint()
        graph.recompile()
        graph.delete_all_unused_submodules()
        self.net = graph
        self.arch = getattr(model, "arch", type(model).__name__)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> FoldedBN:
        """Fold the source model's current conv weights and BatchNorm statistics again."""
        for folded, conv, bn in self._pairs:
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                                bn.running_var, bn.eps, bn.weight, bn.bias)
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
        return self

    @property
    def folded(self) -> int:
        """How many conv-BatchNorm pairs were folded."""
        return len(self._pairs)

    def forward(self, x):
        return self.net(x)


def fold_bn(model: nn.Module) -> FoldedBN:
    """``model``'s eval-mode function with each conv-BatchNorm pair folded into one conv
    (:class:`FoldedBN`); ``model`` itself is not changed. SmallCNN and CNN fold every
    BatchNorm, PreAct ResNet-18 the one between the two convs of each block (its others
    follow a ReLU or a sum, not a conv). Numerically equal to ``model`` in eval mode up to
    float rounding."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return FoldedBN(model)
