"""The lab of the channel chapter: the sensor experiment and its explorer.

* :func:`sensor_task`, :func:`sensor_features`, :class:`SensorHead`, :func:`run_seeds` and
  :func:`gate_by_sensor` — which of four sensors to trust: an SE gate over the frozen digit
  encoder's features of every sensor, against the same head without the gate.
* :class:`SensorModel` and :func:`model_explorer` — the trained heads in the reader's browser:
  draw on any sensor and see the gate on each and both heads' predictions.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .._checks import (
    check_bool,
    check_instance,
    check_int,
    check_labels,
    check_number,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..channel import SqueezeExcitation
from ..core import record_attention
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder
from .common import collect_attention, pooled_features
from .digits import DIGIT_SIZE, digits_at, load_digit_cnn

__all__ = [
    "NUM_SENSORS",
    "sensor_task",
    "sensor_features",
    "SensorHead",
    "run_seeds",
    "gate_by_sensor",
    "SensorModel",
    "model_explorer",
]


#: Sensors per example in the chapter's experiment.
NUM_SENSORS = 4


def sensor_task(
    n: int,
    split: str,
    seed: int,
    sensors: int = NUM_SENSORS,
    clean_noise: float = 0.1,
    noisy_noise: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The "which sensor to trust" task: ``n`` examples of ``sensors`` 16 × 16 images each.

    Every sensor shows a random digit of ``split`` (drawn at 16 × 16 by
    :func:`~visual_attention.labs.digits.digits_at`). One sensor per example, at a random index,
    is the *clean* one: its digit is the label and its pixels get Gaussian noise of
    ``clean_noise``; the others show other random digits under noise
    of ``noisy_noise`` (clipped to ``[0, 1]``). Which sensor to trust is visible only in the data.

    Returns:
        images ``(n, S, 1, 16, 16)``, labels ``(n,)`` and the clean sensor's index ``(n,)``.
    """
    check_positive_int("n", n)
    check_positive_int("sensors", sensors), check_int("seed", seed, 0)
    check_number("clean_noise", clean_noise, 0.0), check_number("noisy_noise", noisy_noise, 0.0)
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


def sensor_features(
    encoder: nn.Module, images: torch.Tensor, batch_size: int = 2048
) -> torch.Tensor:
    """Pooled features of every sensor from the frozen ``encoder`` (``feature_map`` averaged over
    positions): images ``(N, S, 1, H, W)`` → ``(N, S, C)``, computed once, in batches
    (:func:`~visual_attention.labs.common.pooled_features`)."""
    return pooled_features(encoder, images, batch_size, "images", "(N, S, C, H, W)")


