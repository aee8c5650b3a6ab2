"""Tests of visual_attention.labs.global_attention: the reading task, teacher forcing, the three
readers, greedy decoding, the metrics and the page's reader (equal to PyTorch when replayed)."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.labs import global_attention as lab
from visual_attention.labs.digits import DigitCNN
from visual_attention.train import count_parameters
from visual_attention.views.browser_model import BrowserModel, export_model, run_graph


def test_reading_task_places_the_digits_left_to_right():
    x, strings, lengths, lefts = lab.reading_task(40, "train", seed=3, noise=0.0)
    assert x.shape == (40, 1, *lab.CANVAS) and x.min() >= 0 and x.max() <= 1
    assert set(lengths.tolist()) <= {2, 3, 4}
    for i in range(40):
        n = int(lengths[i])
        assert (strings[i, :n] >= 0).all() and (strings[i, n:] == -1).all()
        left = lefts[i, :n]
        assert (left[1:] - left[:-1] >= lab.DIGIT_SIZE).all()  # no overlap, in reading order
        assert left[-1] + lab.DIGIT_SIZE <= lab.CANVAS[1]
        ink = x[i, 0].sum(0) > 0  # (W,): columns with ink
        outside = torch.ones_like(ink)
        for a in left.tolist():
            outside[a : a + lab.DIGIT_SIZE] = False
        assert not ink[outside].any()  # nothing drawn outside the digits
    again = lab.reading_task(40, "train", seed=3, noise=0.0)
    assert torch.equal(again[0], x) and not torch.equal(lab.reading_task(40, seed=4)[1], strings)


def test_sequences_are_teacher_forcing():
    strings = torch.tensor([[3, 1, -1, -1], [0, 9, 8, 7]])
    inputs, targets = lab.sequences(strings)
    b, e = lab.BOS, lab.EOS
    assert inputs.tolist() == [[b, 3, 1, e, e], [b, 0, 9, 8, 7]]
    assert targets.tolist() == [[3, 1, e, -100, -100], [0, 9, 8, 7, e]]
    with pytest.raises(ValueError, match="strings must be a 2-d int64 tensor"):
        lab.sequences(torch.tensor([[3, 11]]))
    with pytest.raises(ValueError, match="strings must be a 2-d int64 tensor"):
        lab.sequences(torch.tensor([[-1, 2]]))


def test_hard_one_hot_is_the_argmax():
    logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, -1.0, 4.9]])
    assert torch.equal(lab.hard_one_hot(logits), torch.tensor([[0.0, 1, 0], [1, 0, 0]]))


def test_the_readers_differ_only_in_their_memory():
    f = torch.randn(3, 64, *lab.GRID)
    tokens = torch.nn.functional.one_hot(torch.full((3, 4), lab.BOS), lab.VOCAB).float()
    for kind in lab.KINDS:
        torch.manual_seed(0)
        model = lab.Reader(kind).eval()
        assert model(f, tokens).shape == (3, 4, lab.VOCAB)
        assert model.encode(f).shape == (3, 40 if kind == "attention" else 1, 64)
    n = {k: count_parameters(lab.Reader(k)) for k in lab.KINDS}
    assert n["pooled"] >= 0.75 * n["attention"] and n["flattened"] >= 0.75 * n["attention"]


def test_the_reader_is_causal():
    torch.manual_seed(1)
    model = lab.Reader().eval()
    f = torch.randn(2, 64, *lab.GRID)
    inputs = lab.sequences(torch.tensor([[1, 2, 3, -1], [4, 5, -1, -1]]))[0]
    tokens = torch.nn.functional.one_hot(inputs, lab.VOCAB).float()
    out = model(f, tokens)
    changed = tokens.clone()
    changed[:, 3:] = changed[:, 3:].flip(-1)
    assert torch.allclose(model(f, changed)[:, :3], out[:, :3], atol=1e-6)
    assert torch.allclose(model(f, tokens[:, :2]), out[:, :2], atol=1e-6)


def test_greedy_reading_equals_step_by_step_decoding():
    torch.manual_seed(2)
    model = lab.Reader().eval()
    f = torch.randn(4, 64, *lab.GRID)
    with torch.no_grad(), record_attention(model) as maps:
        read, logits = model.read(f)
    seq = torch.full((4, 1), lab.BOS)
    for t in range(lab.STEPS):  # the loop written with argmax and an embedding lookup
        step = model(f, torch.nn.functional.one_hot(seq, lab.VOCAB).float())[:, -1]
        assert torch.allclose(step, logits[:, t], atol=1e-5)
        seq = torch.cat([seq, step.argmax(-1, keepdim=True)], 1)
    assert torch.equal(read.argmax(-1), seq[:, 1:])
    w = maps["block.cross_attn"]
    assert w.shape == (4, 4, lab.STEPS, 40) and torch.allclose(w.sum(-1), torch.ones(4, 4, 5))


def test_a_trained_attention_reader_reads_and_aligns():
    x, s, n, lefts = lab.reading_task(900, "train", seed=0)
    f = lab.standardize(lab.token_features(x))[0]
    model, _ = lab.fit_reader("attention", (f[:800], s[:800]), seed=0, epochs=15)
    digits = lab.digit_accuracy(model, f[800:], s[800:])
    assert digits > 0.3  # chance is 0.1 (measured about 0.5 after 800 canvases)
    with torch.no_grad(), record_attention(model) as maps:
        model.read(f[800:])
    att = maps["block.cross_attn"].mean(1).unflatten(-1, lab.GRID)
    share = lab.alignment(att, lefts[800:], n[800:])
    uniform = lab.alignment(torch.full_like(att, 1 / 40), lefts[800:], n[800:])
    assert share[0] > 1.5 * uniform[0] and share.mean() > uniform.mean()


def test_exact_match_and_chance():
    class Oracle(lab.Reader):
        def read(self, features):
            return self.answer, None

    model = Oracle()
    strings = torch.tensor([[1, 2, -1, -1], [3, 4, 5, -1]])
    targets = lab.sequences(strings)[1].clamp(min=lab.EOS - 1)  # after EOS: anything
    model.answer = torch.nn.functional.one_hot(targets.clamp(max=lab.EOS), lab.VOCAB).float()
    f = torch.zeros(2, 64, *lab.GRID)
    assert lab.exact_match(model, f, strings).tolist() == [0.0, 0.0]  # digits clamped away
    model.answer = torch.nn.functional.one_hot(lab.sequences(strings)[0].roll(-1, 1), 12).float()
    model.answer[:, -1] = torch.nn.functional.one_hot(torch.tensor(lab.EOS), 12).float()
    assert lab.exact_match(model, f, strings).tolist() == [1.0, 1.0]
    assert lab.digit_accuracy(model, f, strings) == 1.0
    assert lab.chance_exact(torch.tensor([2, 3, 4])) == pytest.approx(1 / 300)


def test_alignment_of_a_map_on_the_digit():
    lefts = torch.tensor([[0, 40, -1, -1]])
    att = torch.zeros(1, lab.STEPS, *lab.GRID)
    att[0, 0, :, 0:2] = 1 / 8  # step 1 on columns 0-1 (pixels 0-15)
    att[0, 1, :, 9] = 1 / 4  # step 2 on the last column: not digit 2
    share = lab.alignment(att, lefts, torch.tensor([2]))
    assert share.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])  # no digits 3 and 4: 0


def test_the_page_reader_is_the_reader_from_the_pixels():
    torch.manual_seed(3)
    reader = lab.Reader().eval()
    x = lab.reading_task(3, "test", seed=2)[0]
    encoder = DigitCNN().eval()
    raw = lab.token_features(x, encoder)
    page = lab.PageReader(reader, raw, encoder=encoder)
    with torch.no_grad():
        logits, attention = page(x)
        _, expected = reader.read(lab.standardize(raw)[0])
    assert torch.allclose(logits, expected, atol=1e-4)
    assert attention.shape == (3, lab.STEPS, *lab.GRID)
    exported = export_model(page, x[:1], ("logits", "attention"))
    replay = run_graph(exported, x[2:3])
    assert abs(replay["logits"] - logits[2:3].numpy()).max() < 1e-4
    assert abs(replay["attention"] - attention[2:3].numpy()).max() < 1e-4
    with pytest.raises(ValueError, match="attention reader"):
        lab.PageReader(lab.Reader("pooled"), raw)


def test_finding_task_boxes_are_the_reading_tasks_digits():
    x, strings, lengths, lefts = lab.reading_task(30, "test", seed=5, noise=0.0)
    x2, classes, lengths2, boxes = lab.finding_task(30, "test", seed=5, noise=0.0)
    assert torch.equal(x, x2) and torch.equal(strings, classes) and torch.equal(lengths, lengths2)
    h, w = lab.CANVAS
    pixels = boxes * torch.tensor([w, h, w, h])
    for i in range(30):
        n = int(lengths[i])
        assert (boxes[i, n:] == 0).all()
        for j in range(n):
            cx, cy, bw, bh = pixels[i, j].tolist()
            assert (bw, bh) == (lab.DIGIT_SIZE, lab.DIGIT_SIZE)
            assert cx - bw / 2 == lefts[i, j]
            top, left = round(cy - bh / 2), round(cx - bw / 2)
            inside = x[i, 0, top : top + lab.DIGIT_SIZE, left : left + lab.DIGIT_SIZE]
            assert inside.sum() == x[i, 0, :, left : left + lab.DIGIT_SIZE].sum()  # all its ink


def test_box_iou():
    a = torch.tensor([0.5, 0.5, 0.2, 0.4])
    assert torch.isclose(lab.box_iou(a, a), torch.tensor(1.0))
    half = torch.tensor([0.6, 0.5, 0.2, 0.4])  # shifted by half its width: 1/3
    assert torch.isclose(lab.box_iou(a, half), torch.tensor(1 / 3))
    assert lab.box_iou(a, torch.tensor([0.9, 0.5, 0.2, 0.4])) == 0
    pair = lab.box_iou(torch.stack([a, half])[:, None], torch.stack([a, half])[None])
    assert pair.shape == (2, 2) and torch.allclose(pair, pair.T)


def test_hungarian_match_is_the_cheapest_assignment():
    import itertools

    g = torch.Generator().manual_seed(0)
    logits, boxes = torch.randn(4, 6, 11, generator=g), torch.rand(4, 6, 4, generator=g)
    classes = torch.tensor([[1, 2, -1, -1], [3, 4, 5, -1], [0, 1, 2, 3], [9, 9, -1, -1]])
    targets = torch.rand(4, 4, 4, generator=g) * (classes >= 0)[..., None]
    image, pred, digit = lab.hungarian_match(logits, boxes, classes, targets, box_weight=5.0)
    prob = logits.softmax(-1)
    cost = 5 * (boxes[:, :, None] - targets[:, None]).abs().sum(-1) - prob.gather(
        2, classes.clamp(min=0)[:, None].expand(-1, 6, -1)
    )
    for i, n in enumerate((classes >= 0).sum(1).tolist()):
        mine = image == i
        assert sorted(digit[mine].tolist()) == list(range(n))
        assert len(set(pred[mine].tolist())) == n  # one to one
        got = cost[i, pred[mine], digit[mine]].sum()
        best = min(
            sum(float(cost[i, r, c]) for c, r in enumerate(rows))
            for rows in itertools.permutations(range(6), n)
        )
        assert abs(float(got) - best) < 1e-5
    with pytest.raises(ValueError, match="at least 4 predictions"):
        lab.hungarian_match(logits[:, :3], boxes[:, :3], classes, targets)


@pytest.mark.parametrize("kind", lab.FINDERS)
def test_the_finders_shapes(kind):
    model = lab.Finder(kind, channels=8, grid=(4, 10), dim=16, num_heads=2, hidden=16)
    logits, boxes = model(torch.randn(3, 8, 4, 10))
    p = 40 if kind == "dense" else lab.QUERIES
    assert logits.shape == (3, p, lab.NO_OBJECT + 1) and boxes.shape == (3, p, 4)
    assert ((boxes >= 0) & (boxes <= 1)).all()
    with pytest.raises(ValueError, match="features"):
        model(torch.randn(3, 8, 4, 9))


def test_the_object_queries_attend_over_every_position():
    model = lab.Finder("queries", channels=8, grid=(4, 10), dim=16, num_heads=2)
    with record_attention(model) as maps:
        model(torch.randn(2, 8, 4, 10))
    a = maps["block.cross_attn"]
    assert a.shape == (2, 2, lab.QUERIES, 40)
    assert torch.allclose(a.sum(-1), torch.ones(2, 2, lab.QUERIES)) and (a > 0).all()


class _Oracle(lab.Finder):
    """A finder that predicts the true boxes and classes of the canvases it is given."""

    def __init__(self, classes, boxes, shift=0.0):
        super().__init__("flattened", channels=1, grid=(4, 10), hidden=4)
        self.truth, self.boxes, self.shift = classes, boxes, shift

    def forward(self, features):
        n = len(features)
        logits = torch.full((n, lab.QUERIES, lab.NO_OBJECT + 1), -9.0)
        logits[..., lab.NO_OBJECT] = 0.0
        boxes = torch.full((n, lab.QUERIES, 4), 0.5)
        width = self.truth.shape[1]
        rows, cols = (self.truth >= 0).nonzero(as_tuple=True)
        logits[rows, width - 1 - cols, self.truth[rows, cols]] = 9.0  # queries in another order
        boxes[rows, width - 1 - cols] = self.boxes[rows, cols] + torch.tensor(
            [self.shift, 0, 0, 0]
        )
        return logits, boxes


def test_detections_of_a_perfect_and_a_shifted_finder():
    _, classes, _, boxes = lab.finding_task(20, "test", seed=2)
    features = torch.zeros(20, 1, 4, 10)
    found, iou = lab.detections(_Oracle(classes, boxes), features, classes, boxes)
    assert (found == 1).all() and torch.allclose(iou, torch.ones(20))
    # shifted by 3/4 of a box's width: IoU with its own digit (1/4) / (7/4) = 1/7 (more where it
    # now overlaps the next digit more, and the matching by IoU takes that one), nothing found
    found, iou = lab.detections(_Oracle(classes, boxes, shift=0.15), features, classes, boxes)
    assert (found == 0).all() and (iou > 1 / 7 - 1e-5).all() and (iou < 0.5).all()
    wrong = classes.where(classes < 0, (classes + 1) % 10)  # right boxes, wrong classes
    found, iou = lab.detections(_Oracle(wrong, boxes), features, classes, boxes)
    assert (found == 0).all() and torch.allclose(iou, torch.ones(20))


def test_a_trained_finder_finds_digits():
    x, classes, _, boxes = lab.finding_task(700, "train", seed=0)
    raw = lab.token_features(x)
    features = (raw - raw.mean((0, 2, 3), keepdim=True)) / raw.std((0, 2, 3), keepdim=True)
    train, test = (
        (features[:600], classes[:600], boxes[:600]),
        (features[600:], classes[600:], boxes[600:]),
    )
    runs = lab.train_finders(["queries"], train, test, seeds=(0,), n_train=600, epochs=4)
    assert runs["queries"]["iou"][0] > 0.3  # untrained: boxes at random, near 0
    assert runs["queries"]["models"][0].training is False
    with pytest.raises(ValueError, match="n_train"):
        lab.train_finders(["dense"], train, test, n_train=601)
    with pytest.raises(ValueError, match="finders"):
        lab.train_finders("queries", train, test, n_train=600)


def test_the_page_finder_is_the_finder_from_the_pixels():
    torch.manual_seed(4)
    finder = lab.Finder().eval()
    x = lab.finding_task(3, "test", seed=2)[0]
    encoder = DigitCNN().eval()
    raw = lab.token_features(x, encoder)
    page = lab.PageFinder(finder, raw, encoder=encoder)
    with torch.no_grad():
        probs, boxes, attention = page(x)
        with record_attention(finder) as maps:
            logits, expected = finder(lab.standardize(raw)[0])
    assert torch.allclose(probs, logits.softmax(-1), atol=1e-4)
    assert torch.allclose(boxes, expected, atol=1e-4)
    assert attention.shape == (3, lab.QUERIES, *lab.GRID)
    assert torch.allclose(attention, maps["block.cross_attn"].mean(1).unflatten(-1, lab.GRID), atol=1e-6)
    assert torch.allclose(attention.sum((-2, -1)), torch.ones(3, lab.QUERIES), atol=1e-5)
    exported = export_model(page, x[:1], ("classes", "boxes", "queries"))
    replay = run_graph(exported, x[2:3])
    for name, out in zip(("classes", "boxes", "queries"), (probs, boxes, attention)):
        assert abs(replay[name] - out[2:3].numpy()).max() < 1e-4, name
    with pytest.raises(ValueError, match="object-query finder"):
        lab.PageFinder(lab.Finder("dense"), raw)
    with pytest.raises(ValueError, match="finder must be a Finder"):
        lab.PageFinder(lab.Reader(), raw)


def test_page_decoders_run_the_encoder_once_for_the_reader_and_the_finder():
    torch.manual_seed(5)
    reader, finder = lab.Reader().eval(), lab.Finder().eval()
    x = lab.reading_task(2, "test", seed=4)[0]
    raw = torch.randn(5, 64, 4, 10)
    both = lab.PageDecoders(reader, finder, raw)
    alone = lab.PageReader(reader, raw, both.reader.encoder), lab.PageFinder(finder, raw, both.reader.encoder)
    with torch.no_grad():
        outputs = both(x)
        expected = (*alone[0](x), *alone[1](x))
    assert len(outputs) == 5
    for got, want in zip(outputs, expected):
        assert torch.equal(got, want)
    widgets = [lab.model_explorer(m, x) for m in (*alone, both)]
    assert [[v["kind"] for v in w.views] for w in widgets] == [["lens", "maps"], ["boxes"], ["lens", "maps", "boxes"]]
    floats = [len(w.weights) // 4 for w in widgets]
    encoder = sum(p.numel() for p in both.reader.encoder.parameters())
    assert floats[2] < floats[0] + floats[1] - encoder * 0.9  # the encoder's weights sent once
    replay = run_graph(BrowserModel(widgets[2].graph, widgets[2].weights), x[1:2])
    for name, out in zip(("logits", "attention", "classes", "boxes", "queries"), outputs):
        assert abs(replay[name] - out[1:2].numpy()).max() < 1e-4, name
    with pytest.raises(ValueError, match="PageReader, PageFinder or PageDecoders"):
        lab.model_explorer(finder, x)


# --- local versus global, soft versus hard (LuongReader, local_p_weights) --------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _local_p_reference(scores, position, grid, window):
    """Luong's Eq. 10 written as loops: softmax over the window, times the Gaussian."""
    h, w = grid
    out = torch.zeros_like(scores, dtype=torch.float64)
    for t in range(scores.shape[0]):
        pr, pc = (float(v) for v in position[t])
        inside = [
            (i, j) for i in range(h) for j in range(w)
            if abs(i + 0.5 - pr) <= window and abs(j + 0.5 - pc) <= window
        ]
        z = sum(float(torch.exp(scores[t, i * w + j].double())) for i, j in inside)
        for i, j in inside:
            d2 = (i + 0.5 - pr) ** 2 + (j + 0.5 - pc) ** 2
            g = torch.exp(torch.tensor(-d2 / (2 * (window / 2) ** 2), dtype=torch.float64))
            out[t, i * w + j] = torch.exp(scores[t, i * w + j].double()) / z * g
    return out


