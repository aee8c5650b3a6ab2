"""Tests of visual_attention.labs.channel: the sensor experiment, gate profiles and explorers."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.channel import SqueezeExcitation
from visual_attention.labs.channel import (
    NUM_SENSORS,
    SensorHead,
    SensorModel,
    gate_by_sensor,
    model_explorer,
    run_seeds,
    sensor_features,
    sensor_task,
)
from visual_attention.labs.digits import digits_at, load_digit_cnn


def test_sensor_task_has_one_clean_sensor_whose_digit_is_the_label():
    x, y, clean = sensor_task(6, "test", seed=0, clean_noise=0.0, noisy_noise=0.5)
    assert x.shape == (6, NUM_SENSORS, 1, 16, 16) and y.shape == clean.shape == (6,)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    digits, labels = digits_at(16, "test")
    for i in range(6):
        clean_image = x[i, int(clean[i])]
        match = (digits - clean_image).abs().flatten(1).amax(1) < 1e-6  # noise-free: exact
        assert match.any() and int(y[i]) in labels[match].tolist()
    again = sensor_task(6, "test", seed=0, clean_noise=0.0, noisy_noise=0.5)
    assert torch.equal(again[0], x)  # seeded
    with pytest.raises(ValueError, match="n must be"):
        sensor_task(0, "test", seed=0)


def test_sensor_features_batches_and_matches_one_pass():
    from visual_attention.labs.digits import DigitCNN

    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    x = torch.rand(3, 2, 1, 16, 16)
    f = sensor_features(encoder, x, batch_size=4)  # 6 images in batches of 4 and 2
    assert f.shape == (3, 2, 64)
    with torch.no_grad():
        one = encoder.feature_map(x[1, 0:1]).mean(dim=(2, 3))[0]
    torch.testing.assert_close(f[1, 0], one)
    with pytest.raises(ValueError, match=r"images must be 5-d \(N, S, C, H, W\)"):
        sensor_features(encoder, torch.rand(3, 1, 16, 16))


def test_sensor_head_gate_is_the_chapters_se_module_and_control_has_none():
    torch.manual_seed(0)
    gated, plain = SensorHead(3, 8, gate=True, rd_channels=4), SensorHead(3, 8, gate=False)
    assert isinstance(gated.gate, SqueezeExcitation) and plain.gate is None
    f = torch.rand(5, 3, 8)
    with record_attention(gated) as maps:
        out = gated(f)
    s = maps["gate"]  # (5, 24)
    assert s.shape == (5, 24) and out.shape == (5, 10)
    by_hand = gated.fc((f * s.reshape(5, 3, 8)).sum(1))
    torch.testing.assert_close(out, by_hand)
    torch.testing.assert_close(plain(f), plain.fc(f.sum(1)))
    torch.testing.assert_close(gate_by_sensor(gated, f), s.reshape(5, 3, 8).mean(-1))
    with pytest.raises(ValueError, match="no gate"):
        gate_by_sensor(plain, f)
    with pytest.raises(ValueError, match=r"f must be \(B, S, C\)"):
        gated(torch.rand(5, 4, 8))


def test_run_seeds_on_a_tiny_task():
    torch.manual_seed(0)
    f, y = torch.rand(16, 2, 8), torch.randint(10, (16,))
    accs, models, hists = run_seeds((f, y), (f, y), gate=True, seeds=(0, 1), epochs=1)
    assert len(accs) == len(hists) == len(models) == 2
    assert all(0 <= a <= 1 for a in accs) and not models[0].training


def test_the_page_model_is_the_trained_heads_on_the_encoders_features():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    torch.manual_seed(0)
    images, labels, clean = sensor_task(5, "test", seed=1)
    encoder = load_digit_cnn()
    f = sensor_features(encoder, images)
    gated, control = SensorHead(gate=True).eval(), SensorHead(gate=False).eval()
    model = SensorModel(gated, control, encoder)
    logits, gate, plain = model(images)
    torch.testing.assert_close(logits, gated(f))
    torch.testing.assert_close(gate, gate_by_sensor(gated, f))
    torch.testing.assert_close(plain, control(f))
    widget = model_explorer(model, images, labels, clean)
    assert widget.canvases == 4 and widget.canvas == [16, 16]
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "bars"]
    assert widget.views[2]["per_canvas"] and f"clean: sensor {int(clean[0])}" in widget.example_names[0]
    out = run_graph(BrowserModel(widget.graph, widget.weights), images[2:3])
    torch.testing.assert_close(torch.from_numpy(out["gate"]), gate[2:3], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="gated must have the SE gate"):
        SensorModel(control, gated, encoder)

