"""Split-level classification metrics against direct computations on the whole split, fed in uneven batches."""
import math

import numpy as np
import pytest
import torch

from dnax.models.classification_metrics import AUROC, F1, MCC, Accuracy, MacroF1, classification_metrics

UNEVEN = [1, 7, 13, 2, 31, 64, 5]


def feed(metric, logits, labels, sizes=UNEVEN):
    start = 0
    while start < len(labels):
        for size in sizes:
            metric.update(logits[start:start + size], labels[start:start + size])
            start += size
            if start >= len(labels):
                break
    return float(metric.compute())


def direct_mcc_binary(y, p):
    tp = np.sum((y == 1) & (p == 1)); tn = np.sum((y == 0) & (p == 0))  # noqa: E702
    fp = np.sum((y == 0) & (p == 1)); fn = np.sum((y == 1) & (p == 0))  # noqa: E702
    denom = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else float(tp * tn - fp * fn) / denom


def direct_mcc_multiclass(y, p, k):
    """R_K as the correlation of the one-hot label and prediction matrices (Gorodkin 2004)."""
    x, z = np.eye(k)[y], np.eye(k)[p]
    x, z = x - x.mean(0), z - z.mean(0)
    cov = lambda a, b: float((a * b).sum())  # noqa: E731
    return cov(x, z) / math.sqrt(cov(x, x) * cov(z, z))


def direct_f1(y, p, c):
    tp = np.sum((y == c) & (p == c)); fp = np.sum((y != c) & (p == c)); fn = np.sum((y == c) & (p != c))  # noqa: E702
    return 0.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def direct_auroc(scores, positive):
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def make_split(n=500, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) + 1.2 * torch.nn.functional.one_hot(labels, k)
    logits = torch.round(logits * 4) / 4  # some tied scores for AUROC
    return logits, labels


def test_binary_metrics_match_direct_formulas_over_uneven_batches():
    logits, labels = make_split()
    y, p = labels.numpy(), logits.argmax(-1).numpy()
    assert feed(MCC(2), logits, labels) == pytest.approx(direct_mcc_binary(y, p), abs=1e-6)
    assert feed(F1(2), logits, labels) == pytest.approx(direct_f1(y, p, 1), abs=1e-6)
    assert feed(Accuracy(2), logits, labels) == pytest.approx(float((y == p).mean()), abs=1e-6)
    assert feed(MacroF1(2), logits, labels) == pytest.approx((direct_f1(y, p, 0) + direct_f1(y, p, 1)) / 2, abs=1e-6)
    probs = torch.softmax(logits, -1)[:, 1].numpy()
    assert feed(AUROC(2), logits, labels) == pytest.approx(direct_auroc(probs, y == 1), abs=1e-6)


def test_multiclass_metrics_match_direct_formulas():
    logits, labels = make_split(k=3, seed=1)
    y, p = labels.numpy(), logits.argmax(-1).numpy()
    assert feed(MCC(3), logits, labels) == pytest.approx(direct_mcc_multiclass(y, p, 3), abs=1e-6)
    macro = np.mean([direct_f1(y, p, c) for c in range(3)])
    assert feed(F1(3), logits, labels) == pytest.approx(macro, abs=1e-6)
    assert feed(MacroF1(3), logits, labels) == pytest.approx(macro, abs=1e-6)
    probs = torch.softmax(logits, -1).numpy()
    ovr = np.mean([direct_auroc(probs[:, c], y == c) for c in range(3)])
    assert feed(AUROC(3), logits, labels) == pytest.approx(ovr, abs=1e-6)


def test_binary_mcc_of_two_classes_equals_the_multiclass_formula():
    logits, labels = make_split(seed=3)
    y, p = labels.numpy(), logits.argmax(-1).numpy()
    assert direct_mcc_binary(y, p) == pytest.approx(direct_mcc_multiclass(y, p, 2), abs=1e-9)


def test_whole_split_mcc_is_not_the_reference_per_batch_average_on_imbalanced_data():
    """The reference computes MCC per batch and averages: batches without a positive score 0 (undefined MCC),
    so a good classifier on a 2 %-positive split gets a per-batch mean far below its split MCC."""
    n, batch = 2048, 32
    labels = torch.zeros(n, dtype=torch.long)
    labels[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:40]] = 1
    preds = labels.clone()
    preds[torch.nonzero(labels)[:3, 0]] = 0  # 3 false negatives
    preds[torch.nonzero(labels == 0)[:2, 0]] = 1  # 2 false positives
    logits = torch.nn.functional.one_hot(preds, 2).float()
    y, p = labels.numpy(), preds.numpy()
    whole = direct_mcc_binary(y, p)
    per_batch = np.mean([direct_mcc_binary(y[i:i + batch], p[i:i + batch]) for i in range(0, n, batch)])
    assert (y == p).mean() > 0.99 and whole > 0.85
    assert per_batch < 0.6  # the reference's number
    metric = MCC(2)
    for i in range(0, n, batch):
        metric.update(logits[i:i + batch], labels[i:i + batch])
    assert float(metric.compute()) == pytest.approx(whole, abs=1e-6)


def test_states_from_several_processes_sum_to_the_whole_split():
    """Each process accumulates its shard; torchmetrics reduces the states (sum / cat) before compute."""
    logits, labels = make_split(seed=4)
    for name, whole in classification_metrics(2).items():
        shards = [classification_metrics(2)[name] for _ in range(3)]
        for r, m in enumerate(shards):
            m.update(logits[r::3], labels[r::3])
        merged = shards[0]
        for other in shards[1:]:
            merged.merge_state(other)
        whole.update(logits, labels)
        assert float(merged.compute()) == pytest.approx(float(whole.compute()), abs=1e-6), name


def test_degenerate_inputs():
    one_class = torch.zeros(10, dtype=torch.long)
    logits = torch.nn.functional.one_hot(one_class, 2).float()
    assert feed(MCC(2), logits, one_class) == 0.0  # undefined -> 0, as sklearn
    assert math.isnan(feed(AUROC(2), logits, one_class))
    with pytest.raises(ValueError, match="labels outside"):
        MCC(2).update(logits, one_class + 5)
    with pytest.raises(ValueError, match="logits must be"):
        MCC(3).update(logits, one_class)