def test_local_p_weights_are_luongs_equation_10():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 12, generator=g)
    position = torch.tensor([[0.3, 0.2], [1.5, 2.7], [2.9, 4.0]])
    for window in (0.5, 1.0, 2.0):
        got = lab.local_p_weights(scores, position, (3, 4), window)
        assert torch.allclose(got.double(), _local_p_reference(scores, position, (3, 4), window), atol=1e-6)
    wide = lab.local_p_weights(scores, position, (3, 4), 1e4)  # no window, a flat Gaussian: global
    assert torch.allclose(wide, scores.softmax(-1), atol=1e-6)
    peak = lab.local_p_weights(torch.zeros(1, 12), torch.tensor([[1.5, 2.5]]), (3, 4), 2.0)
    assert int(peak.argmax()) == 1 * 4 + 2  # uniform scores: the most weight at p_t itself


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 5),
    st.floats(0.5, 6.0),
    st.floats(1.0, 1e4),
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    st.integers(0, 2**16),
)
def test_local_p_weights_properties(b, t, width, window, spread, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    grid = (2, width)
    scores = (torch.randn(b, 2, t, 2 * width, generator=g) * spread).to(dtype)  # extreme logits too
    position = (torch.rand(b, 1, t, 2, generator=g) * torch.tensor(grid, dtype=torch.float)).to(dtype)
    weights = lab.local_p_weights(scores, position, grid, window)
    assert weights.shape == scores.shape and weights.dtype == dtype
    assert torch.isfinite(weights).all() and (weights >= 0).all()
    total = weights.float().sum(-1)
    assert (total > 0).all() and (total <= 1 + 1e-2).all()  # a softmax times a Gaussian ≤ 1
    one = lab.local_p_weights(scores[:1], position[:1], grid, window)  # batch 1: the same rows
    assert torch.equal(one, weights[:1])


def test_local_p_weights_gradcheck_in_float64():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 3, 12, generator=g, dtype=torch.float64, requires_grad=True)
    position = (torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 4.0]))
    position.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, p: lab.local_p_weights(s, p, (3, 4), 1.7), (scores, position))


