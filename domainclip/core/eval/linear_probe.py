"""Linear probe: logistic regression on frozen features, with C chosen on a held-out split of train.

As in the CLIP paper's linear-probe protocol (L-BFGS logistic regression, regularisation chosen on a
validation split), scaled down to a small grid so it runs in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from torch import Tensor

__all__ = ["DEFAULT_C_GRID", "linear_probe"]

#: Inverse regularisation strengths tried by default.
DEFAULT_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)


def _as_numpy(x: Tensor | np.ndarray, name: str, ndim: int) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


def linear_probe(
    train_features: Tensor | np.ndarray,
    train_labels: Tensor | np.ndarray,
    test_features: Tensor | np.ndarray,
    test_labels: Tensor | np.ndarray,
    *,
    c_grid: Sequence[float] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_iter: int = 1000,
) -> dict[str, Any]:
    """Fit a logistic-regression probe on train features and score it on test features.

    Each ``C`` in the grid is fitted on ``1 - val_fraction`` of the train set and scored on the rest
    (a stratified split when every class has two or more samples and both parts can hold every
    class); the best ``C`` is refitted on the whole train set.

    Args:
        train_features: ``(N_train, D)`` frozen features.
        train_labels: ``(N_train,)`` class indices.
        test_features: ``(N_test, D)``.
        test_labels: ``(N_test,)``.
        c_grid: inverse regularisation strengths to try; :data:`DEFAULT_C_GRID` when ``None``.
        seed: seeds the validation split and the solver.
        val_fraction: share of train held out to choose ``C``.
        max_iter: solver iterations.

    Returns:
        ``lp_acc1``, ``lp_mean_per_class_recall`` on test, ``lp_C`` (the chosen C) and ``lp_val_acc1``
        (its validation accuracy).

    """
    x_train = _as_numpy(train_features, "train_features", 2).astype(np.float64)
    y_train = _as_numpy(train_labels, "train_labels", 1).astype(np.int64)
    x_test = _as_numpy(test_features, "test_features", 2).astype(np.float64)
    y_test = _as_numpy(test_labels, "test_labels", 1).astype(np.int64)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(
            f"features and labels differ in length: train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)}"
        )
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"train and test feature sizes differ: {x_train.shape[1]} vs {x_test.shape[1]}")
    if len(np.unique(y_train)) < 2:
        raise ValueError("linear_probe needs at least two classes in the train labels")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    grid = sorted(DEFAULT_C_GRID if c_grid is None else c_grid)
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"c_grid must hold positive values, got {grid}")

    def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(x, y)

    classes, counts = np.unique(y_train, return_counts=True)
    n_val = int(np.ceil(val_fraction * len(y_train)))
    can_stratify = counts.min() >= 2 and len(classes) <= min(n_val, len(y_train) - n_val)
    stratify = y_train if can_stratify else None
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=val_fraction, random_state=seed, stratify=stratify
    )
    best_c, best_acc = grid[0], -1.0
    for c in grid:
        acc = float((fit(x_fit, y_fit, c).predict(x_val) == y_val).mean())
        if acc > best_acc:  # ties keep the smaller C (stronger regularisation)
            best_c, best_acc = c, acc
    probe = fit(x_train, y_train, best_c)
    pred = probe.predict(x_test)
    return {
        "lp_acc1": float((pred == y_test).mean()),
        "lp_mean_per_class_recall": float(balanced_accuracy_score(y_test, pred)),
        "lp_C": float(best_c),
        "lp_val_acc1": best_acc,
    }
