"""TensorFlow's `SAME` padding in torch, for the networks converted from TensorFlow (fer's Keras model, face-api's
tfjs graph, MediaPipe's TFLite graphs).

TensorFlow pads a window of `kernel` at `stride` so that the output has ceil(size / stride) samples, and puts the
odd pixel after (bottom/right). torch's `padding=` is symmetric, so a stride-2 convolution over an even side would
shift every output by half a pixel; getting this wrong changes the converted networks' outputs noticeably.

This file travels to the Hub with the frame encoders: it imports only torch.
"""

import torch
from torch.nn import functional as F


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's `SAME` along one axis of length `size`."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pads an (N, C, H, W) tensor as TensorFlow's `SAME` does for a `kernel` window at `stride`."""
    top, bottom = tf_same_pads(x.shape[-2], kernel, stride)
    left, right = tf_same_pads(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)