def test_local_p_weights_refuse_bad_arguments():
    with pytest.raises(ValueError, match="scores"):
        lab.local_p_weights(torch.zeros(2, 11), torch.zeros(2, 2), (3, 4))
    with pytest.raises(ValueError, match="position"):
        lab.local_p_weights(torch.zeros(2, 12), torch.zeros(3, 2), (3, 4))
    with pytest.raises(ValueError, match="window"):
        lab.local_p_weights(torch.zeros(2, 12), torch.zeros(2, 2), (3, 4), 0.25)
    for outside in (torch.tensor([[3.5, 1.0]]), torch.tensor([[-0.1, 1.0]]), torch.tensor([[1.0, float("nan")]])):
        with pytest.raises(ValueError, match="position"):
            lab.local_p_weights(torch.zeros(1, 12), outside, (3, 4))
    with pytest.raises(ValueError, match="kind"):
        lab.LuongReader("attention")


def _tiny(kind):
    return lab.LuongReader(kind, channels=8, grid=(2, 3), dim=8, num_heads=2, hidden=16)


def test_luong_readers_read_with_their_attention():
    torch.manual_seed(0)
    features = torch.randn(3, 8, 2, 3)
    tokens = torch.softmax(torch.randn(3, 4, lab.VOCAB), -1)
    for kind in lab.VARIANTS:
        model = _tiny(kind).eval()
        with record_attention(model) as maps:
            logits = model(features, tokens)
        weights = maps["block.cross_attn"]  # (B, h, T, H·W)
        assert logits.shape == (3, 4, lab.VOCAB) and weights.shape == (3, 2, 4, 6)
        if kind == "hard":  # eval: one position per head, the most likely one
            assert torch.equal(weights.sum(-1), torch.ones(3, 2, 4)) and set(weights.unique().tolist()) <= {0.0, 1.0}
        else:
            p = model.position
            assert p.shape == (3, 4, 2) and (p > 0).all() and (p < torch.tensor([2.0, 3.0])).all()
            assert (weights.sum(-1) <= 1 + 1e-6).all()
        # one canvas alone reads the same (batch 1)
        assert torch.allclose(model(features[:1], tokens[:1]), logits[:1], atol=1e-5)
        tokens_read, _ = model.read(features)
        assert tokens_read.shape == (3, lab.STEPS, lab.VOCAB)
    # a reader with a local-p window as wide as the map is a soft global reader with one more map
    wide = lab.LuongReader("local_p", channels=8, grid=(2, 3), dim=8, num_heads=2, window=1e4).eval()
    soft = lab.Reader("attention", channels=8, grid=(2, 3), dim=8, num_heads=2).eval()
    soft.load_state_dict({k: v for k, v in wide.state_dict().items() if k in soft.state_dict()})
    assert torch.allclose(wide(features, tokens), soft(features, tokens), atol=1e-5)


