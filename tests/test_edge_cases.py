"""Edge cases that must work (issue: every bad input gets a clear error, every edge case works).

Generic sweeps over every public callable of ``_contracts.SPECS`` and ``_contracts_labs.LAB_SPECS``:
float16 and bfloat16 inputs (and modules), an empty batch, a batch of one, a batch of one in
training mode, one value per channel (``1 × 1`` maps, one token), half-precision data through a
float32 model (the frozen encoder, a trained head) and every list or tuple argument emptied; then
the specific cases probes found broken: BatchNorm networks trained with a last batch of one,
distances in half precision, rollout of identity maps, external attention on large inputs and
fully masked samples, the views on bfloat16 input, non-finite bars, markup in strings, and the
nine edge cases and five unclear errors of issue 25. (Non-callables for callables, non-Axes for
``ax`` and missing files for paths are bad arguments: ``_contracts.generic_kind``.)
"""

from __future__ import annotations

import inspect
import math
import pathlib
import re
import traceback
import warnings

import numpy as np
import pytest
import torch

from _contracts import SPECS
from _contracts_labs import LAB_SPECS
from _helpers import gen
from visual_attention import record_attention
from visual_attention.memory import ExternalAttention
from visual_attention.multi_head import attention_rollout, class_token_rollout
from visual_attention.self_attention import mean_attention_distance
from visual_attention.train import fit
from visual_attention.views.viz import (
    attention_overlay_html,
    bars_html,
    colorize,
    photo_style,
    plot_attention,
    to_numpy_image,
)

PACKAGE = pathlib.Path(__import__("visual_attention").__file__).parent.resolve()


def _finite(out: object) -> bool:
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, (list, tuple)):
        return all(_finite(o) for o in out)
    if isinstance(out, dict):
        return all(_finite(o) for o in out.values())
    return True


