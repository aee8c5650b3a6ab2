"""Tests of visual_attention.labs.hierarchical: the flagged-panel task, the two heads, their
weights, Swin's receptive fields and the page model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import gen, randomise
from visual_attention import hierarchical as hi
from visual_attention.core import record_attention
from visual_attention.labs import hierarchical as lab
from visual_attention.labs.digits import DigitCNN, digits_at


def test_flagged_panels_shapes_determinism_and_validation():
    x, y, flagged = lab.flagged_panels(6, "test", seed=3)
    assert x.shape == (6, 1, 64, 64) and y.shape == flagged.shape == (6,)
    assert y.dtype == flagged.dtype == torch.int64 and 0 <= x.min() and x.max() <= 1
    assert ((flagged >= 0) & (flagged < 4)).all()
    x2, y2, f2 = lab.flagged_panels(6, "test", seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(flagged, f2)
    assert not torch.equal(x, lab.flagged_panels(6, "test", seed=4)[0])
    with pytest.raises(ValueError, match="n must be a positive integer"):
        lab.flagged_panels(0)
    with pytest.raises(ValueError, match="split must be one of"):
        lab.flagged_panels(2, "val")


def test_the_label_is_the_digit_of_the_flagged_panel_and_only_it_has_a_flag(monkeypatch):
    monkeypatch.setattr(lab, "_NOISE", 0.0)  # exact digits on the canvas
    x, y, flagged = lab.flagged_panels(12, "test", seed=0)
    digits, labels = digits_at(16, "test")
    k = lab.CANVAS // lab.PANEL
    for i in range(12):
        panels = x[i, 0].reshape(k, lab.PANEL, k, lab.PANEL).permute(0, 2, 1, 3).flatten(0, 1)
        white = (panels == 1).float()[:, None]  # (4, 1, 32, 32)
        full = nn.functional.avg_pool2d(white, lab.FLAG, stride=1).amax((1, 2, 3)) == 1
        assert full[flagged[i]] and full.sum() == 1  # a 5 × 5 white square: the flag
        # the flagged panel's digit: some 16 × 16 window equals a test digit with label y[i]
        windows = panels[flagged[i]].unfold(0, 16, 1).unfold(1, 16, 1).reshape(-1, 256)
        distance = torch.cdist(windows, digits.reshape(len(digits), 256))  # (windows, digits)
        best = distance.min(0).values
        assert best.min() < 1e-4 and int(y[i]) in labels[best < 1e-4].tolist()


def test_panel_boxes():
    boxes = lab.panel_boxes(torch.tensor([0, 1, 2, 3]))
    assert boxes.tolist() == [[0, 0, 32, 32], [0, 32, 32, 64], [32, 0, 64, 32], [32, 32, 64, 64]]
    with pytest.raises(ValueError, match=r"flagged must be an integer tensor \(N,\) in \[0, 4\)"):
        lab.panel_boxes(torch.tensor([4]))
    with pytest.raises(ValueError, match="flagged must be an integer tensor"):
        lab.panel_boxes(torch.tensor([0.0]))


def _heads(channels: int = 6, region_size: int = 2) -> dict[str, lab.RegionHead]:
    torch.manual_seed(0)
    return {
        p: randomise(lab.RegionHead(p, channels, region_size, hidden_dim=4)) for p in lab.POOLS
    }


def test_heads_differ_only_by_the_pooling_and_compute_it_by_hand():
    heads = _heads()
    f = torch.randn(3, 6, 4, 4, generator=gen(1))
    flat, hier = heads["flat"], heads["hierarchical"]
    with record_attention(flat) as maps:
        logits = flat(f)
    h = f.flatten(2).transpose(1, 2)  # (3, 16, 6)
    scores = flat.pool.score(torch.tanh(flat.pool.proj(h)))[..., 0]
    a = scores.softmax(-1)
    torch.testing.assert_close(maps["pool"], a)
    torch.testing.assert_close(logits, flat.fc((a[..., None] * h).sum(1)))
    regions = hi.image_regions(f, 2)  # (3, 4, 4, 6)
    torch.testing.assert_close(
        hier(f), hier.fc(hier.pool.region_pool(hier.pool.patch_pool(regions)))
    )
    assert isinstance(hier.pool, hi.HierarchicalAttentionPooling)
    assert type(flat.fc) is type(hier.fc) and flat.fc.weight.shape == hier.fc.weight.shape
    with pytest.raises(ValueError, match="pool must be one of 'hierarchical', 'region_max', 'flat', 'misaligned', got 'avg'"):
        lab.RegionHead("avg")
    with pytest.raises(ValueError, match=r"f must be \(B, C, h, w\) with C = 6"):
        flat(torch.zeros(1, 5, 4, 4))


def test_position_weights_are_the_product_of_the_two_levels_and_sum_to_one():
    heads = _heads()
    f = torch.randn(2, 6, 4, 4, generator=gen(2))
    hier = heads["hierarchical"]
    w = lab.position_weights(hier, f)
    assert w.shape == (2, 4, 4)
    torch.testing.assert_close(w.sum((1, 2)), torch.ones(2))
    with record_attention(hier) as maps:
        hier(f)
    region, patch = maps["pool.region_pool"], maps["pool.patch_pool"]  # (2, 4), (2, 4, 4)
    # position (row 3, column 0): region 2 (bottom left), position 2 in it (row 1, column 0)
    torch.testing.assert_close(w[:, 3, 0], region[:, 2] * patch[:, 2, 2])
    flat_w = lab.position_weights(heads["flat"], f)
    with record_attention(heads["flat"]) as maps:
        heads["flat"](f)
    torch.testing.assert_close(flat_w, maps["pool"].reshape(2, 4, 4))


def test_region_mass_sums_the_chosen_block():
    w = torch.arange(32.0).reshape(2, 4, 4)
    mass = lab.region_mass(w, torch.tensor([1, 2]), 2)
    assert mass.tolist() == [2 + 3 + 6 + 7, 24 + 25 + 28 + 29]  # top right; bottom left
    with pytest.raises(ValueError, match=r"region must be an integer tensor \(2,\) in \[0, 4\)"):
        lab.region_mass(w, torch.tensor([0, 4]), 2)
    with pytest.raises(ValueError, match=r"region must be an integer tensor \(2,\)"):
        lab.region_mass(w, torch.tensor([0]), 2)


def test_receptive_fields_of_a_small_swin_match_the_windows():
    torch.manual_seed(0)
    swin = hi.SwinTransformer(
        img_size=32,
        in_channels=1,
        num_classes=3,
        dim=8,
        depths=(2, 2),
        num_heads=(1, 2),
        window_size=4,
    )
    fields = lab.receptive_fields(swin)
    assert [(f["stage"], f["block"], f["kind"], f["grid"]) for f in fields] == [
        (1, 1, "W-MSA", 8),
        (1, 2, "SW-MSA", 8),
        (2, 1, "W-MSA", 4),
        (2, 2, "W-MSA", 4),
    ]
    # token (4, 4): its 4 × 4 window; then the shifted window (rows 2-5) brings two windows a side
    assert [(f["patches"], f["side"]) for f in fields] == [(16, 4), (64, 8), (64, 8), (64, 8)]
    assert all(1 <= f["effective"] <= f["patches"] for f in fields)
    g = fields[0]["gradient"]
    assert g.shape == (8, 8) and (g[4:8, 4:8] > 0).all() and (g[:4].sum() == 0)


def test_the_page_model_is_the_trained_heads_with_their_position_weights():
    from visual_attention.labs.common import encode, standardize
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=2)
    heads = {p: h for p, h in _heads(channels=64, region_size=8).items() if p in ("hierarchical", "flat")}
    x, y, _ = lab.flagged_panels(3, "test", seed=1)
    raw = encode(x, encoder)
    f = standardize(raw, raw)[1]
    model = lab.PanelModel(heads, raw, encoder)
    out = model(x)
    for k, head in enumerate(heads.values()):
        torch.testing.assert_close(out[2 * k], head(f))
        torch.testing.assert_close(out[2 * k + 1], lab.position_weights(head, f))
        torch.testing.assert_close(out[-1][:, k], out[2 * k + 1])
    widget = lab.model_explorer(model, x, y)
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "map", "map", "maps"]
    assert [r[0] for r in widget.views[-1]["regions"]] == [f"panel {p}" for p in range(4)]
    assert widget.views[-1]["regions"][3][1:] == [32, 32, 64, 64]
    replay = run_graph(BrowserModel(widget.graph, widget.weights), x[2:3])
    torch.testing.assert_close(torch.from_numpy(replay["maps"]), out[-1][2:3], atol=1e-6, rtol=0)



def test_the_controls_region_classifier_max_and_misaligned_regions_by_hand():
    heads = _heads()
    f = torch.randn(3, 6, 4, 4, generator=gen(5))
    rmax, mis, hier = heads["region_max"], heads["misaligned"], heads["hierarchical"]
    regions = hi.image_regions(f, 2).mean(2)  # (3, 4, 6): each region's mean vector
    torch.testing.assert_close(rmax(f), rmax.fc(regions).amax(1))
    mis.load_state_dict(hier.state_dict())
    rolled = torch.roll(f, (1, 1), (2, 3))  # half a region along both axes
    torch.testing.assert_close(mis(f), hier(rolled))
    # the misaligned map is the hierarchy's map on the rolled features, rolled back
    torch.testing.assert_close(
        lab.position_weights(mis, f), torch.roll(lab.position_weights(hier, rolled), (-1, -1), (1, 2))
    )
    with pytest.raises(ValueError, match="head must pool with attention"):
        lab.position_weights(rmax, f)


def test_parameters_flat_matches_the_hierarchy_and_the_region_classifier_is_close():
    from visual_attention.train import count_parameters

    count = {p: count_parameters(lab.RegionHead(p)) for p in lab.POOLS}
    assert count["flat"] == count["hierarchical"] == count["misaligned"] == 2762
    assert count["region_max"] == 2410 and count["region_max"] >= 0.75 * count["hierarchical"]


def test_each_seed_learns_from_its_own_draw_of_the_training_set(monkeypatch):
    f, y = torch.randn(12, 6, 4, 4, generator=gen(6)), torch.arange(12) % 10
    drawn, fit_seeds = [], lab.fit_seeds

    def spy(make, train, test, seeds, **options):
        drawn.extend(train(s)[0][:, 0, 0, 0].tolist() for s in seeds)  # tells the examples apart
        return fit_seeds(make, train, test, seeds, **options)

    monkeypatch.setattr(lab, "fit_seeds", spy)
    runs = lab.run_seeds("flat", (f, y), (f[:4], y[:4]), seeds=(0, 1), epochs=1, batch_size=4, train_size=6)
    assert len(runs.accuracies) == len(runs.models) == len(runs.histories) == 2
    assert [len(d) for d in drawn] == [6, 6] and drawn[0] != drawn[1]  # two draws of 6 of the 12
    assert all(len(set(d)) == 6 and set(d) <= set(f[:, 0, 0, 0].tolist()) for d in drawn)  # no repeats
    with pytest.raises(ValueError, match="train_size must be at most the 12 training examples, got 13"):
        lab.run_seeds("flat", (f, y), (f[:4], y[:4]), seeds=(0,), epochs=1, train_size=13)


def test_swin_heads_budget_reach_and_scores():
    from visual_attention.train import count_parameters

    heads = {name: lab.SwinHead(*spec) for name, spec in lab.SWIN_HEADS.items()}
    two, wide, narrow = (heads[n] for n in lab.SWIN_HEADS)
    params = {n: count_parameters(h) for n, h in heads.items()}
    assert all(0.75 * params[next(iter(heads))] <= p for p in params.values())  # the same budget
    # scores by hand: tokens x window² x heads per block
    assert two.scores_per_image() == 64 * 4 * 1 + 16 * 4 * 2
    assert wide.scores_per_image() == 2 * 64 * 16 and narrow.scores_per_image() == 2 * 64 * 4
    x = torch.randn(2, 64, 8, 8, generator=gen(1))
    assert all(h(x).shape == (2, 10) for h in heads.values())
    # the second stage of the hierarchy works on a 4 x 4 grid of 32 channels (patch merging)
    assert two.stages[1].blocks[0].dim == 32 and len(wide.stages) == len(narrow.stages) == 1
    with pytest.raises(ValueError, match="grid=6 must be a multiple"):
        lab.SwinHead(grid=6)
    with pytest.raises(ValueError, match="tokens"):
        two(torch.randn(2, 64, 4, 4))


def test_panel_tokens_average_two_by_two_and_standardise_with_training_statistics():
    raw_train, raw_test = torch.randn(5, 3, 4, 4, generator=gen(2)), torch.randn(2, 3, 4, 4, generator=gen(3))
    t_train, t_test = lab.panel_tokens(raw_train, raw_test)
    assert t_train.shape == (5, 3, 2, 2) and t_test.shape == (2, 3, 2, 2)
    pooled = raw_train[:, :, :2, :2].mean((2, 3))
    mean = raw_train.reshape(5, 3, 2, 2, 2, 2).mean((3, 5)).mean((0, 2, 3))
    assert torch.allclose(t_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert not torch.allclose(pooled, mean[None].expand_as(pooled))  # the tokens are not constant
    with pytest.raises(ValueError, match="even grid"):
        lab.panel_tokens(torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5))


def test_train_swin_heads_draws_per_seed_and_names_are_checked():
    f, y = torch.randn(8, 64, 8, 8, generator=gen(4)), torch.arange(8) % 10
    runs = lab.train_swin_heads((f, y), (f[:4], y[:4]), names=["one stage, 2 × 2 windows"],
                                seeds=(0, 1), epochs=1, batch_size=4, train_size=6)
    assert list(runs) == ["one stage, 2 × 2 windows"] and len(runs["one stage, 2 × 2 windows"].models) == 2
    with pytest.raises(ValueError, match="names"):
        lab.train_swin_heads((f, y), (f[:4], y[:4]), names=["three stages"], seeds=(0,), epochs=1)


def test_the_stored_swin_heads_come_from_this_code_and_recipe():
    saved = torch.load(lab.SWIN_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.swin_fingerprint(), (
        "the Swin heads' code or recipe changed since the weights were trained: run make weights"
    )
    assert saved["recipe"] == dict(lab.SWIN_RECIPE) and list(saved["models"]) == list(lab.SWIN_HEADS)
    runs = lab.load_swin_heads()
    seeds = len(lab.SWIN_RECIPE["seeds"])
    for run in runs.values():
        assert len(run.models) == seeds and not any(p.requires_grad for p in run.models[0].parameters())
        assert len(run.histories[0].test_accuracy) == lab.SWIN_RECIPE["epochs"]
    # what the chapter claims of them, with margins: both reaching heads learn, the short one not
    two, wide, narrow = (min(runs[n].accuracies) for n in lab.SWIN_HEADS)
    assert two > 0.85 and wide > 0.85 and max(runs[list(lab.SWIN_HEADS)[2]].accuracies) < two - 0.3


def test_swin_fingerprint_ignores_docstrings_but_not_code(monkeypatch):
    before = lab.swin_fingerprint()
    monkeypatch.setitem(lab.SWIN_RECIPE, "epochs", 31)
    assert lab.swin_fingerprint() != before


def test_load_swin_heads_refuses_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the Swin heads"):
        lab.load_swin_heads(other)
    with pytest.raises(ValueError, match="path"):
        lab.load_swin_heads(tmp_path / "missing.pt")


def test_the_stored_region_heads_come_from_this_code_and_recipe():
    saved = torch.load(lab.REGION_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.region_fingerprint(), (
        "the region heads' code or recipe changed since the weights were trained: run make weights"
    )
    assert saved["recipe"] == dict(lab.REGION_RECIPE) and list(saved["models"]) == list(lab.POOLS)
    runs = lab.load_region_heads()
    for run in runs.values():
        assert len(run.models) == len(lab.REGION_RECIPE["seeds"]) and not run.models[0].training
        assert len(run.histories[0].test_accuracy) == lab.REGION_RECIPE["epochs"]
    # what the chapter claims of them, with margins: the hierarchy ahead of everything, the
    # region classifier + max a fair control, flat and misaligned far behind
    low = {pool: min(run.accuracies) for pool, run in runs.items()}
    high = {pool: max(run.accuracies) for pool, run in runs.items()}
    assert low["hierarchical"] > high["region_max"] and low["region_max"] > 0.85
    assert low["hierarchical"] > max(high["flat"], high["misaligned"]) + 0.3


def test_train_region_heads_trains_what_the_file_holds(tmp_path):
    f, y = torch.randn(12, 64, 16, 16), torch.arange(12) % 10
    runs = lab.train_region_heads((f, y), (f[:4], y[:4]), pools=["flat"], seeds=(0,), epochs=1)
    assert list(runs) == ["flat"] and isinstance(runs["flat"].models[0], lab.RegionHead)
    with pytest.raises(ValueError, match="pools"):
        lab.train_region_heads((f, y), (f, y), pools="flat")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the region heads"):
        lab.load_region_heads(other)