def test_hard_reader_samples_while_training_and_learns_by_reinforce():
    torch.manual_seed(0)
    model = _tiny("hard").train()
    model.expected = 0.0
    features = torch.randn(6, 8, 2, 3)
    inputs, targets = lab.sequences(torch.tensor([[1, 2, -1, -1]] * 6))
    tokens = torch.nn.functional.one_hot(inputs, lab.VOCAB).float()
    logits = model(features, tokens)
    assert model.log_prob.shape == (6, 2, lab.STEPS) and (model.log_prob <= 0).all()
    loss = model.policy_loss(logits, targets)
    assert loss.requires_grad
    loss.backward()  # the scores (W^Q, W^K) get a gradient only from REINFORCE
    assert model.block.cross_attn.q.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="targets"):
        model.policy_loss(logits, targets.float())
    model.expected = 1.0  # Xu et al.'s expectation: soft weights, no REINFORCE term
    logits = model(features, tokens)
    assert float(model.policy_loss(logits, targets)) == 0.0


def test_fit_reader_trains_the_variants():
    features = torch.randn(8, 8, 2, 3)
    strings = torch.tensor([[1, 2, -1, -1], [3, -1, -1, -1]] * 4)
    for kind in lab.VARIANTS:
        model, _ = lab.fit_reader(kind, (features, strings), epochs=2, batch_size=4, dim=8, num_heads=2)
        assert isinstance(model, lab.LuongReader) and model.kind == kind and not model.training