class SensorHead(nn.Module):
    """Sum the sensors' feature vectors and classify, with or without an SE gate before the sum.

    ``(B, S, C)`` features → logits ``(B, num_classes)``. With ``gate=True`` the ``S · C``
    feature channels pass through :class:`~visual_attention.channel.SqueezeExcitation` as a
    ``(B, S·C, 1, 1)`` map (its squeeze is then the identity): ``s = σ(W₂ δ(W₁ z))`` rescales
    every channel of every sensor, per example, before ``Σ_sensors`` and the linear classifier.
    Without it the same sum and classifier see every sensor with weight one: the control.

    Args:
        sensors, channels: ``S`` and ``C``.
        gate: use the SE gate.
        rd_channels: hidden width of the gate.
        num_classes: outputs.
    """

    def __init__(
        self,
        sensors: int = NUM_SENSORS,
        channels: int = 64,
        gate: bool = True,
        rd_channels: int = 32,
        num_classes: int = 10,
    ) -> None:
        check_positive_int("sensors", sensors), check_positive_int("channels", channels)
        check_bool("gate", gate), check_positive_int("rd_channels", rd_channels)
        check_positive_int("num_classes", num_classes)
        super().__init__()
        self.sensors, self.channels = sensors, channels
        self.gate = (
            SqueezeExcitation(sensors * channels, rd_channels=rd_channels) if gate else None
        )
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, S, C)`` → logits ``(B, num_classes)``."""
        check_tensor("f", f, "(B, S, C)", S=self.sensors, C=self.channels)
        b = f.shape[0]
        if self.gate is not None:
            f = self.gate(f.reshape(b, self.sensors * self.channels, 1, 1)).reshape(
                b, self.sensors, self.channels
            )
        return self.fc(f.sum(dim=1))


def run_seeds(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    gate: bool,
    seeds: Iterable[int] = (0, 1, 2),
    epochs: int = 20,
    lr: float = 1e-2,
) -> SeedRuns:
    """Train a :class:`SensorHead` (``gate`` on or off) once per seed on features ``(N, S, C)``;
    return :class:`~visual_attention.train.SeedRuns`: the final test accuracies, the models (eval
    mode) and their histories."""
    _, s, c = check_data("train", train, "(N, S, C)")
    check_data("test", test, "(N, S, C)", S=s, C=c)
    check_bool("gate", gate), check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: SensorHead(s, c, gate=gate),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=128,
    )


@torch.no_grad()
def gate_by_sensor(model: SensorHead, f: torch.Tensor) -> torch.Tensor:
    """The SE gate's mean over each sensor's channels: features ``(N, S, C)`` → ``(N, S)``."""
    check_instance("model", model, SensorHead)
    if model.gate is None:
        raise ValueError("the model has no gate")
    check_tensor("f", f, "(N, S, C)", S=model.sensors, C=model.channels)
    w = collect_attention(model, f, names=["gate"])["gate"]  # (N, S·C)
    return w.reshape(len(f), model.sensors, model.channels).mean(-1)


class SensorModel(nn.Module):
    """The chapter's trained heads from the sensors' pixels up, as the reader's browser runs them.

    The frozen encoder on every sensor (:func:`sensor_features`), then the gated
    :class:`SensorHead` and the control. ``forward``: sensors ``(B, S, 1, H, W)`` → the gated
    head's logits ``(B, K)``, its mean gate per sensor ``(B, S)`` (:func:`gate_by_sensor`) and
    the control's logits ``(B, K)``.

    Args:
        gated: a trained :class:`SensorHead` with its gate; control: one without.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self, gated: SensorHead, control: SensorHead, encoder: nn.Module | None = None
    ) -> None:
        super().__init__()
        check_instance("gated", gated, SensorHead), check_instance("control", control, SensorHead)
        check_encoder("encoder", encoder)
        if gated.gate is None or control.gate is not None:
            raise ValueError("gated must have the SE gate and control must not")
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.gated, self.control = gated.eval(), control.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s = check_tensor("x", x, "(B, S, C, H, W)", S=self.gated.sensors, C=1)[:2]
        f = self.encoder.feature_map(x.flatten(0, 1)).mean(dim=(2, 3))  # (B·S, C)
        f = f.reshape(b, s, f.shape[-1])
        with record_attention(self.gated) as maps:
            logits = self.gated(f)
        gate = maps["gate"].reshape(b, s, f.shape[-1]).mean(-1)  # (B, S): each sensor's mean gate
        return logits, gate, self.control(f)


def model_explorer(
    model: SensorModel, images: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor
) -> ModelExplorer:
    """The reader draws on any sensor, clears it or adds noise, or picks a test example; the
    page runs ``model``: the gate on every sensor and both heads' probabilities.

    Args:
        model: the :class:`SensorModel` to export.
        images: test examples ``(N, S, 1, H, W)`` to start from.
        labels, clean: ``(N,)`` their labels and clean sensors.
    """
    check_instance("model", model, SensorModel)
    n, s = check_canvas("images", images, "(N, S, C, H, W)")[:2]
    check_labels("labels", labels, n), check_labels("clean", clean, n)
    exported = export_model(model, images[:1], ("logits gated", "gate", "logits control"))
    names = [
        f"#{i} (digit {int(y)}, clean: sensor {int(k)})"
        for i, (y, k) in enumerate(zip(labels, clean))
    ]
    sensors = [f"sensor {k}" for k in range(s)]
    views = [
        probs("SE gate", "logits gated"),
        probs("no gate (control)", "logits control"),
        bars("mean SE gate per sensor", "gate", sensors, per_canvas=True),
    ]
    return make_model_explorer(
        exported,
        images[:, :, 0],
        names,
        views,
        canvas_names=sensors,
        display=192,
        brush=1.0,
        caption="Draw a digit on any sensor (pick it below the drawing area), clear one, add "
        "noise or copy one to the next: the gated head and the control run in this page.",
    )
