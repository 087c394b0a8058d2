"""
GLUE's metrics, as GLUE computes them: accuracy, F1 and Matthews correlation (scikit-learn's
definitions), Pearson and Spearman correlation (scipy's, ties ranked by their average), in numpy.

    compute_metrics(("pearson", "spearman"), predictions, labels) -> {"pearson": ..., "spearman": ...}

References: the GLUE benchmark (Wang et al., 2018); scikit-learn's f1_score and matthews_corrcoef;
scipy.stats.pearsonr and spearmanr (tests/test_train.py holds reference values computed with scipy).
"""

import math
import warnings

import numpy as np


def average_ranks(x):
    """Ranks 1..n, tied values sharing the mean of their ranks (as scipy.stats.rankdata, which
    GLUE's Spearman uses): STS-B dev has 1,500 labels but only 161 distinct values."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def correlation(a, b, name):
    """Pearson correlation; 0 (with a warning) when either side is constant, where it is undefined."""
    if np.std(a) == 0 or np.std(b) == 0:
        warnings.warn(f"{name}: the {'predictions' if np.std(a) == 0 else 'labels'} are constant, so the "
                      "correlation is undefined; reported as 0")
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def matthews(preds, labels):
    """Matthews correlation for any number of classes (scikit-learn's matthews_corrcoef, Gorodkin's
    R_K): (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)), c the correct
    predictions, s all of them, p_k and t_k how often class k is predicted and true; 0 when undefined.
    With two classes it is the usual (tp tn - fp fn) / sqrt(...)."""
    classes = np.union1d(preds, labels)
    p = np.array([(preds == k).sum() for k in classes], dtype=float)
    t = np.array([(labels == k).sum() for k in classes], dtype=float)
    c, s = float((preds == labels).sum()), float(len(labels))
    den = math.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
    return (c * s - float((p * t).sum())) / den if den else 0.0


def compute_metrics(names, preds, labels):
    """GLUE's metrics, as GLUE computes them (scikit-learn's accuracy, F1 and Matthews, scipy's
    Pearson and Spearman); degenerate cases give 0, as scikit-learn's Matthews does."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    out = {}
    for name in names:
        if name == "accuracy":
            out[name] = float((preds == labels).mean())
        elif name == "f1":
            tp = float(((preds == 1) & (labels == 1)).sum())
            out[name] = 2 * tp / max(float((preds == 1).sum() + (labels == 1).sum()), 1.0)
        elif name == "matthews":
            out[name] = matthews(preds, labels)
        elif name == "pearson":
            out[name] = correlation(preds, labels, name)
        elif name == "spearman":
            out[name] = correlation(average_ranks(preds), average_ranks(labels), name)
    return out