def test_the_stored_variants_come_from_this_code_and_recipe():
    saved = torch.load(lab.VARIANT_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.variants_fingerprint(), (
        "the reader variants' code or recipe changed since the weights were trained: run make weights"
    )
    assert saved["recipe"] == dict(lab.VARIANT_RECIPE) and list(saved["readers"]) == list(lab.VARIANTS)
    readers = lab.load_variants()
    for kind in lab.VARIANTS:
        assert len(readers[kind]) == len(lab.VARIANT_RECIPE["seeds"])
        assert not any(p.requires_grad for p in readers[kind][0].parameters())
    # what the chapter claims of them, with margins: local-p reads well above chance
    assert min(saved["exact"]["local_p"]) > 0.3


def test_load_variants_refuses_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the reader variants"):
        lab.load_variants(other)
    with pytest.raises(ValueError, match="path"):
        lab.load_variants(tmp_path / "missing.pt")


def test_the_stored_readers_and_finders_come_from_this_code_and_recipe():
    saved = torch.load(lab.MODEL_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.models_fingerprint(), (
        "the readers' or finders' code or recipe changed since the weights were trained: run "
        "make weights"
    )
    r = lab.MODEL_RECIPE
    names = [f"reader {k}" for k in r["readers"]] + [f"finder {k}" for k in r["finders"]]
    assert saved["recipe"] == dict(r) and list(saved["models"]) == names
    runs = lab.load_global_models()
    for run in runs.values():
        assert len(run.models) == len(r["seeds"]) and not run.models[0].training
    # what the chapter claims of them, with margins: the attention reader far ahead of the pooled
    # one; object queries and the dense head both find most canvases
    low = {n: min(run.accuracies) for n, run in runs.items()}
    high = {n: max(run.accuracies) for n, run in runs.items()}
    assert low["reader attention"] > 0.5 and high["reader pooled"] < low["reader attention"] - 0.2
    assert low["finder queries"] > 0.35 and low["finder dense"] > 0.35


def test_train_global_models_trains_what_the_file_holds(tmp_path):
    x, s, _, _ = lab.reading_task(6, "train", seed=0)
    _, c, _, b = lab.finding_task(6, "train", seed=0)
    f = torch.randn(6, 64, *lab.GRID)
    runs = lab.train_global_models(((f, s), (f[:2], s[:2])), ((f, c, b), (f[:2], c[:2], b[:2])),
                                   readers=["pooled"], finders=["dense"], seeds=(0,), epochs=1)
    assert list(runs) == ["reader pooled", "finder dense"]
    with pytest.raises(ValueError, match="reading"):
        lab.train_global_models(None, ((f, c, b), (f, c, b)))
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the readers and finders"):
        lab.load_global_models(other)
