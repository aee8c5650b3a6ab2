"""The lab of the channel chapter: channel gates trained inside a small network, and the explorer.

* :func:`sensor_task` and :func:`sensor_maps` — a four-band image (four *sensors*), one band clean
  and at a random index, the others other digits under strong noise; the frozen digit encoder's
  feature maps of every band, stacked as the ``S · 64`` channels of one map ``(N, 256, 4, 4)``.
* :class:`StaticGate`, :func:`make_gate` and :class:`GatedNet` — a gate (SE, ECA, CBAM's channel
  gate, an input-independent learned gate, or none) on that feature map, then trainable layers: a
  ``1 × 1`` convolution that mixes the channels, a ``3 × 3`` convolution, global average pooling
  and a linear classifier.
* :func:`seed_data`, :func:`run_seeds`, :func:`channel_gates` and :func:`correct` — one draw of
  the data per seed, one trained network per seed, the gates it computes, its per-example scores.
* :class:`PageModel` and :func:`model_explorer` — the trained SE network and its strongest control
  in the reader's browser, from the pixels of the four bands up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_labels,
    check_number,
    check_positive_int,
    check_positive_number,
    check_seeds,
    check_tensor,
)
from ..channel import ChannelGate, EfficientChannelAttention, SqueezeExcitation
from ..core import AttentionModule, record_attention
from ..train import SeedRuns, fit, seed_everything
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_encoder
from .common import collect_attention
from .digits import DIGIT_SIZE, digits_at, like_module, load_digit_cnn

__all__ = [
    "NUM_SENSORS",
    "GATES",
    "sensor_task",
    "sensor_maps",
    "StaticGate",
    "make_gate",
    "GatedNet",
    "SensorData",
    "seed_data",
    "run_seeds",
    "channel_gates",
    "correct",
    "PageModel",
    "model_explorer",
]


#: Sensors (bands) per example in the chapter's experiment.
NUM_SENSORS = 4

#: The gates :class:`GatedNet` takes: the chapter's three modules, the static control, none.
GATES = ("se", "eca", "cbam-channel", "static", None)


def sensor_task(
    n: int,
    split: str,
    seed: int,
    sensors: int = NUM_SENSORS,
    clean_noise: float = 0.1,
    noisy_noise: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The "which band to trust" task: ``n`` examples of ``sensors`` 16 × 16 images each.

    Every band shows a random digit of ``split`` (drawn at 16 × 16 by
    :func:`~visual_attention.labs.digits.digits_at`). One band per example, at a random index,
    is the *clean* one: its digit is the label and its pixels get Gaussian noise of
    ``clean_noise``; the others show other random digits under noise of ``noisy_noise`` (clipped
    to ``[0, 1]``). Which band to trust is visible only in the data.

    Returns:
        images ``(n, S, 1, 16, 16)``, labels ``(n,)`` and the clean band's index ``(n,)``.
    """
    check_positive_int("n", n)
    check_positive_int("sensors", sensors)
    check_int("seed", seed, 0)
    check_number("clean_noise", clean_noise, 0.0)
    check_number("noisy_noise", noisy_noise, 0.0)
    g = torch.Generator().manual_seed(seed)
    x, y = digits_at(DIGIT_SIZE, split)
    idx = torch.randint(len(x), (n, sensors), generator=g)
    images = x[idx]  # (n, S, 1, 16, 16)
    clean = torch.randint(sensors, (n,), generator=g)
    rows = torch.arange(n)
    sigma = torch.full((n, sensors), float(noisy_noise))
    sigma[rows, clean] = clean_noise
    noise = sigma[..., None, None, None] * torch.randn(images.shape, generator=g)
    return (images + noise).clamp(0, 1), y[idx][rows, clean], clean


