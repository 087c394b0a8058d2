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
            tp, tn = ((preds == 1) & (labels == 1)).sum(), ((preds == 0) & (labels == 0)).sum()
            fp, fn = ((preds == 1) & (labels == 0)).sum(), ((preds == 0) & (labels == 1)).sum()
            den = math.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
            out[name] = float(tp * tn - fp * fn) / den if den else 0.0
        elif name == "pearson":
            out[name] = correlation(preds, labels, name)
        elif name == "spearman":
            out[name] = correlation(average_ranks(preds), average_ranks(labels), name)
    return out
