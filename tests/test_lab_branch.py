"""Tests of visual_attention.labs.branch: the two-scale task, the SK net and its controls, the
sweep and the page model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import gen, randomise
from visual_attention.branch import SelectiveKernel
from visual_attention.core import record_attention
from visual_attention.labs import branch as lab
from visual_attention.labs.common import collect_attention, standardize
from visual_attention.labs.digits import DigitCNN


def _nets(seed: int = 0, channels: int = 64) -> dict[str, lab.BranchNet]:
    torch.manual_seed(seed)
    nets = {mode: lab.BranchNet(mode, channels=channels) for mode in lab.MIXERS}
    for net in nets.values():
        for p in net.parameters():  # non-trivial weights, so that the views differ
            nn.init.normal_(p, std=0.5)
    return {k: n.eval() for k, n in nets.items()}


def test_scale_task_is_half_small_half_large_digits_with_clutter_at_the_other_scale():
    x, y, size = lab.scale_task(9, "test", seed=3)
    assert x.shape == (9, 1, 48, 48) and y.shape == size.shape == (9,)
    assert sorted(size.tolist()) == [16] * 5 + [32] * 4
    assert 0 <= x.min() and x.max() <= 1
    x2, y2, size2 = lab.scale_task(9, "test", seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(size, size2)
    assert not torch.equal(x, lab.scale_task(9, "test", seed=4)[0])
    assert [c["distractor_size"] for c in lab.SCALES.values()] == [32, 16]  # the other scale
    with pytest.raises(ValueError, match="n must be a positive integer"):
        lab.scale_task(0)


def test_encoded_task_is_the_scale_task_through_the_encoder():
    encoder = randomise(DigitCNN(), seed=1)
    f, y, size = lab.encoded_task(4, "test", seed=2, encoder=encoder)
    x, y2, size2 = lab.scale_task(4, "test", seed=2)
    assert f.shape == (4, 64, 6, 6) and torch.equal(y, y2) and torch.equal(size, size2)
    with torch.no_grad():
        torch.testing.assert_close(f, nn.functional.avg_pool2d(encoder.feature_map(x), 2))
        torch.testing.assert_close(lab.feature_maps(x, encoder), f)


def test_the_sk_net_is_a_real_selective_kernel_and_records_its_weights():
    net = _nets(channels=16)["sk"]
    assert isinstance(net.mixer, SelectiveKernel) and net.mixer.kernel_sizes == lab.KERNEL_SIZES
    assert [b[0].dilation for b in net.mixer.branches] == [(1, 1), (2, 2)]
    x = torch.randn(3, 16, 6, 6, generator=gen(2))
    with record_attention(net) as maps:
        logits = net(x)
    a = maps["mixer"]
    assert a.shape == (3, 2, 16) and (a >= 0).all()
    torch.testing.assert_close(a.sum(1), torch.ones(3, 16))
    torch.testing.assert_close(logits, net.fc(net.post(net.mixer(x)).mean((2, 3))))


def test_the_controls_mix_the_same_two_branches_without_looking_at_the_image():
    nets = _nets(channels=16)
    x = torch.randn(4, 16, 6, 6, generator=gen(3))
    for mode in ("concat", "static", "half"):
        net = nets[mode]
        assert [b[0].dilation for b in net.branches] == [(1, 1), (2, 2)]
        assert net.branches[0][0].groups == 8
    u = [b(x) for b in nets["half"].branches]
    torch.testing.assert_close(nets["half"].mix(x), (u[0] + u[1]) / 2)
    u = [b(x) for b in nets["concat"].branches]
    torch.testing.assert_close(nets["concat"].mix(x), torch.cat(u, 1))
    net = nets["static"]
    u = [b(x) for b in net.branches]
    a = net.mix_logits.softmax(0)  # one weight per branch and channel, for every image
    torch.testing.assert_close(net.mix(x), a[0, :, None, None] * u[0] + a[1, :, None, None] * u[1])
    with torch.no_grad():  # each image's mix is independent of the others: no input-dependent weights
        torch.testing.assert_close(net.mix(x[:1]), net.mix(x)[:1])


def test_parameter_counts_keep_every_control_above_three_quarters_of_sk():
    counts = {m: sum(p.numel() for p in n.parameters()) for m, n in _nets().items()}
    assert counts == {"sk": 17450, "concat": 18442, "static": 14474, "half": 14346}
    assert all(c >= 0.75 * counts["sk"] for c in counts.values())


def test_branch_net_validation():
    with pytest.raises(ValueError, match="mode must be one of"):
        lab.BranchNet("select")
    with pytest.raises(ValueError, match="groups must divide channels=12"):
        lab.BranchNet("sk", channels=12, groups=8)
    with pytest.raises(ValueError, match="kernel_sizes must be two odd sizes"):
        lab.BranchNet("sk", kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match=r"x must be \(B, C, h, w\) with C = 64"):
        lab.BranchNet("half")(torch.randn(2, 8, 4, 4))


def test_run_seeds_trains_one_net_per_seed_on_its_own_data():
    def pair(seed):
        x = torch.randn(40, 16, 4, 4, generator=gen(seed))
        return (x, (x[:, 0, 0, 0] > 0).long())

    data = [(pair(s), pair(s + 10)) for s in (0, 1)]
    accs, nets, histories = lab.run_seeds("sk", data, seeds=(0, 1), epochs=2, batch_size=16)
    assert len(accs) == len(nets) == len(histories) == 2
    assert all(not n.training and n.mode == "sk" for n in nets)
    assert accs == [h.final_test_accuracy for h in histories]
    with pytest.raises(ValueError, match="data must hold one"):
        lab.run_seeds("sk", data[:1], seeds=(0, 1))


def test_render_digits_changes_only_the_scale():
    a, labels = lab.render_digits([3, 3], 12)
    b, labels_b = lab.render_digits([3], 36)
    assert a.shape == (2, 1, 48, 48) and b.shape == (1, 1, 48, 48)
    assert torch.equal(a[0], a[1]) and int(labels[0]) == int(labels_b[0])
    assert (a[0, :, :5, :5] == b[0, :, :5, :5]).all()  # same noise outside the digit
    assert not torch.equal(a[0], b[0])
    assert lab.render_digits([], 14)[0].shape == (0, 1, 48, 48)
    with pytest.raises(ValueError, match="size must be an integer between 2 and canvas=48"):
        lab.render_digits([0], 49)
    with pytest.raises(ValueError, match="indices must be in"):
        lab.render_digits([0, 10_000], 14)


def test_weights_by_size_gives_the_dilated_branchs_weight_per_image_and_the_accuracy():
    encoder = randomise(DigitCNN(), seed=1)
    net = _nets()["sk"]
    result = lab.weights_by_size(net, [12, 30], count=6, encoder=encoder)
    assert list(result) == [12, 30]
    for weights, accuracy in result.values():
        assert weights.shape == (6,) and ((weights >= 0) & (weights <= 1)).all()
        assert 0 <= accuracy <= 1
    assert not torch.equal(result[12][0], result[30][0])
    with pytest.raises(ValueError, match="net must be an 'sk' BranchNet"):
        lab.weights_by_size(_nets()["half"], [12], encoder=encoder)


def test_the_page_model_is_the_trained_nets_on_the_standardised_maps():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=1)
    nets = _nets()
    f, y, _ = lab.encoded_task(6, "test", seed=1, encoder=encoder)
    x, _, _ = lab.scale_task(6, "test", seed=1)
    u = standardize(f, f)[1]
    model = lab.BranchModel({"SK": nets["sk"], "cat": nets["concat"]}, f, encoder)
    sk, cat, weights = model(x)
    torch.testing.assert_close(sk, nets["sk"](u))
    torch.testing.assert_close(cat, nets["concat"](u))
    a = collect_attention(nets["sk"], u, names=["mixer"])["mixer"]
    torch.testing.assert_close(weights, a.mean(-1))
    widget = lab.model_explorer(model, x[:3], y[:3])
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "bars"]
    out = run_graph(BrowserModel(widget.graph, widget.weights), x[4:5])
    torch.testing.assert_close(torch.from_numpy(out["branch weights"]), weights[4:5], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.from_numpy(out["logits SK"]), sk[4:5], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="exactly one 'sk' net"):
        lab.BranchModel({"cat": nets["concat"]}, f, encoder)


def test_the_stored_branch_nets_come_from_this_code_and_recipe():
    saved = torch.load(lab.BRANCH_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.branch_fingerprint(), (
        "the branch nets' code or recipe changed since the weights were trained: run make weights"
    )
    assert saved["recipe"] == dict(lab.BRANCH_RECIPE) and list(saved["models"]) == list(lab.MIXERS)
    runs = lab.load_branch_nets()
    for run in runs.values():
        assert len(run.models) == len(lab.BRANCH_RECIPE["seeds"]) and not run.models[0].training
        assert len(run.histories[0].test_accuracy) == lab.BRANCH_RECIPE["epochs"]
    # what the chapter claims of them, with margins: every mix reads most digits, SK no better
    # than concatenation by more than noise
    mean = {m: sum(r.accuracies) / len(r.accuracies) for m, r in runs.items()}
    assert min(min(r.accuracies) for r in runs.values()) > 0.7
    assert mean["sk"] < mean["concat"] + 0.03


def test_train_branch_nets_trains_what_the_file_holds(tmp_path):
    data = [((torch.randn(6, 64, 6, 6), torch.arange(6)), (torch.randn(4, 64, 6, 6), torch.arange(4)))]
    runs = lab.train_branch_nets(data, modes=["half"], seeds=(0,), epochs=1)
    assert list(runs) == ["half"] and isinstance(runs["half"].models[0], lab.BranchNet)
    with pytest.raises(ValueError, match="modes"):
        lab.train_branch_nets(data, modes="sk")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the branch nets"):
        lab.load_branch_nets(other)
