"""Tests of visual_attention.labs.channel: the four-band task, the gated network, its controls and
the page model."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.channel import ChannelGate, EfficientChannelAttention, SqueezeExcitation
from visual_attention.labs.channel import (
    GATES,
    NUM_SENSORS,
    GatedNet,
    PageModel,
    SensorData,
    StaticGate,
    channel_gates,
    correct,
    make_gate,
    model_explorer,
    run_seeds,
    seed_data,
    sensor_maps,
    sensor_task,
)
from visual_attention.labs.digits import DigitCNN, digits_at, load_digit_cnn


def test_sensor_task_has_one_clean_band_whose_digit_is_the_label():
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


def test_sensor_maps_stack_every_bands_feature_map_in_band_order():
    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    x = torch.rand(3, 2, 1, 16, 16)
    f = sensor_maps(encoder, x, batch_size=4)  # 6 images in batches of 4 and 2
    assert f.shape == (3, 2 * 64, 4, 4)
    with torch.no_grad():
        band1 = encoder.feature_map(x[2, 1:2])[0]
    torch.testing.assert_close(f[2, 64:], band1)  # channels 64..127 are band 1's detectors
    with pytest.raises(ValueError, match=r"images must be 5-d \(N, S, C, H, W\)"):
        sensor_maps(encoder, torch.rand(3, 1, 16, 16))
    with pytest.raises(ValueError, match="encoder must be"):
        sensor_maps(None, x)


def test_make_gate_gives_the_chapters_modules_and_the_controls():
    kinds = [type(make_gate(g, 16, rd_channels=4)) for g in GATES]
    assert kinds == [
        SqueezeExcitation,
        EfficientChannelAttention,
        ChannelGate,
        StaticGate,
        torch.nn.Identity,
    ]
    with pytest.raises(ValueError, match="gate must be one of"):
        make_gate("cbam", 16)


def test_static_gate_is_the_same_for_every_input_and_records_it():
    gate = StaticGate(5)
    with torch.no_grad():
        gate.logit.copy_(torch.tensor([-2.0, -1, 0, 1, 2]))
    x = torch.rand(3, 5, 2, 2)
    with record_attention(gate) as maps:
        out = gate(x)
    g = torch.sigmoid(gate.logit)
    torch.testing.assert_close(out, x * g[None, :, None, None])
    assert maps[""].shape == (3, 5) and torch.equal(maps[""][0], maps[""][2])
    with pytest.raises(ValueError, match=r"x must be"):
        gate(torch.rand(3, 4, 2, 2))


@pytest.mark.parametrize("gate", GATES)
def test_gated_net_applies_the_gate_before_the_mixing_convolution(gate):
    torch.manual_seed(0)
    net = GatedNet(gate, channels=12, width=6, rd_channels=3, num_classes=4).eval()
    x = torch.rand(5, 12, 4, 4)
    out = net(x)
    assert out.shape == (5, 4)
    gated = net.gate(x)
    h = torch.relu(net.conv(torch.relu(net.mix(gated))))
    torch.testing.assert_close(out, net.fc(h.mean(dim=(2, 3))))
    if gate is None:
        with pytest.raises(ValueError, match="no gate"):
            channel_gates(net, x)
    else:
        g = channel_gates(net, x)
        assert g.shape == (5, 12) and bool(((g > 0) & (g < 1)).all())
        torch.testing.assert_close(gated, x * g[:, :, None, None])


def test_only_the_gates_that_look_at_the_input_differ_between_inputs():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 3, 3) * torch.tensor([1.0, -3.0, 2.0, 0.5])[:, None, None, None]
    for gate in ("se", "eca", "cbam-channel"):
        g = channel_gates(GatedNet(gate, channels=8, width=4, rd_channels=4), x)
        assert not torch.allclose(g[0], g[1])
    g = channel_gates(GatedNet("static", channels=8, width=4), x)
    assert torch.equal(g[0], g[3])


def test_run_seeds_draws_data_per_seed_and_correct_scores_examples():
    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    data = [seed_data(encoder, s, n_train=16, n_test=8) for s in (0, 1)]
    assert isinstance(data[0], SensorData) and data[0].train[0].shape == (16, 256, 4, 4)
    assert not torch.equal(data[0].train[0], data[1].train[0])  # each seed its own draw
    accs, models, hists = run_seeds(data, "se", width=4, seeds=(0, 1), epochs=1)
    assert len(accs) == len(hists) == len(models) == 2 and not models[0].training
    scores = correct(models[1], *data[1].test)
    assert scores.shape == (8,) and float(scores.mean()) == pytest.approx(accs[1])
    with pytest.raises(ValueError, match="data must hold a draw for every seed"):
        run_seeds(data, "se", seeds=(0, 2), epochs=1)


def test_the_page_model_is_the_trained_networks_on_the_encoders_maps():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    torch.manual_seed(0)
    images, labels, clean = sensor_task(5, "test", seed=1)
    encoder = load_digit_cnn()
    f = sensor_maps(encoder, images)
    gated, control = GatedNet("se").eval(), GatedNet("static", width=40).eval()
    shown = [3, 70, 130, 255]
    model = PageModel(gated, control, shown, encoder)
    logits, per_band, gate_shown, plain = model(images)
    gates = channel_gates(gated, f)
    torch.testing.assert_close(logits, gated(f))
    torch.testing.assert_close(per_band, gates.reshape(5, 4, 64).mean(-1))
    torch.testing.assert_close(gate_shown, gates[:, shown])
    torch.testing.assert_close(plain, control(f))
    widget = model_explorer(model, images, labels, clean)
    assert widget.canvases == 4 and widget.canvas == [16, 16]
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "bars", "bars"]
    assert widget.views[3]["labels"][1] == "band 1, channel 6"
    assert f"clean: band {int(clean[0])}" in widget.example_names[0]
    out = run_graph(BrowserModel(widget.graph, widget.weights), images[2:3])
    torch.testing.assert_close(
        torch.from_numpy(out["gate shown"]), gate_shown[2:3], atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="gated must be a GatedNet with a gate"):
        PageModel(GatedNet(None), control, shown, encoder)
    with pytest.raises(ValueError, match="shown must list channel indices"):
        PageModel(gated, control, [256], encoder)
