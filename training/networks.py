"""The GAN: a Lab encoder-decoder generator and a weaker conditional discriminator.

The generator follows arXiv 1803.05400 as measured in docs/TRAINING.md: a stride-2
encoder, residual blocks in the seed's unpadded form at the bottleneck, a bilinear
decoder with skip connections and a tanh output. Two options (docs/TRAINING.md):

- ``global_context``: image-level features (strided convs, global average pool, a linear
  layer) broadcast and fused into the bottleneck, after Iizuka et al. (SIGGRAPH 2016), so
  a crop is colored as one picture;
- ``color_head="classification"``: ab predicted as a distribution over quantized ab
  classes (training/color_classes.py, Zhang et al. ECCV 2016) and decoded inside the
  graph by the annealed mean, so the ONNX output is still ab (or Lab) in Lab units;
  with ``ab_prior_sigma`` > 0 the regression head stays and its color enters the class
  logits as a Gaussian prior (``ab_prior_conv``), the class head learning only the
  residual: a classification run started from a regression checkpoint begins with that
  model's colors instead of a uniform distribution.

It takes the model contract's raw Lab input ``[N, 4, H, W]`` (L 0..100, hint a, hint b,
hint mask) and normalizes inside, so the exported ONNX graph is fed raw Lab units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inkhue_engine.color import AB_SCALE, L_MAX
from inkhue_training.color_classes import (
    TEMPERATURE,
    AbQuantizer,
    annealed_mean_last,
    class_logits_last,
)

TASKS = ("grayscale", "lineart")
COLOR_HEADS = ("regression", "classification")
#: Output channels per task: ab for grayscale frames, Lab for line art.
OUT_CHANNELS = {"grayscale": 2, "lineart": 3}


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use 'grayscale' or 'lineart'")
    return task


def normalize_l(L: torch.Tensor) -> torch.Tensor:
    """L 0..100 -> -1..1."""
    return L * (2.0 / L_MAX) - 1.0


def normalize_color(color: torch.Tensor) -> torch.Tensor:
    """ab [N,2] or Lab [N,3] in Lab units -> about -1..1 per channel."""
    if color.shape[1] == 2:
        return color / AB_SCALE
    return torch.cat([normalize_l(color[:, :1]), color[:, 1:] / AB_SCALE], dim=1)


class ResidualBlock(nn.Module):
    """The seed's residual block: two unpadded 3x3 convs, added to the input shaved by 2 px.

    The output is 4 px smaller in height and width than the input; the caller pads
    beforehand (the generator pads once for all its blocks).
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=0, bias=False),
            nn.BatchNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2:-2, 2:-2] + self.body(x)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class EdgePad1(nn.Module):
    """Replicate-pad 1 px on each side, by concatenating the edge rows and columns.

    Same result as ``nn.ReplicationPad2d(1)``, whose backward has a wrong meta kernel
    for channels_last tensors under torch.compile (torch 2.13: stride assertion).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)


def _staged_pads(total: int) -> list[nn.Module]:
    """Pad ``total`` px on each side in stages that work for any bottleneck size >= 1.

    A single reflection pad of p px needs the input to be larger than p (at the 1/8
    bottleneck of a small frame it is not), so: one replicate px first, then
    reflection pads each smaller than the size reached so far. For a bottleneck
    bigger than ``total`` this differs from one reflection pad only in the far border.
    """
    if total <= 0:
        return []
    stages: list[nn.Module] = [EdgePad1()]
    size, left = 3, total - 1
    while left > 0:
        p = min(left, size - 1)
        stages.append(nn.ReflectionPad2d(p))
        size += 2 * p
        left -= p
    return stages


class GlobalContext(nn.Module):
    """Image-level features fused into every bottleneck position (Iizuka et al. 2016).

    Two stride-2 3x3 convs on the bottleneck features, a global average pool and a linear
    layer give one vector per image; it is broadcast over the bottleneck, concatenated
    with the local features and mixed by a 1x1 conv. Works at any size (the pool is
    global), so the exported graph keeps its dynamic H, W.
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.down = nn.Sequential(_conv_bn_relu(ch, ch, 2), _conv_bn_relu(ch, ch, 2))
        self.fc = nn.Sequential(nn.Linear(ch, ch), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * ch, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = self.fc(self.down(h).mean(dim=(2, 3)))
        g = g[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        return self.fuse(torch.cat([h, g], dim=1))


def ab_prior_conv(centers: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 conv (weight [Q, 2, 1, 1], bias [Q]) from ab to the log of a Gaussian of
    std ``sigma`` around it at each class center c: -|ab - c|^2 / (2 sigma^2) up to the
    term -|ab|^2 / (2 sigma^2), the same for every class, which the softmax cancels."""
    c = centers.float()
    weight = (c / sigma**2).reshape(c.shape[0], 2, 1, 1)
    bias = -(c * c).sum(1) / (2 * sigma**2)
    return weight, bias


class Generator(nn.Module):
    """Encoder-decoder colorizer for one task ('grayscale' -> ab, 'lineart' -> Lab).

    ``channels`` are the widths of the encoder stages; the first stage runs at full
    resolution and each further stage halves it, plus one more stride-2 stage at the
    last width that feeds the residual blocks. ``multiple_of`` is 2**(number of
    stride-2 stages): any H, W that are multiples of it work.
    """

    def __init__(
        self,
        task: str,
        channels: tuple[int, ...] = (32, 64, 128),
        n_res: int = 5,
        global_context: bool = False,
        color_head: str = "regression",
        temperature: float = TEMPERATURE,
        ab_prior_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        self.task = _check_task(task)
        if color_head not in COLOR_HEADS:
            raise ValueError(f"unknown color head {color_head!r}: use {COLOR_HEADS}")
        if ab_prior_sigma < 0 or (ab_prior_sigma and color_head != "classification"):
            raise ValueError(f"ab_prior_sigma {ab_prior_sigma}: > 0 with the classification head")
        self.color_head = color_head
        #: std (ab units) of the regression prior on the class logits; 0: no prior
        self.ab_prior_sigma = float(ab_prior_sigma)
        self.global_context = bool(global_context)
        self.channels = tuple(int(c) for c in channels)
        self.n_res = int(n_res)
        widths = list(self.channels) + [self.channels[-1]]
        self.multiple_of = 2 ** (len(widths) - 1)
        self.encoder = nn.ModuleList(
            [_conv_bn_relu(4, widths[0])]
            + [_conv_bn_relu(widths[i - 1], widths[i], 2) for i in range(1, len(widths))]
        )
        self.context = GlobalContext(widths[-1]) if self.global_context else None
        self.pad = nn.Sequential(*_staged_pads(2 * self.n_res))
        self.res = nn.Sequential(*[ResidualBlock(widths[-1]) for _ in range(self.n_res)])
        # decoder stage i: upsample, concat the encoder's features at that scale, conv
        dec = []
        cur = widths[-1]
        for i in range(len(widths) - 2, -1, -1):
            out = widths[max(i - 1, 0)]
            dec.append(_conv_bn_relu(cur + widths[i], out))
            cur = out
        self.decoder = nn.ModuleList(dec)
        classify = color_head == "classification"
        # regression: ab (or Lab); classification: only line art's L is regressed, unless
        # the regressed ab is kept as the class prior
        prior = self.ab_prior_sigma > 0
        n_reg = OUT_CHANNELS[task] if prior or not classify else (1 if task == "lineart" else 0)
        self.head = nn.Conv2d(cur, n_reg, 3, padding=1) if n_reg else None
        if self.head is not None:
            with torch.no_grad():  # start near gray (tanh ~0), away from its flat ends
                self.head.weight.mul_(0.1)
        self.class_head = None
        #: annealed-mean temperature of the classification head: a decoding choice (lower:
        #: nearer the mode, more vivid), so export may set another one (``--temperature``)
        self.temperature = float(temperature)
        if classify:
            centers = torch.from_numpy(AbQuantizer().centers)
            self.register_buffer("ab_centers", centers, persistent=False)
            self.class_head = nn.Conv2d(cur, centers.shape[0], 1)
            if prior:  # the residual starts at 0: the classes start as the regression's color
                nn.init.zeros_(self.class_head.weight)
                nn.init.zeros_(self.class_head.bias)
                w, b = ab_prior_conv(centers, self.ab_prior_sigma)
                self.register_buffer("prior_weight", w, persistent=False)
                self.register_buffer("prior_bias", b, persistent=False)

    def forward(
        self, x: torch.Tensor, with_logits: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """Raw Lab input [N,4,H,W] -> ab [N,2,H,W] or Lab [N,3,H,W] in Lab units.

        ``with_logits`` (training): (that color, class logits [N,Q,H,W] or None for the
        regression head). A keyword of forward() rather than another method, so that
        DistributedDataParallel sees the call.
        """
        color, logits, _ = self._forward(x)
        return (color, logits) if with_logits else color

    def forward_with_class_logits(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(color, channels-last class logits [N, H, W, Q] float32, or None for the
        regression head): the two outputs of an exported classification model."""
        color, _, last = self._forward(x)
        return color, last

    def _forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        h = torch.cat([normalize_l(x[:, :1]), x[:, 1:3] / AB_SCALE, x[:, 3:4]], dim=1)
        skips = []
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        if self.context is not None:
            h = self.context(h)
        h = self.res(self.pad(h))
        for stage, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = stage(torch.cat([h, skip], dim=1))
        if self.class_head is None:
            y = torch.tanh(self.head(h))
            if self.task == "grayscale":
                return y * AB_SCALE, None, None
            color = torch.cat([(y[:, :1] + 1.0) * (L_MAX / 2.0), y[:, 1:] * AB_SCALE], dim=1)
            return color, None, None
        logits = self.class_head(h)
        y = torch.tanh(self.head(h)) if self.head is not None else None
        if self.ab_prior_sigma:
            assert y is not None
            # float32 even under bf16 autocast: the prior's terms reach ~100 nats and cancel
            # to a few, which bf16 (8-bit mantissa, steps of 0.5 at 100) turns into noise
            with torch.autocast(h.device.type, enabled=False):
                ab_reg = y[:, -2:].float() * AB_SCALE
                prior = F.conv2d(ab_reg, self.prior_weight, self.prior_bias)
                logits = logits.float() + prior
        # one transpose serves the annealed mean and the exported ab_logits output
        last = class_logits_last(logits)
        ab = annealed_mean_last(last, self.ab_centers, self.temperature).to(h.dtype)
        if self.task == "grayscale":
            return ab, logits, last
        assert y is not None
        L = (y[:, :1] + 1.0) * (L_MAX / 2.0)
        return torch.cat([L, ab], dim=1), logits, last


class Discriminator(nn.Module):
    """DCGAN-style conditional discriminator with a PatchGAN output.

    Input: the generator's input L ([N,1,H,W], raw) and a color image (ab or Lab,
    raw units); both normalized inside. Strided 4x4 convs with BatchNorm and
    LeakyReLU(0.2), then a 3x3 conv to one logit per patch ([N,1,H/16,W/16]).
    A patch map rather than one global logit: it judges local color plausibility
    (what L1 blurs away) at any crop size, and gives many decisions per image, which
    keeps a deliberately small discriminator from winning on a few global cues.
    """

    def __init__(self, task: str, channels: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        self.task = _check_task(task)
        widths = [int(c) for c in channels] + [int(channels[-1])]
        cin = 1 + OUT_CHANNELS[task]
        layers: list[nn.Module] = []
        for i, cout in enumerate(widths):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:  # no BatchNorm on the first layer (DCGAN)
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, L: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """Logits [N,1,H/16,W/16] that (L, color) is a real pair."""
        return self.net(torch.cat([normalize_l(L), normalize_color(color)], dim=1))


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: list[torch.Tensor]) -> None:
    """Set BatchNorm running statistics to the plain average over ``inputs`` batches.

    A freshly initialized network has running mean 0 / var 1, which in eval mode lets
    activations grow through the residual sum; test models are calibrated so their
    eval-mode output is in a sensible range. The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for x in inputs:
        model(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
