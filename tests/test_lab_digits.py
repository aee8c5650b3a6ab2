"""Tests of visual_attention.labs.digits: the frozen digit encoder and the file of its weights."""

from __future__ import annotations

import pytest
import torch

from visual_attention.labs.digits import (
    DIGIT_SIZE,
    WEIGHTS,
    DigitCNN,
    digits_at,
    load_digit_cnn,
    recipe_fingerprint,
    train_digit_cnn,
)
from visual_attention.train import evaluate


def test_the_weights_file_is_small_and_made_by_the_current_code():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= 1_000_000
    saved = torch.load(WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == recipe_fingerprint(), (
        "the encoder's code or recipe changed since the weights were made: run `make weights`"
    )


def test_the_frozen_encoder_reads_held_out_digits():
    model = load_digit_cnn()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x, y = digits_at(DIGIT_SIZE, "test")
    accuracy = evaluate(model, x, y)
    saved = torch.load(WEIGHTS, weights_only=True)
    assert accuracy >= 0.95
    assert abs(accuracy - saved["test_accuracy"]) <= 1 / len(y)  # one digit of float slack


def test_the_script_reproduces_the_file():
    """Retraining with the recipe gives the stored accuracy (to 1.5 points across CPUs) and, on
    this machine's kind, nearly the same weights."""
    model, accuracy = train_digit_cnn()
    saved = torch.load(WEIGHTS, weights_only=True)
    assert abs(accuracy - saved["test_accuracy"]) <= 0.015
    assert model.state_dict().keys() == saved["state_dict"].keys()


def test_feature_map_runs_over_a_larger_canvas():
    fmap = DigitCNN().feature_map(torch.rand(2, 1, 48, 48))
    assert fmap.shape == (2, 64, 12, 12)
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        DigitCNN().feature_map(torch.rand(2, 3, 48, 48))
