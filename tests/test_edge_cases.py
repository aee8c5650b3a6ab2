"""Edge cases that must work (issue: every bad input gets a clear error, every edge case works).

Generic sweeps over every public callable of ``_contracts.SPECS`` (float16 and bfloat16 inputs,
an empty batch, a batch of one) and the specific cases a probe found broken: BatchNorm networks
trained with a last batch of one, distances in half precision, rollout of identity maps, external
attention on large inputs and fully masked samples, the views on bfloat16 input, non-finite bars
and markup in strings.
"""

from __future__ import annotations

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
