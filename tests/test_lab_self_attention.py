"""Tests of visual_attention.labs.self_attention: the two-digit task at controlled distances, the
receptive field, the local and non-local networks, their measurements and explorers, and the
photo explorer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import gen, randomise
from visual_attention import record_attention
from visual_attention.labs import self_attention as lab
from visual_attention.labs.digits import digits_at, load_digit_cnn
from visual_attention.labs.self_attention import explorer
from visual_attention.self_attention import NonLocalBlock, position_self_attention
from visual_attention.train import evaluate


def test_pair_task_places_two_digits_and_labels_whether_they_match():
    x, y, cols = lab.pair_task(40, distances=(16, 48, 96), split="test", seed=3)
    x2, y2, cols2 = lab.pair_task(40, distances=(16, 48, 96), split="test", seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(cols, cols2)
    assert x.shape == (40, 1, 16, 128) and y.dtype == cols.dtype == torch.int64
    assert y.sum().item() == 20 and 0 <= x.min() and x.max() <= 1
    d = cols[:, 1] - cols[:, 0]
    assert set(d.tolist()) <= {16, 48, 96} and (cols[:, 0] >= 0).all()
    assert (cols[:, 1] + 16 <= 128).all()
    # by hand: the nearest test digit to each crop is a digit of the label's relation
    digits, classes = digits_at(16, "test")
    flat = digits.flatten(1)
    for i in range(40):
        found = []
        for c in cols[i].tolist():
            crop = x[i, 0, :, c : c + 16].flatten()
            found.append(int(classes[((flat - crop) ** 2).sum(-1).argmin()]))
        assert (found[0] == found[1]) == bool(y[i])
    with pytest.raises(ValueError, match=r"distances must lie in \[16, 112\], got \[8\]"):
        lab.pair_task(4, distances=(8,))
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        lab.pair_task(0)


def test_strip_features_average_the_encoder_map_over_rows():
    x, _, _ = lab.pair_task(3, seed=0)
    encoder = randomise(load_digit_cnn(), seed=1)
    f = lab.strip_features(x, encoder)
    assert f.shape == (3, 64, 1, 32)
    with torch.no_grad():
        torch.testing.assert_close(f, encoder.feature_map(x).mean(dim=2, keepdim=True))
    with pytest.raises(ValueError, match="images must be"):
        lab.strip_features(torch.rand(2, 1, 8, 128))


@pytest.mark.parametrize(
    "layers",
    [
        ((3, 1),),
        ((3, 1),) * 3,
        lab.ENCODER_LAYERS,
        lab.ENCODER_LAYERS + ((9, 1),),
        ((5, 2), (3, 2)),
    ],
)
def test_receptive_field_matches_the_support_of_a_gradient(layers):
    convs = [nn.Conv1d(1, 1, k, stride=s, bias=False) for k, s in layers]
    for conv in convs:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.ones(1, 1, 200, requires_grad=True)
    y = nn.Sequential(*convs)(x)
    y[0, 0, y.shape[-1] // 2].backward()
    support = torch.nonzero(x.grad[0, 0])[:, 0]
    assert lab.receptive_field(layers) == int(support[-1] - support[0] + 1)
    assert lab.receptive_field(lab.ENCODER_LAYERS + ((lab.KERNEL, 1),)) == 50


def test_local_block_starts_as_identity_and_sees_only_its_window():
    block = lab.LocalBlock(4, kernel=5)
    x = torch.randn(2, 4, 1, 20, generator=gen(0))
    assert torch.equal(block.eval()(x), x)
    randomise(block, seed=2)
    y = block(x)
    x2 = x.clone()
    x2[..., 10] += 5.0  # column 10 reaches columns 8 … 12 only
    changed = (block(x2) - y).abs().amax(dim=(0, 1, 2)) > 1e-6
    assert torch.nonzero(changed)[:, 0].tolist() == [8, 9, 10, 11, 12]


def test_pair_net_modes_shapes_and_recorded_weights():
    x = torch.randn(3, 8, 1, 32, generator=gen(1))
    local = lab.PairNet("local", channels=8, kernel=3, hidden=5)
    assert local(x).shape == (3, 2) and isinstance(local.mix, lab.LocalBlock)
    net = lab.PairNet("non-local", channels=8, hidden=5)
    assert isinstance(net.mix, NonLocalBlock)
    with record_attention(net) as maps:
        assert net(x).shape == (3, 2)
    assert maps["mix"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="mode must be one of"):
        lab.PairNet("global")


def test_run_seeds_and_accuracy_by_distance():
    x, y, cols = lab.pair_task(24, distances=(16, 96), seed=1)
    f = torch.randn(24, 8, 1, 32, generator=gen(2))
    acc, nets, hist = lab.run_seeds("local", (f, y), (f, y), seeds=(0, 1, 2), epochs=2)
    assert len(acc) == len(nets) == len(hist) == 3 and not nets[0].training
    assert acc[0] == hist[0].test_accuracy[-1]
    by_d = lab.accuracy_by_distance(nets[0], f, y, cols)
    d = cols[:, 1] - cols[:, 0]
    assert list(by_d) == [16, 96]
    for v, a in by_d.items():
        assert a == evaluate(nets[0], f[d == v], y[d == v])
    with pytest.raises(ValueError, match=r"columns must be an integer \(N=24, 2\) tensor"):
        lab.accuracy_by_distance(nets[0], f, y, cols.float())


def test_digit_columns_by_hand():
    inside = lab.digit_columns(torch.tensor([[0, 20], [2, 98]]))
    assert inside.shape == (2, 2, 32)
    assert torch.nonzero(inside[0, 0])[:, 0].tolist() == [0, 1, 2, 3]
    assert torch.nonzero(inside[0, 1])[:, 0].tolist() == [5, 6, 7, 8]
    assert torch.nonzero(inside[1, 0])[:, 0].tolist() == [1, 2, 3]
    assert torch.nonzero(inside[1, 1])[:, 0].tolist() == [25, 26, 27]


def test_attention_to_other_is_the_mass_on_the_second_digit():
    cols = torch.tensor([[0, 40], [10, 90]])
    f = torch.randn(2, 8, 1, 32, generator=gen(3))
    net = randomise(lab.PairNet("non-local", channels=8, hidden=4), seed=4)
    with torch.no_grad(), record_attention(net) as maps:
        net(f)
    a = maps["mix"]
    inside = lab.digit_columns(cols)
    for i in range(2):
        first, second = inside[i, 0], inside[i, 1]
        want = a[i][first][:, second].sum(-1).mean()
        torch.testing.assert_close(lab.attention_to_other(net, f, cols)[i], want)
    with pytest.raises(ValueError, match="must be a 'non-local' PairNet"):
        lab.attention_to_other(lab.PairNet("local", channels=8), f, cols)


def test_render_pair_keeps_the_noise_and_moves_the_second_digit():
    near, far = lab.render_pair(0, 1, 16), lab.render_pair(0, 1, 96)
    assert near.shape == far.shape == (1, 16, 128)
    digits, _ = digits_at(16, "test")
    # centred: the first digit starts at (128 − 16 − d) // 2
    noise = torch.randn(16, 128, generator=gen(0)) * 0.1
    left = (112 - 96) // 2
    torch.testing.assert_close(
        far[0, :, left : left + 16], (digits[0, 0] + noise[:, left : left + 16]).clamp(0, 1)
    )
    torch.testing.assert_close(near[0, :, :8], noise[:, :8].clamp(0, 1))  # left of both digits
    with pytest.raises(ValueError, match=r"distance must lie in \[16, 112\], got 120"):
        lab.render_pair(0, 1, 120)


def test_the_page_model_is_the_trained_networks_on_the_standardised_strip():
    from visual_attention.labs.common import standardize
    from visual_attention.labs.digits import DigitCNN
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=4)
    nets = {
        "non-local": randomise(lab.PairNet("non-local"), seed=5),
        "local": randomise(lab.PairNet("local"), seed=6),
    }
    x, y, _ = lab.pair_task(4, distances=(16, 96), split="test", seed=1)
    raw = lab.strip_features(x, encoder)
    f = standardize(raw, raw)[1]
    model = lab.StripModel(nets, raw, encoder)
    non_local, local, weights = model(x)
    torch.testing.assert_close(non_local, nets["non-local"](f))
    torch.testing.assert_close(local, nets["local"](f))
    with record_attention(nets["non-local"]) as maps:
        nets["non-local"](f)
    torch.testing.assert_close(weights[:, 0, 0], maps["mix"])
    widget = lab.model_explorer(model, x, y)
    assert widget.display_size == [80, 640] and widget.views[-1]["grid"] == [1, 32]
    replay = run_graph(BrowserModel(widget.graph, widget.weights), x[1:2])
    torch.testing.assert_close(
        torch.from_numpy(replay["weights"]), weights[1:2], atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match="exactly one 'non-local' net"):
        lab.StripModel({"local": nets["local"]}, raw, encoder)


def test_explorer_computes_position_self_attention_per_embedding():
    image = torch.rand(3, 16, 24, generator=gen(9))
    feats = torch.randn(3, 2, 3, generator=gen(10))
    emb = {"all": torch.eye(3), "first": torch.tensor([[1.0, 0, 0]])}
    box = explorer(
        image,
        feats,
        emb,
        ["a", "b", "c"],
        temperature=0.5,
        initial={"compare": "first", "row": 1, "column": 2},
    )
    assert box.layer == 1 and box.query == 5 and box.layer_names == ["all", "first"]
    for layer, e in enumerate(emb.values()):
        z = torch.einsum("dc,chw->dhw", e, feats)
        z = z / z.norm(dim=0, keepdim=True).clamp_min(1e-6)
        for t in (0.5, 0.07):
            y, a = position_self_attention(z[None], z[None], feats[None], scale=1 / t)
            for i in range(6):
                w, out = box.compute(layer=layer, query=i, temperature=t)
                torch.testing.assert_close(w, a[0, i], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(out, y[0].reshape(3, 6)[:, i], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"embeddings\['bad'\] must be \(D, C\) with C = 3"):
        explorer(image, feats, {"bad": torch.eye(2)}, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        explorer(image, feats[None], emb, ["a", "b", "c"])
    with pytest.raises(ValueError, match="feature_names has 2 entries for 3 channels"):
        explorer(image, feats, emb, ["a", "b"])


def test_pair_task_is_balanced_at_every_distance():
    _, y, cols = lab.pair_task(160, seed=5)
    d = cols[:, 1] - cols[:, 0]
    for v in lab.DISTANCES:
        assert (d == v).sum() == 20 and y[d == v].sum() == 10


def test_order_task_shows_one_repeated_class_and_labels_whether_the_leftmost_is_it():
    x, y, cols = lab.order_task(30, split="test", seed=4)
    x2, y2, cols2 = lab.order_task(30, split="test", seed=4)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(cols, cols2)
    assert x.shape == (30, 1, 16, 128) and cols.shape == (30, lab.ORDER_DIGITS)
    assert y.sum() == 15 and 0 <= x.min() and x.max() <= 1
    assert (cols[:, 1:] - cols[:, :-1] >= 16).all() and (cols[:, 0] >= 0).all()
    assert (cols[:, -1] + 16 <= 128).all()
    digits, classes = digits_at(16, "test")
    flat = digits.flatten(1)
    for i in range(30):  # by hand: the nearest test digit to each crop
        found = [
            int(classes[((flat - x[i, 0, :, c : c + 16].flatten()) ** 2).sum(-1).argmin()])
            for c in cols[i].tolist()
        ]
        assert len(set(found)) == lab.ORDER_DIGITS - 1  # one class twice, the others once
        assert (found.count(found[0]) == 2) == bool(y[i])
    with pytest.raises(ValueError, match=r"digits must lie in \[3, 8\], got 2"):
        lab.order_task(4, digits=2)


@pytest.mark.parametrize("dilations", [(1,), (1, 2), (1, 2, 4, 8), (3, 1)])
def test_dilated_block_starts_as_identity_and_reaches_its_receptive_field(dilations):
    block = lab.DilatedBlock(4, width=3, dilations=dilations)
    x = torch.randn(2, 4, 1, 50, generator=gen(5))
    assert torch.equal(block.eval()(x), x)
    randomise(block, seed=6)
    x2 = x.clone()
    x2[..., 25] += 5.0
    changed = torch.nonzero((block(x2) - block(x)).abs().amax(dim=(0, 1, 2)) > 1e-6)[:, 0]
    reach = lab.receptive_field([(3, 1, r) for r in dilations])
    assert changed.min() >= 25 - reach // 2 and changed.max() <= 25 + reach // 2
    assert changed.max() - changed.min() + 1 <= reach and 25 in changed.tolist()


def test_pool_mlp_ignores_where_things_are():
    net = randomise(lab.PoolMLP(8, hidden=5), seed=7).eval()
    x = torch.randn(3, 8, 1, 12, generator=gen(8))
    perm = torch.randperm(12, generator=gen(9))
    torch.testing.assert_close(net(x[..., perm]), net(x))
    assert net(x).shape == (3, 2)


def test_pair_net_positions_break_the_permutation_symmetry():
    x = torch.randn(3, 64, 1, 32, generator=gen(10))
    flip = x.flip(-1)
    plain = randomise(lab.PairNet("non-local"), seed=11).eval()
    torch.testing.assert_close(plain(flip), plain(x), atol=1e-5, rtol=1e-5)
    coded = lab.PairNet("non-local", positions=32)
    coded.load_state_dict({**plain.state_dict(), "position": coded.position})
    coded.eval()
    from visual_attention.multi_head import sinusoidal_position_embedding

    torch.testing.assert_close(coded.position[0, :, 0].T, sinusoidal_position_embedding(32, 64))
    assert not torch.allclose(coded(flip), coded(x), atol=1e-3)
    from visual_attention.train import count_parameters

    assert count_parameters(coded) == count_parameters(plain)  # the code is fixed
    with pytest.raises(ValueError, match="x must be"):
        coded(torch.randn(2, 64, 1, 16))


def test_make_model_and_run_seeds_draw_a_subset_per_seed():
    assert isinstance(lab.make_model("pool-mlp", 8), lab.PoolMLP)
    assert isinstance(lab.make_model("dilated", 8).mix, lab.DilatedBlock)
    assert lab.make_model("non-local", 8, positions=6).positions == 6
    with pytest.raises(ValueError, match="positions are for PairNet modes"):
        lab.make_model("pool-mlp", positions=4)
    f = torch.randn(20, 8, 1, 6, generator=gen(12))
    y = (torch.arange(20) % 2).long()
    runs = lab.run_seeds("pool-mlp", (f, y), (f, y), seeds=(0, 1, 2), epochs=1, subset=12)
    assert len(runs.accuracies) == 3
    with pytest.raises(ValueError, match=r"subset must be in \[1, 20\]"):
        lab.run_seeds("pool-mlp", (f, y), (f, y), subset=21)


def test_correct_by_example_is_the_share_of_seeds_right():
    f = torch.randn(10, 8, 1, 6, generator=gen(13))
    y = (torch.arange(10) % 2).long()
    nets = [randomise(lab.PoolMLP(8, hidden=4), seed=s).eval() for s in (1, 2, 3)]
    want = torch.stack([(n(f).argmax(-1) == y).float() for n in nets]).mean(0)
    torch.testing.assert_close(lab.correct_by_example(nets, f, y), want)
    with pytest.raises(ValueError, match="nets must be a non-empty list"):
        lab.correct_by_example([], f, y)


@pytest.mark.parametrize(
    "layers", [((3, 1, 2),), ((3, 1, 1), (3, 1, 2), (3, 1, 4)), ((2, 2, 1), (3, 1, 3))]
)
def test_receptive_field_with_dilation_matches_the_support_of_a_gradient(layers):
    convs = [nn.Conv1d(1, 1, k, stride=s, dilation=r, bias=False) for k, s, r in layers]
    for conv in convs:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.ones(1, 1, 200, requires_grad=True)
    y = nn.Sequential(*convs)(x)
    y[0, 0, y.shape[-1] // 2].backward()
    support = torch.nonzero(x.grad[0, 0])[:, 0]
    assert lab.receptive_field(layers) == int(support[-1] - support[0] + 1)


def test_the_stored_networks_come_from_this_code_and_recipe():
    saved = torch.load(lab.SELF_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.self_fingerprint(), (
        "the self-attention networks' code or recipe changed since the weights were trained: "
        "run make weights"
    )
    assert saved["recipe"] == dict(lab.SELF_RECIPE) and list(saved["models"]) == list(lab.SELF_MODELS)
    runs = lab.load_self_models()
    for run in runs.values():
        assert len(run.models) == len(lab.SELF_RECIPE["seeds"]) and not run.models[0].training
        assert len(run.histories[0].test_accuracy) == lab.SELF_RECIPE["epochs"]
    # what the chapter claims of them, with margins: non-local and pool + MLP both solve "same
    # digit?"; with positions the non-local block reads order, without them it and pooling cannot
    low = {n: min(r.accuracies) for n, r in runs.items()}
    high = {n: max(r.accuracies) for n, r in runs.items()}
    assert low["non-local"] > 0.85 and low["pool-mlp"] > 0.85
    assert low["non-local + positions"] > 0.72 and low["dilated convolution"] > 0.65
    assert high["non-local, no positions"] < 0.6 and high["global max/mean pool + MLP"] < 0.6


def test_train_self_models_trains_what_the_file_holds(tmp_path):
    f, y = torch.randn(8, 64, 1, 32), torch.arange(8) % 2
    tasks = {"order": ((f, y), (f[:4], y[:4]))}
    runs = lab.train_self_models(tasks, names=["dilated convolution"], seeds=(0,), epochs=1)
    assert list(runs) == ["dilated convolution"]
    with pytest.raises(ValueError, match="tasks"):
        lab.train_self_models(tasks, names=["non-local"], seeds=(0,), epochs=1)
    with pytest.raises(ValueError, match="names"):
        lab.train_self_models(tasks, names="local")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the self-attention networks"):
        lab.load_self_models(other)
