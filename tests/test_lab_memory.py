"""Tests of visual_attention.labs.memory: the memory chapter's networks and widget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visual_attention import record_attention
from visual_attention.blocks import MultiHeadAttention
from visual_attention.labs import memory as lab
from visual_attention.labs.memory import DigitEncoder, MemoryModel, TokenClassifier
from visual_attention.memory import ExternalAttention


def test_experiment_models():
    enc = DigitEncoder(16)
    x = torch.rand(5, 8, 8)
    assert enc(x).shape == (5, 10)
    torch.testing.assert_close(enc.embed(x).norm(dim=-1), torch.ones(5))
    assert DigitEncoder(4, hidden_dim=8, num_classes=3)(x).shape == (5, 3)
    for kind in ("external", "self"):
        assert TokenClassifier(kind)(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert TokenClassifier("self", dim=8, num_classes=4)(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_token_classifier_attention_blocks():
    assert isinstance(TokenClassifier("external").attn, ExternalAttention)
    attn = TokenClassifier("self", dim=6).attn
    assert isinstance(attn, MultiHeadAttention) and attn.num_heads == 1


def test_self_attention_baseline_matches_torch():
    torch.manual_seed(0)
    sa = TokenClassifier("self", dim=6).attn.double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    with record_attention(sa) as maps:
        out = sa(x)
    q, k, v = sa.qkv(x).chunk(3, dim=-1)
    torch.testing.assert_close(out, sa.proj(F.scaled_dot_product_attention(q, k, v)))
    assert maps[""].shape == (2, 1, 7, 7)  # (B, h, N, N) with one head


def test_token_classifier_records_the_attention_of_its_block():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    for kind, shape in (("external", (2, 64, 16)), ("self", (2, 1, 64, 64))):
        model = TokenClassifier(kind, dim=8, memory_size=16)
        with record_attention(model) as maps:
            model(x)
        assert maps["attn"].shape == shape


def test_the_page_model_reads_the_memory_as_the_chapter_does():
    from visual_attention.memory import KeyValueMemory
    from visual_attention.views.browser_model import BrowserModel, run_graph

    torch.manual_seed(0)
    enc = DigitEncoder(4).eval()
    gallery, labels = torch.rand(12, 8, 8), torch.arange(12).flip(0) % 10
    model = MemoryModel(enc, gallery, labels, hops=(1, 2), temperature=0.1)
    assert (model.labels[1:] >= model.labels[:-1]).all()  # slots sorted by label
    queries = torch.rand(3, 8, 8)
    logits1, weights1, logits2, weights2 = model(queries[:, None])
    keys = enc.embed(model.gallery)
    for hops, logits, weights in ((1, logits1, weights1), (2, logits2, weights2)):
        memory = KeyValueMemory(4, hops=hops, temperature=0.1)
        with record_attention(memory) as maps:
            u = memory(enc.embed(queries), keys, keys)
        torch.testing.assert_close(logits, enc.head(u))
        torch.testing.assert_close(weights, maps[""][:, -1])
    widget = lab.model_explorer(model, queries, torch.tensor([1, 2, 3]))
    assert [v["kind"] for v in widget.views] == ["probs"] * 2 + ["slots"] * 2
    assert widget.views[2]["labels"] == [str(int(y)) for y in model.labels]
    assert widget.views[2]["image_size"] == [8, 8] and len(widget.images) == 12 * 64 * 4
    out = run_graph(BrowserModel(widget.graph, widget.weights), queries[1:2, None])
    torch.testing.assert_close(
        torch.from_numpy(out["weights 2"]), weights2[1:2], atol=1e-5, rtol=0
    )


def test_validation_messages():
    with pytest.raises(
        ValueError, match="attention must be one of 'external', 'self', got 'local'"
    ):
        TokenClassifier("local")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        TokenClassifier(num_classes=0)
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer, got True"):
        DigitEncoder(hidden_dim=True)
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        TokenClassifier()(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"x must be \(B, H, W\) with H = 8"):
        DigitEncoder()(torch.rand(2, 7, 8))
    with pytest.raises(ValueError, match=r"keys must be \(S, D\) with D = 3"):
        lab.memory_classify(torch.rand(2, 3), torch.rand(4, 2), torch.arange(4), 4)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        lab.linear_head_classify(torch.rand(2, 3), torch.rand(4, 3), torch.arange(4), 4, steps=0)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        lab.few_shot_indices(torch.arange(4), (1,), 0, torch.Generator())
    with pytest.raises(ValueError, match=r"gallery must be 3-d \(S, H, W\)"):
        MemoryModel(DigitEncoder(4), torch.rand(8, 8), torch.arange(3))


def test_features_are_unit_length_hidden_activations():
    enc = DigitEncoder(4, hidden_dim=8)
    f = enc.features(torch.rand(3, 8, 8))
    assert f.shape == (3, 8) and (f >= 0).all()
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(3))


def test_few_shot_indices_pick_k_of_each_class():
    labels = torch.arange(40) % 10
    idx = lab.few_shot_indices(labels, (5, 6, 7), 3, torch.Generator().manual_seed(0))
    assert idx.shape == (9,)
    assert labels[idx].tolist() == [5] * 3 + [6] * 3 + [7] * 3
    assert len(set(idx.tolist())) == 9
    with pytest.raises(ValueError, match="class 5 has 4 examples, fewer than k = 5"):
        lab.few_shot_indices(labels, (5,), 5, torch.Generator())


def test_memory_classify_reads_the_nearest_labels():
    keys = torch.eye(3)  # three slots, labels 2, 0, 1
    labels = torch.tensor([2, 0, 1])
    query = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 1.0]])
    for hops in (0, 1, 3):
        pred = lab.memory_classify(query, keys, labels, 3, hops=hops)
        assert pred.tolist() == [2, 1]


def test_linear_head_classify_fits_separable_examples():
    keys = torch.eye(4)
    labels = torch.tensor([0, 1, 2, 3])
    pred = lab.linear_head_classify(keys, keys, labels, 4, steps=50)
    assert pred.tolist() == [0, 1, 2, 3]


def test_few_shot_experiment_layout_on_a_tiny_task():
    torch.manual_seed(0)
    x, y = torch.rand(200, 8, 8), torch.arange(200) % 4
    threads = torch.get_num_threads()
    out = lab.few_shot_experiment(
        (x, y),
        (x[:20], y[:20]),
        seeds=(0, 1),
        shots=(1, 2),
        hops=(1,),
        base_classes=2,
        epochs=1,
        episodes=3,
        proj_dim=4,
        hidden=3,
    )
    assert torch.get_num_threads() == threads
    names = {
        "memory",
        "memory, projection",
        "memory, T = 0.1",
        "hops 1",
        "linear head",
        "MLP head",
        "1-NN",
        "prototype",
    }
    assert set(out) == {"accuracy", "correct", "params"}
    assert set(out["accuracy"]) == set(out["correct"]) == set(out["params"]) == names
    acc, correct = out["accuracy"], out["correct"]
    assert all(len(v) == 2 for d in acc.values() for v in d.values())
    assert all(0 <= a <= 1 for d in acc.values() for v in d.values() for a in v)
    queries = int((y[:20] >= 2).sum())
    for name in names:  # per-example scores: seed after seed, their means the accuracies
        for k in (1, 2):
            assert correct[name][k].shape == (2 * queries,)
            means = correct[name][k].view(2, queries).mean(1).tolist()
            assert means == pytest.approx(acc[name][k])
    assert out["params"]["memory"] == 1 and out["params"]["memory, projection"] == 4 * 128 + 1
    assert out["params"]["MLP head"] == 128 * 3 + 3 + 3 * 2 + 2
    assert out["params"]["linear head"] == 128 * 2 + 2


def test_learned_read_is_a_soft_nearest_neighbour_rule():
    read = lab.LearnedRead(3)
    keys, labels = torch.eye(3), torch.tensor([2, 0, 1])
    query = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 1.0]])
    p = read(query, keys, labels, 3)
    torch.testing.assert_close(p.sum(-1), torch.ones(2))
    assert p.argmax(-1).tolist() == [2, 1] and (p >= 0).all()
    # the read is Σ_i p_i onehot(y_i) with p = softmax(β cos(u, m_i)): checked by hand
    beta = read.log_beta.exp()
    w = torch.softmax(beta * F.normalize(query, dim=-1) @ keys.T, dim=-1)
    torch.testing.assert_close(p, w @ F.one_hot(labels, 3).float())
    with torch.no_grad():  # β → ∞: the nearest example's label, one-hot
        read.log_beta.fill_(8.0)
    torch.testing.assert_close(
        read(query, keys, labels, 3), F.one_hot(torch.tensor([2, 1]), 3).float()
    )
    assert sum(p.numel() for p in lab.LearnedRead(5, proj_dim=2).parameters()) == 11
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes = 2\)"):
        read(query, keys, labels, 2)


def test_episodic_training_sharpens_the_read_on_separable_classes():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    labels = torch.arange(90) % 3
    feats = centres[labels] + 0.1 * torch.randn(90, 8, generator=g)
    read = lab.train_episodic_read(feats, labels, seed=0, episodes=60, max_shots=5)
    assert not read.training
    with torch.no_grad():
        p = read(feats[40:], feats[:30], labels[:30], 3)
        p0 = lab.LearnedRead(8)(feats[40:], feats[:30], labels[:30], 3)  # β = 10, untrained
    assert (p.argmax(-1) == labels[40:]).float().mean() > 0.9
    nll = [F.nll_loss(q.log(), labels[40:]).item() for q in (p, p0)]
    assert read.log_beta.exp() > 12 and nll[0] < 0.5 * nll[1]  # sharper: the episodes' loss
    with pytest.raises(ValueError, match="more than max_shots = 10 examples"):
        lab.train_episodic_read(feats[:20], labels[:20], seed=0)


def test_neighbour_classify_nearest_example_and_class_mean():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[0.7, 0.7], [1.0, 0.1]])
    assert lab.neighbour_classify(query, keys, labels, 2).tolist() == [1, 0]  # nearest: slot 2, 0
    # class means: 0 → (1, 0); 1 → (0.3, 0.9) normalised; query 0 is nearer class 1
    assert lab.neighbour_classify(query, keys, labels, 2, prototypes=True).tolist() == [1, 0]
    with pytest.raises(ValueError, match="every class needs an example"):
        lab.neighbour_classify(query, keys, labels, 3, prototypes=True)


def test_mlp_head_fits_separable_examples():
    keys = torch.eye(4)
    pred = lab.linear_head_classify(keys, keys, torch.arange(4), 4, steps=100, hidden=8)
    assert pred.tolist() == [0, 1, 2, 3]
