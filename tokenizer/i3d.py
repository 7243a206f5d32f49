"""I3D (Carreira & Zisserman 2017: Inception-v1 inflated to 3D), the video classifier whose Kinetics-400 logits are
FVD's features, laid out as pytorch-i3d's `InceptionI3d` so that its state dicts load unchanged (every parameter
and buffer has the same name: `Conv3d_1a_7x7.conv3d.weight`, `Mixed_4b.b1b.bn.running_var`, `logits.conv3d.bias`;
cd-fvd's and TATS's `i3d_pretrained_400.pt` are such state dicts).

The layers are DeepMind's (kinetics-i3d): every convolution and max-pool pads as TensorFlow's 'SAME' (the padding
depends on the input size, split with the extra pixel after), batch norm with ε = 1e-3; the head average-pools
2×7×7 windows ('VALID'), applies the 1×1×1 logits convolution and averages the logits over the positions left
(over time only, for 16 frames of 224×224). At other sizes the pooling window shrinks to fit, so small inputs work
too (the tests'). Dropout, a no-op in evaluation, is left out.

A freshly built `InceptionI3d` is randomly initialised (He-normal convolutions, so that activations keep their
scale through its 58 convolutions and random-weight features stay readable): it measures nothing until real weights
are loaded; it exists so that users' state dicts have a model to load into, and so that the FVD code can be run
end to end at the real network's size without weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(sizes: list[int], kernel: list[int], stride: list[int]) -> list[int]:
    """F.pad's argument (last dimension first) for TensorFlow's 'SAME' padding of (T, H, W) `sizes`."""
    pad: list[int] = []
    for dim in [2, 1, 0]:
        size, k, s = sizes[dim], kernel[dim], stride[dim]
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pad += [total // 2, total - total // 2]
    return pad


class Unit3D(nn.Module):
    """A 3D convolution with 'SAME' padding, then batch norm and ReLU (the logits layer: a bias, neither)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), head: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.head = list(kernel), list(stride), head
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=head)
        self.bn = None if head else nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(list(x.shape[2:]), self.kernel, self.stride)))
        if self.bn is not None:
            x = F.relu(self.bn(x))
        return x


class MaxPool3dSame(nn.Module):
    """Max-pooling with 'SAME' padding (zeros: its inputs follow a ReLU, so they never lose to the padding)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = list(kernel), list(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(list(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated: 1×1×1; 1×1×1 → 3×3×3; 1×1×1 → 3×3×3; 3×3×3 max-pool → 1×1×1."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D on RGB videos (B, 3, T, H, W) in [-1, 1] → logits (B, num_classes), averaged over time; scriptable
    (torch.jit.script)."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, head=True)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        x = self.MaxPool3d_4a_3x3(self.Mixed_3c(self.Mixed_3b(x)))
        x = self.Mixed_4f(self.Mixed_4e(self.Mixed_4d(self.Mixed_4c(self.Mixed_4b(x)))))
        x = self.Mixed_5c(self.Mixed_5b(self.MaxPool3d_5a_2x2(x)))
        window = [min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4])]
        x = self.logits(F.avg_pool3d(x, window, stride=1))
        return x.mean(dim=[2, 3, 4])
