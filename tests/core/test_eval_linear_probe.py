from __future__ import annotations

import numpy as np
import pytest
import torch

from domainclip.core.eval import linear_probe
from domainclip.core.eval.linear_probe import DEFAULT_C_GRID


def clusters(n_per_class: int, num_classes: int, dim: int, seed: int, spread: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = np.eye(num_classes, dim) * 5.0
    labels = np.repeat(np.arange(num_classes), n_per_class)
    feats = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return torch.from_numpy(feats).float(), torch.from_numpy(labels)


def test_separable_features_are_probed_perfectly():
    x_train, y_train = clusters(20, 3, 8, seed=0)
    x_test, y_test = clusters(10, 3, 8, seed=1)
    out = linear_probe(x_train, y_train, x_test, y_test)
    assert out["lp_acc1"] == 1.0 and out["lp_mean_per_class_recall"] == 1.0
    assert out["lp_C"] in DEFAULT_C_GRID and out["lp_val_acc1"] == 1.0


def test_random_labels_stay_near_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 16))
    y = rng.integers(0, 4, size=600)
    out = linear_probe(x[:400], y[:400], x[400:], y[400:], c_grid=[0.1, 1.0], seed=3)
    assert 0.1 < out["lp_acc1"] < 0.4  # chance is 0.25
    assert out["lp_C"] in (0.1, 1.0)


def test_c_search_prefers_what_validation_supports():
    # labels depend on one weak feature buried in noise: heavy regularisation (tiny C) underfits
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 10))
    y = (x[:, 0] > 0).astype(int)
    out = linear_probe(x[:300], y[:300], x[300:], y[300:], c_grid=[1e-5, 10.0])
    assert out["lp_C"] == 10.0 and out["lp_acc1"] > 0.9


def test_single_sample_classes_fall_back_to_an_unstratified_split():
    x_train, y_train = clusters(6, 2, 4, seed=0)
    x_train = torch.cat([x_train, torch.full((1, 4), 9.0)])
    y_train = torch.cat([y_train, torch.tensor([2])])  # class 2 has one sample
    x_test, y_test = clusters(3, 2, 4, seed=1)
    assert linear_probe(x_train, y_train, x_test, y_test, c_grid=[1.0])["lp_acc1"] == 1.0


def test_bad_inputs_raise():
    x, y = clusters(5, 2, 4, seed=0)
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="feature sizes differ"):
        linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(x, torch.zeros_like(y), x, y)
    with pytest.raises(ValueError, match="c_grid"):
        linear_probe(x, y, x, y, c_grid=[0.0])
    with pytest.raises(ValueError, match="dimension"):
        linear_probe(x[0], y, x, y)
