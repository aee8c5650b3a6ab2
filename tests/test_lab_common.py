"""Tests of visual_attention.labs.common, the floor the chapter labs share: the frozen encoder's
features, their standardisation, the page models' base class, attention over a data set and peak
memory."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention import record_attention
from visual_attention.labs import common
from visual_attention.labs.digits import DigitCNN


def test_encode_is_the_frozen_feature_map_in_batches():
    x = torch.rand(5, 1, 16, 24, generator=gen(1))
    f = common.encode(x, batch_size=2)
    assert f.shape == (5, 64, 4, 6) and not f.requires_grad
    from visual_attention.labs.digits import load_digit_cnn

    with torch.no_grad():
        torch.testing.assert_close(f, load_digit_cnn().feature_map(x))
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\) with C = 1"):
        common.encode(torch.rand(2, 3, 8, 8))


def test_standardize_uses_the_training_statistics_per_channel():
    g = gen(4)
    a, b = 3 + 2 * torch.rand(6, 4, 3, 3, generator=g), torch.rand(2, 4, 3, 3, generator=g)
    sa, sb = common.standardize(a, b)
    torch.testing.assert_close(sa.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(sa.std(dim=(0, 2, 3)), torch.ones(4))
    mean, std = a.mean(dim=(0, 2, 3), keepdim=True), a.std(dim=(0, 2, 3), keepdim=True)
    torch.testing.assert_close(sb, (b - mean) / std)
    with pytest.raises(ValueError, match=r"others\[0\] must be \(N, C, h, w\) with C = 4"):
        common.standardize(a, torch.rand(2, 3, 3, 3))


def test_token_features_pool_the_encoders_map():
    class Encoder(torch.nn.Module):
        def feature_map(self, x):
            return x.repeat(1, 2, 1, 1)

    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    f = common.token_features(x, Encoder(), batch_size=1)
    assert f.shape == (2, 2, 8, 8)
    assert f[1, 1, 2, 3] == x[1, 0, 4:6, 6:8].mean()
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\) with C = 1"):
        common.token_features(torch.zeros(1, 3, 8, 8), Encoder())


def _tiny_model():
    from visual_attention.resnet import resnet

    torch.manual_seed(0)
    return resnet(18, num_classes=10, attention="se", width=4, in_channels=1, small_input=True)


def test_collect_attention_matches_one_pass_and_applies_reduce_and_names():
    model = _tiny_model().eval()
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad(), record_attention(model) as maps:
        model(x)
    model.train()
    every = common.collect_attention(model, x, batch_size=2)  # 3 batches of 2, 2, 1
    assert list(every) == list(maps) and model.training
    for name, w in maps.items():
        torch.testing.assert_close(every[name], w)
    means = common.collect_attention(
        model, x, batch_size=3, names=["layer2.0.attn"], reduce=lambda w: w.mean(-1)
    )
    assert list(means) == ["layer2.0.attn"]
    torch.testing.assert_close(means["layer2.0.attn"], maps["layer2.0.attn"].mean(-1))


def test_peak_memory_counts_what_a_function_allocates():
    n = 256 * 1024  # float32: 1 MiB
    assert common.peak_memory(lambda: torch.ones(n)) >= 4 * n
    x = torch.ones(n)
    assert common.peak_memory(lambda: x.add_(1)) < 4 * n  # in place: nothing new


def test_pooled_features_average_every_image_of_a_stack():
    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    x = torch.rand(3, 4, 1, 16, 16, generator=gen(2))
    f = common.pooled_features(encoder, x, batch_size=5)
    assert f.shape == (3, 4, 64) and not f.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(f[2, 1], encoder.feature_map(x[2, 1:2]).mean(dim=(2, 3))[0])
    with pytest.raises(ValueError, match=r"clips must be \(N, T, C, H, W\) with C = 1"):
        common.pooled_features(
            encoder, torch.rand(2, 3, 2, 16, 16), name="clips", layout="(N, T, C, H, W)"
        )


def test_encoded_heads_hold_the_heads_and_the_training_statistics():
    torch.manual_seed(0)
    raw = torch.rand(5, 64, 3, 3, generator=gen(3))
    heads = {"a": torch.nn.Linear(2, 2), "b": torch.nn.Linear(2, 2)}
    model = common.EncodedHeads(heads, torch.nn.Linear, raw, DigitCNN())
    assert model.names == ["a", "b"] and not any(h.training for h in model.heads)
    torch.testing.assert_close(model.standardized(raw), common.standardize(raw)[0])
    with pytest.raises(ValueError, match=r"heads\['a'\] must be a Linear"):
        common.EncodedHeads({"a": torch.nn.ReLU()}, torch.nn.Linear, raw, DigitCNN())


def test_like_module_casts_to_the_modules_dtype():
    x = torch.rand(2, 3).half()
    assert common.like_module(x, torch.nn.Linear(3, 2)).dtype == torch.float32
    assert common.like_module(x, torch.nn.ReLU()) is x  # no parameters: unchanged


def test_code_fingerprint_ignores_docstrings_and_comments_but_not_code():
    from visual_attention.labs.common import _without_docstrings, code_fingerprint

    a = 'def f():\n    """a"""\n    return 1  # one\n'
    b = 'def f():\n    """b, rewrapped\n    over two lines"""\n    return 1\n'
    assert _without_docstrings(a) == _without_docstrings(b)
    assert _without_docstrings(a) != _without_docstrings(a.replace("return 1", "return 2"))
    fp = code_fingerprint([code_fingerprint], {"epochs": 1})
    assert fp == code_fingerprint([code_fingerprint], {"epochs": 1}) and len(fp) == 16
    assert fp != code_fingerprint([code_fingerprint], {"epochs": 2})


def test_save_runs_and_load_runs_round_trip(tmp_path):
    from visual_attention.labs.common import load_runs, save_runs
    from visual_attention.train import History, SeedRuns

    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    runs = {"lin": SeedRuns([0.5, 0.75], models, [History(test_accuracy=[0.25, a]) for a in (0.5, 0.75)])}
    path = save_runs(tmp_path / "w" / "runs.pt", runs, {"epochs": 2}, "abc")
    loaded, meta = load_runs(path, lambda name: torch.nn.Linear(3, 2))
    assert meta == {"recipe": {"epochs": 2}, "fingerprint": "abc"}
    assert loaded["lin"].accuracies == [0.5, 0.75]
    assert loaded["lin"].histories[1].test_accuracy == [0.25, 0.75]
    x = torch.randn(4, 3)
    for a, b in zip(models, loaded["lin"].models):
        assert torch.equal(a(x), b(x)) and not b.training
    with pytest.raises(ValueError, match="weights file of the Linear heads"):
        load_runs(path, lambda name: torch.nn.Linear(5, 2), "Linear heads")  # other shapes