@torch.no_grad()
def sensor_maps(encoder: nn.Module, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """The frozen ``encoder``'s feature map of every band, the bands' channels stacked.

    ``images`` ``(N, S, 1, H, W)`` → ``(N, S · C, H/4, W/4)``: channel ``s · C + c`` is detector
    ``c`` of the encoder on band ``s`` (``C = 64``: ``(N, 256, 4, 4)`` for four 16 × 16 bands).
    Computed once, in batches, in the encoder's precision.
    """
    check_encoder("encoder", encoder)
    if encoder is None:
        raise ValueError("encoder must be a module with a feature_map method (a DigitCNN)")
    n, s = check_canvas("images", images, "(N, S, C, H, W)")[:2]
    check_positive_int("batch_size", batch_size)
    flat = images.flatten(0, 1)
    parts = [
        encoder.feature_map(like_module(flat[i : i + batch_size], encoder)).float()
        for i in range(0, len(flat), batch_size)
    ]
    f = torch.cat(parts)  # (N·S, C, h, w)
    return f.reshape(n, s * f.shape[1], *f.shape[2:])


class StaticGate(AttentionModule):
    """An input-independent learned gate, the control: ``x̃_c = σ(w_c) · x_c``.

    One learned number per channel, the same for every image (initialised at ``σ(0) = ½``):
    what a channel gate can do *without* looking at the input. Shapes: ``(B, C, H, W) → (B, C,
    H, W)``; records the gate, expanded to ``(B, C)`` as the other gates record theirs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.logit = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        g = self.remember(torch.sigmoid(self.logit).expand(x.shape[0], -1))  # (B, C)
        return x * g[:, :, None, None]


def make_gate(gate: str | None, channels: int, rd_channels: int = 16) -> nn.Module:
    """The gate of :class:`GatedNet`.

    ``"se"`` → :class:`~visual_attention.channel.SqueezeExcitation`, ``"eca"`` →
    :class:`~visual_attention.channel.EfficientChannelAttention` (adaptive ``k``),
    ``"cbam-channel"`` → :class:`~visual_attention.channel.ChannelGate`, ``"static"`` →
    :class:`StaticGate`, ``None`` → ``nn.Identity``; ``rd_channels`` is the hidden width of SE's
    and CBAM's bottleneck."""
    check_choice("gate", gate, GATES)
    check_positive_int("channels", channels)
    check_positive_int("rd_channels", rd_channels)
    if gate == "se":
        return SqueezeExcitation(channels, rd_channels=rd_channels)
    if gate == "eca":
        return EfficientChannelAttention(channels)
    if gate == "cbam-channel":
        return ChannelGate(channels, rd_channels=rd_channels)
    if gate == "static":
        return StaticGate(channels)
    return nn.Identity()


class GatedNet(nn.Module):
    """A channel gate on a feature map, then trainable layers that mix the channels and classify.

    ``(B, C, H, W)`` → gate (:func:`make_gate`) → ``1 × 1`` convolution ``C → width`` → ReLU →
    ``3 × 3`` convolution ``width → width`` → ReLU → global average pooling → linear → logits
    ``(B, num_classes)``. The gate acts *before* the channels are mixed: once the ``1 × 1``
    convolution has added a band's channels to the others', no later layer can take them out
    again for one image only.

    Args:
        gate: one of :data:`GATES`.
        channels: ``C`` of the input map.
        width: channels of the two convolutions (the ungated control is given more, to match the
            gated networks' parameters).
        rd_channels: hidden width of SE's and CBAM's bottleneck.
        num_classes: outputs.
    """

    def __init__(
        self,
        gate: str | None = "se",
        channels: int = NUM_SENSORS * 64,
        width: int = 32,
        rd_channels: int = 16,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes)
        self.kind, self.channels = gate, channels
        self.gate = make_gate(gate, channels, rd_channels)
        self.mix = nn.Conv2d(channels, width, kernel_size=1)
        self.conv = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        h = torch.relu(self.mix(self.gate(x)))  # gate, then mix the channels: (B, width, H, W)
        h = torch.relu(self.conv(h))
        return self.fc(h.mean(dim=(2, 3)))


class SensorData(NamedTuple):
    """One seed's draw of the data (:func:`seed_data`)."""

    #: ``(feature maps (N, S·C, h, w), labels (N,))`` for training
    train: tuple[torch.Tensor, torch.Tensor]
    #: the same for testing
    test: tuple[torch.Tensor, torch.Tensor]
    #: the test images ``(M, S, 1, 16, 16)`` and their clean bands ``(M,)``
    images: torch.Tensor
    clean: torch.Tensor


def seed_data(
    encoder: nn.Module, seed: int, n_train: int = 3000, n_test: int = 1000
) -> SensorData:
    """Seed ``seed``'s draw: ``n_train`` training examples of the train digits and ``n_test``
    test examples of the held-out digits (:func:`sensor_task` with seeds ``2 · seed`` and
    ``2 · seed + 1``), through the frozen encoder (:func:`sensor_maps`)."""
    check_int("seed", seed, 0)
    check_positive_int("n_train", n_train)
    check_positive_int("n_test", n_test)
    x_train, y_train, _ = sensor_task(n_train, "train", seed=2 * seed)
    x_test, y_test, clean = sensor_task(n_test, "test", seed=2 * seed + 1)
    return SensorData(
        (sensor_maps(encoder, x_train), y_train),
        (sensor_maps(encoder, x_test), y_test),
        x_test,
        clean,
    )


def run_seeds(
    data: Sequence[SensorData],
    gate: str | None,
    width: int = 32,
    seeds: Sequence[int] = (0, 1, 2, 3),
    epochs: int = 12,
    lr: float = 1e-2,
) -> SeedRuns:
    """Train one :class:`GatedNet` per seed: seed ``s`` seeds the initialisation and the data
    order and trains on ``data[s]`` (its own draw); return
    :class:`~visual_attention.train.SeedRuns` (final test accuracies, models in eval mode,
    histories)."""
    check_choice("gate", gate, GATES)
    check_positive_int("width", width)
    check_seeds("seeds", seeds)
    check_positive_int("epochs", epochs)
    check_positive_number("lr", lr)
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise ValueError(f"data must be a list of SensorData, one per seed, got {data!r:.60}")
    if max(seeds) >= len(data):
        raise ValueError(f"data must hold a draw for every seed (< {len(data)}), got {seeds}")
    runs = SeedRuns([], [], [])
    for seed in seeds:
        d = data[seed]
        check_instance("data[]", d, SensorData)
        seed_everything(seed)
        model = GatedNet(gate, channels=d.train[0].shape[1], width=width)
        history = fit(
            model, d.train, d.test, epochs=epochs, lr=lr, batch_size=128, seed=seed,
            progress=False,
        )  # fmt: skip
        runs.accuracies.append(history.final_test_accuracy)
        runs.models.append(model.eval())
        runs.histories.append(history)
    return runs


def channel_gates(model: GatedNet, f: torch.Tensor) -> torch.Tensor:
    """The gate the network computes on feature maps ``f`` ``(N, C, h, w)``: ``(N, C)``."""
    check_instance("model", model, GatedNet)
    if model.kind is None:
        raise ValueError("the model has no gate")
    check_tensor("f", f, "(N, C, H, W)", C=model.channels)
    return collect_attention(model, f, names=["gate"])["gate"]


@torch.no_grad()
def correct(model: nn.Module, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example correctness ``(N,)`` (1.0 or 0.0) of ``model`` on inputs ``f`` and labels
    ``y``, in eval mode: the scores a bootstrap over test examples resamples."""
    check_instance("model", model, nn.Module)
    n = check_tensor("f", f, "(N, *S)")[0]
    check_labels("y", y, n)
    was = model.training
    model.eval()
    f = like_module(f, model)  # half-precision maps through a float32 network
    out = torch.cat([model(f[i : i + 512]).argmax(-1) for i in range(0, n, 512)])
    model.train(was)
    return (out == y).float()


class PageModel(nn.Module):
    """The trained SE network and its control from the bands' pixels up, as the browser runs them.

    ``forward``: bands ``(B, S, 1, H, W)`` → the frozen encoder on every band
    (:func:`sensor_maps`) → the SE network's logits ``(B, K)``, its gate averaged over each
    band's channels ``(B, S)``, the gate on the ``shown`` channels ``(B, len(shown))``, and the
    control's logits ``(B, K)``.

    Args:
        gated: a trained :class:`GatedNet` with a gate; control: one (any gate or none).
        shown: the channel indices whose gates the page shows.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        gated: GatedNet,
        control: GatedNet,
        shown: Sequence[int],
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_instance("gated", gated, GatedNet)
        check_instance("control", control, GatedNet)
        check_encoder("encoder", encoder)
        if gated.kind is None:
            raise ValueError("gated must be a GatedNet with a gate")
        if isinstance(shown, (str, bytes)) or not isinstance(shown, Sequence):
            raise ValueError(f"shown must be a list of channel indices, got {shown!r:.60}")
        shown = [check_int("shown[]", c, 0) for c in shown]
        if not shown or max(shown) >= gated.channels:
            raise ValueError(f"shown must list channel indices < {gated.channels}, got {shown}")
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.gated, self.control = gated.eval(), control.eval()
        self.shown = list(shown)
        pick = torch.zeros(len(shown), gated.channels)  # a 0/1 matrix: a linear map picks them
        pick[torch.arange(len(shown)), torch.tensor(shown)] = 1.0
        self.register_buffer("pick", pick)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, s = check_tensor("x", x, "(B, S, C, H, W)", C=1)[:2]
        if b == 0:
            raise ValueError("x must hold at least one example, got an empty batch")
        f = self.encoder.feature_map(x.flatten(0, 1))  # (B·S, C, h, w)
        f = f.reshape(b, s * f.shape[1], *f.shape[2:])  # the bands' channels stacked
        with record_attention(self.gated) as maps:
            logits = self.gated(f)
        gate = maps["gate"]  # (B, S·C)
        per_band = gate.reshape(b, s, -1).mean(-1)  # (B, S)
        return logits, per_band, nn.functional.linear(gate, self.pick), self.control(f)


def model_explorer(
    model: PageModel, images: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor
) -> ModelExplorer:
    """The reader draws on any band, clears it or adds noise, or picks a test example; the page
    runs ``model``: the SE gate on the shown channels and per band, both networks' probabilities.

    Args:
        model: the :class:`PageModel` to export.
        images: test examples ``(N, S, 1, H, W)`` to start from.
        labels, clean: ``(N,)`` their labels and clean bands.
    """
    check_instance("model", model, PageModel)
    n, s = check_canvas("images", images, "(N, S, C, H, W)")[:2]
    check_labels("labels", labels, n)
    check_labels("clean", clean, n)
    outputs = ("logits gated", "gate per band", "gate shown", "logits control")
    exported = export_model(model, images[:1], outputs)
    per = model.gated.channels // s
    names = [
        f"#{i} (digit {int(y)}, clean: band {int(k)})"
        for i, (y, k) in enumerate(zip(labels, clean))
    ]
    bands = [f"band {k}" for k in range(s)]
    views = [
        probs("SE network", "logits gated"),
        probs("control", "logits control"),
        bars("SE gate, mean over each band's channels", "gate per band", bands, per_canvas=True),
        bars(
            "SE gate on single channels",
            "gate shown",
            [f"band {c // per}, channel {c % per}" for c in model.shown],
        ),
    ]
    return make_model_explorer(
        exported,
        images[:, :, 0],
        names,
        views,
        canvas_names=bands,
        display=192,
        brush=1.0,
        caption="Draw a digit on any band (pick it below the drawing area), clear one, add "
        "noise or copy one to the next: the SE network and the control run in this page.",
    )