def _cast(value: object, dtype: torch.dtype) -> object:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, torch.nn.Module):
        return value.to(dtype)
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(t, torch.Tensor) for t in value)
    ):
        items = [_cast(t, dtype) for t in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def _is_float_call(spec) -> bool:
    target, kwargs = spec.call()
    module = getattr(target, "__self__", None)
    return isinstance(module, torch.nn.Module) or any(
        isinstance(_cast(v, torch.float16), torch.Tensor)
        and getattr(v, "is_floating_point", lambda: False)()
        for v in kwargs.values()
    )


ALL_SPECS = SPECS + LAB_SPECS  # the paper modules' and the chapter labs' specs
HALF_SPECS = [s for s in ALL_SPECS if _is_float_call(s)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("spec", HALF_SPECS, ids=lambda s: s.name)
def test_every_callable_works_in_half_precision(spec, dtype):
    """Inputs (and modules) in float16 or bfloat16 give finite outputs, never a crash."""
    target, kwargs = spec.call()
    module = getattr(target, "__self__", None)
    if isinstance(module, torch.nn.Module):
        module.to(dtype)
    kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = target(**kwargs)
    assert _finite(out), f"{spec.name} in {dtype}: non-finite output"


def _batched(spec) -> bool:
    """Specs whose tensor arguments all share a leading batch dimension of 2 or more."""
    _, kwargs = spec.call()
    tensors = [v for v in kwargs.values() if isinstance(v, torch.Tensor) and v.ndim >= 1]
    return bool(tensors) and len({t.shape[0] for t in tensors}) == 1 and tensors[0].shape[0] > 1


BATCHED = [s for s in ALL_SPECS if _batched(s)]


@pytest.mark.parametrize("size", [0, 1])
@pytest.mark.parametrize("spec", BATCHED, ids=lambda s: s.name)
def test_an_empty_batch_and_a_batch_of_one_work_or_are_refused_clearly(spec, size):
    """The leading dimension cut to 0 or 1: a result, or the package's own ValueError."""
    target, kwargs = spec.call()
    kwargs = {
        k: v[:size] if isinstance(v, torch.Tensor) and v.ndim else v for k, v in kwargs.items()
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = target(**kwargs)
    except ValueError as error:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        assert pathlib.Path(frame.filename).resolve().is_relative_to(PACKAGE), str(error)
        return
    assert _finite(out)
    if size == 0 and isinstance(out, torch.Tensor) and out.ndim:
        assert out.shape[0] == 0, f"{spec.name}: an empty batch gave {tuple(out.shape)}"


def _works_or_is_refused_clearly(spec, target, kwargs, what: str) -> None:
    """``target(**kwargs)`` gives a finite result, or the package's own ValueError/TypeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = target(**kwargs)
    except (ValueError, TypeError) as error:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        ours = pathlib.Path(frame.filename).resolve().is_relative_to(PACKAGE)
        assert ours, f"{spec.name} with {what}: {type(error).__name__} from {frame.filename}: {error}"
        return
    except Exception as error:  # anything else is a broken edge case
        raise AssertionError(f"{spec.name} with {what}: {type(error).__name__}: {error}") from error
    assert _finite(out), f"{spec.name} with {what}: non-finite output"


FORWARDS = [s for s in ALL_SPECS if isinstance(getattr(s.call()[0], "__self__", None), torch.nn.Module)]


@pytest.mark.parametrize("spec", FORWARDS, ids=lambda s: s.name)
def test_a_batch_of_one_in_training_mode_works(spec):
    """Every network in training mode on a batch of one: BatchNorm has one value per channel
    where the map is 1 × 1 (blocks.BatchNorm1d/2d normalise it with the running statistics)."""
    target, kwargs = spec.call()
    target.__self__.train()
    kwargs = {k: v[:1] if isinstance(v, torch.Tensor) and v.ndim else v for k, v in kwargs.items()}
    _works_or_is_refused_clearly(spec, target, kwargs, "a batch of one in training mode")


def _one_value_per_channel(t: torch.Tensor) -> torch.Tensor:
    """A batch of one with every dimension but the channels cut to 1: ``(1, C, 1, 1)`` for maps
    ``(B, C, H, W)``, ``(1, 1, C)`` for tokens or branches ``(B, N, C)``."""
    if t.ndim == 3:
        return t[:1, :1]
    return t[:1, :, :1, :1]


def _has_maps(spec) -> bool:
    _, kwargs = spec.call()
    return any(
        isinstance(v, torch.Tensor) and v.is_floating_point() and v.ndim in (3, 4)
        for v in kwargs.values()
    )


ONE_VALUE = [s for s in ALL_SPECS if _has_maps(s)]


@pytest.mark.parametrize("spec", ONE_VALUE, ids=lambda s: s.name)
def test_one_value_per_channel_works_or_is_refused_clearly(spec):
    """Feature maps of one ``1 × 1`` map (or one token), networks in training mode: a
    standardisation has no spread to estimate, a batch norm no batch statistics; the result is
    finite, or the package says what the input lacks."""
    target, kwargs = spec.call()
    module = getattr(target, "__self__", None)
    if isinstance(module, torch.nn.Module):
        module.train()
    kwargs = {
        k: _one_value_per_channel(v)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.ndim in (3, 4)
        else v
        for k, v in kwargs.items()
    }
    _works_or_is_refused_clearly(spec, target, kwargs, "one value per channel")


def _runs_a_float32_model(spec) -> bool:
    """Calls that run a model they are given (an argument that is a module, or ``encoder``, whose
    default is the frozen digit encoder) or forward passes of a model around the frozen encoder:
    their inputs may come in half precision while the model stays float32."""
    from visual_attention.labs.digits import DigitCNN

    target, kwargs = spec.call()
    if not any(isinstance(_cast(v, torch.float16), torch.Tensor) for v in kwargs.values()) and not any(
        isinstance(v, (list, tuple)) and any(isinstance(t, torch.Tensor) for t in v) for v in kwargs.values()
    ):
        return False
    module = getattr(target, "__self__", None)
    if isinstance(module, torch.nn.Module):
        return any(isinstance(m, DigitCNN) for m in module.modules())
    given = any(isinstance(v, torch.nn.Module) for v in kwargs.values())
    return given or "encoder" in inspect.signature(target).parameters


def _cast_data(value: object, dtype: torch.dtype) -> object:
    """Floating tensors (alone or in a tuple such as ``(x, y)``) in ``dtype``; modules unchanged."""
    if isinstance(value, torch.nn.Module):
        return value
    return _cast(value, dtype)


THROUGH_FLOAT32 = [s for s in ALL_SPECS if _runs_a_float32_model(s)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("spec", THROUGH_FLOAT32, ids=lambda s: s.name)
def test_half_precision_inputs_through_a_float32_model(spec, dtype):
    """Half-precision data through a float32 model (the frozen encoder, a trained head): the
    model reads it in its own precision."""
    target, kwargs = spec.call()
    kwargs = {k: _cast_data(v, dtype) for k, v in kwargs.items()}
    _works_or_is_refused_clearly(spec, target, kwargs, f"{dtype} inputs through a float32 model")


def _sequences(spec) -> list[str]:
    _, kwargs = spec.call()
    return [
        k
        for k, v in kwargs.items()
        if isinstance(v, (list, tuple))
        and not hasattr(v, "_fields")
        and v
        and not any(isinstance(t, torch.Tensor) for t in v)
    ]


EMPTY = [(s, k) for s in ALL_SPECS for k in _sequences(s)]


@pytest.mark.parametrize(("spec", "name"), EMPTY, ids=[f"{s.name}-{k}" for s, k in EMPTY])
def test_an_empty_sequence_works_or_is_refused_clearly(spec, name):
    """Every list or tuple argument emptied (no shifts, no seeds, no sizes, no names …)."""
    target, kwargs = spec.call()
    kwargs[name] = type(kwargs[name])()
    _works_or_is_refused_clearly(spec, target, kwargs, f"{name} empty")


def test_fit_trains_a_batchnorm_network_whose_last_batch_holds_one_sample():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 3),
    )
    x = torch.randn(9, 1, 4, 4, generator=gen(0))
    y = torch.arange(9) % 3
    history = fit(model, (x, y), epochs=2, batch_size=4, progress=False)  # batches 4 + 4 + 1
    assert len(history.loss) == 2 and all(math.isfinite(v) for v in history.loss)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_mean_attention_distance_in_half_precision(dtype):
    w = torch.softmax(torch.randn(2, 3, 16, 16, generator=gen(1)), -1)
    d = mean_attention_distance(w.to(dtype), (4, 4))
    assert d.dtype == dtype
    torch.testing.assert_close(d.float(), mean_attention_distance(w, (4, 4)), atol=0.05, rtol=0.02)


def test_class_token_rollout_of_identity_maps_is_finite():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.equal(attention_rollout([eye, eye])[0], torch.eye(5))
    cls = class_token_rollout([eye, eye], (2, 2))  # the class token only ever attends to itself
    assert torch.isfinite(cls).all() and (cls == 0).all()
    near = 0.999 * eye + 0.001 / 5
    cls = class_token_rollout([near], (2, 2))
    torch.testing.assert_close(cls.sum((-2, -1)), torch.ones(2))


def test_external_attention_rows_sum_to_one_for_large_inputs():
    torch.manual_seed(0)
    ea = ExternalAttention(8, 16)
    with record_attention(ea) as maps:
        out = ea(torch.randn(2, 50, 8, generator=gen(2)) * 100)
    torch.testing.assert_close(maps[""].sum(-1), torch.ones(2, 50))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_external_attention_with_a_fully_masked_sample(dtype):
    torch.manual_seed(0)
    ea = ExternalAttention(8, 16).to(dtype)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[0, 10:] = False
    mask[1] = False  # nothing valid in sample 1
    with record_attention(ea) as maps:
        out = ea(torch.randn(2, 50, 8, generator=gen(3)).to(dtype), mask)
    w = maps[""].float()
    assert torch.isfinite(out).all()
    assert (w[1] == 0).all() and (w[0, 10:] == 0).all()
    torch.testing.assert_close(w[0, :10].sum(-1), torch.ones(10), atol=8e-3, rtol=0)


def test_external_attention_gradients_stay_finite_with_a_fully_masked_sample():
    ea = ExternalAttention(8, 4).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=gen(4), requires_grad=True)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    ea(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ea.parameters())


def test_the_views_take_bfloat16_input():
    image = torch.rand(3, 8, 8, generator=gen(5)).bfloat16()
    weights = torch.rand(4, 4, generator=gen(6)).bfloat16()
    assert to_numpy_image(image).dtype == np.uint8
    assert photo_style(image)[0].startswith("va-photo-")
    assert colorize(weights).shape == (4, 4, 4)
    assert "<img" in attention_overlay_html("c", weights, (40, 40), query=(1, 1))
    assert 'data-value="0.5000"' in bars_html(torch.tensor([0.5, -0.25]).bfloat16(), ["a", "b"])
    ax = plot_attention(image, weights, query=(0, 0))
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_bars_show_non_finite_values_as_such():
    page = bars_html([math.nan, math.inf, -math.inf, 0.5], ["n", "p", "m", "x"])
    widths = re.findall(r"width:([^%]*)%", page)
    assert all(math.isfinite(float(w)) for w in widths), widths
    assert 'data-value="nan"' in page and 'data-value="inf"' in page and "-inf" in page
    assert "nan%" not in page and "inf%" not in page


def test_strings_that_reach_html_are_escaped_or_refused():
    with pytest.raises(ValueError, match="css_class must be a CSS class name"):
        attention_overlay_html('c" onmouseover="x', torch.rand(2, 2), (20, 20))
    page = attention_overlay_html("c", torch.rand(2, 2), (20, 20), caption="<script>x</script>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    page = bars_html([1.0], ['<b onclick="x">'], title="<i>t</i>")
    assert "<b " not in page and "<i>" not in page


def test_the_nine_edge_cases_the_outside_probe_found_work():
    """Issue 25, part 5: what an outside probe of every public callable found broken."""
    from visual_attention.branch import SelectiveKernel
    from visual_attention.labs import branch, channel, common, efficient_attention, temporal
    from visual_attention.labs.digits import DigitCNN

    torch.manual_seed(0)
    for net, x in ((SelectiveKernel(8).train(), torch.randn(1, 8, 6, 6)),
                   (branch.BranchNet("sk", 8, 4, 4, 3).train(), torch.randn(1, 8, 6, 6))):
        out = net(x)  # a batch of one in training mode: BatchNorm has one value per channel
        assert torch.isfinite(out).all()
    (f,) = common.standardize(torch.randn(1, 4, 1, 1))  # one 1 × 1 map: no spread
    assert torch.isfinite(f).all() and (f == 0).all()
    encoder = DigitCNN().eval()
    for dtype in (torch.float16, torch.bfloat16):  # half-precision images, float32 encoder
        assert torch.isfinite(channel.sensor_maps(encoder, torch.rand(2, 3, 1, 16, 16).to(dtype))).all()
        assert torch.isfinite(temporal.frame_features(encoder, torch.rand(2, 3, 1, 16, 16).to(dtype))).all()
    g = gen(7)
    q, k = [(torch.randint(0, 2, (2, n, 4), generator=g) * 200 - 100).half() for n in (3, 5)]
    far = efficient_attention.linear_vs_softmax(q, k, torch.randn(2, 5, 2).half(), temperature=0.1)
    assert all(math.isfinite(v) for v in far.values()), far


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit(torch.nn.Linear(2, 2), (torch.rand(4, 2), torch.zeros(4).long()), loss_fn=5),
         "loss_fn must be None or a callable (logits, labels) → loss, got int"),
        (lambda: plot_attention(torch.rand(3, 4, 4), torch.rand(2, 2), ax="x"),
         "ax must be a matplotlib Axes or None, got str"),
        (lambda: __import__("visual_attention.labs.local_attention").labs.local_attention.reach(2, 4, 2, shifts=[]),
         "shifts must be a non-empty sequence"),
        (lambda: __import__("visual_attention.labs.digits").labs.digits.load_digit_cnn("/nonexistent/digit_cnn.pt"),
         "path must name an existing weights file"),
        (lambda: __import__("visual_attention.labs.digits").labs.digits.DigitCNN(num_classes=0),
         "num_classes must be a positive integer, got 0"),
    ],
    ids=["fit-loss_fn", "plot_attention-ax", "reach-shifts", "load_digit_cnn-path", "DigitCNN-num_classes"],
)
def test_the_five_unclear_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
