"""Sequence-classification metrics computed over a whole split, never averaged over batches.

The reference (DNA-xLSTM / Caduceus `src/tasks/metrics.py`) computes MCC and F1 with sklearn on each batch and
averages the batch values; on an imbalanced split a batch holding a single class gets MCC 0, so the average is
biased (towards 0 for MCC) and depends on the batch size. Here every metric accumulates sufficient statistics
over all batches (a confusion matrix; all scores for AUROC; a loss sum and an example count for cross-entropy);
states are summed (concatenated) across processes by torchmetrics, and `compute()` applies the formula once to the
whole split.

Every `update(logits, labels)` takes logits or probabilities (B, C) and integer labels (B,).
"""
from __future__ import annotations

import torch
from torchmetrics import Metric


class _ConfusionMetric(Metric):
    """Accumulates the C x C confusion matrix `counts[true, predicted]` (argmax prediction)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, **kw):
        super().__init__(**kw)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.add_state("counts", default=torch.zeros(num_classes, num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if logits.ndim != 2 or logits.shape[-1] != self.num_classes:
            raise ValueError(f"{type(self).__name__}: logits must be (B, {self.num_classes}), "
                             f"got {tuple(logits.shape)}")
        labels = labels.reshape(-1).long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{type(self).__name__}: labels outside 0..{self.num_classes - 1}")
        flat = labels * self.num_classes + logits.argmax(-1)
        self.counts += torch.bincount(flat, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes).to(self.counts)


def mcc_from_confusion(counts: torch.Tensor) -> torch.Tensor:
    """Matthews correlation (Gorodkin's multi-class R_K; the usual MCC for 2 classes); 0 when undefined."""
    n = counts.sum()
    correct = counts.trace()
    true_per_class, pred_per_class = counts.sum(1), counts.sum(0)
    cov_tp = correct * n - (true_per_class * pred_per_class).sum()
    cov_pp = n * n - (pred_per_class * pred_per_class).sum()
    cov_tt = n * n - (true_per_class * true_per_class).sum()
    denom = torch.sqrt(cov_pp * cov_tt)
    return (cov_tp / denom).float() if denom > 0 else torch.tensor(0.0)


def f1_per_class(counts: torch.Tensor) -> torch.Tensor:
    """F1 of each class (0 for a class never predicted nor present)."""
    tp = counts.diagonal()
    denom = counts.sum(0) + counts.sum(1)  # 2 TP + FP + FN
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))


class MCC(_ConfusionMetric):
    """Matthews correlation coefficient over the whole split."""

    def compute(self) -> torch.Tensor:
        return mcc_from_confusion(self.counts)


class F1(_ConfusionMetric):
    """F1 of the positive class (label 1) for 2 classes, macro-F1 for more (the reference's `f1_binary`/`f1_macro`)."""

    def compute(self) -> torch.Tensor:
        per_class = f1_per_class(self.counts)
        return (per_class[1] if self.num_classes == 2 else per_class.mean()).float()


class MacroF1(_ConfusionMetric):
    """Unweighted mean of the per-class F1."""

    def compute(self) -> torch.Tensor:
        return f1_per_class(self.counts).mean().float()


class Accuracy(_ConfusionMetric):
    """Fraction of correctly classified sequences."""

    def compute(self) -> torch.Tensor:
        n = self.counts.sum()
        return (self.counts.trace() / n).float() if n > 0 else torch.tensor(0.0)


def binary_auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve by the rank statistic (Mann-Whitney U; ties count one half); NaN if one class."""
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return torch.tensor(float("nan"))
    scores = scores.double()
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    # 1-based ranks, averaged within each group of tied scores
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    group_end = torch.cumsum(counts, 0).double()
    mean_rank = group_end - (counts.double() - 1) / 2
    ranks = torch.empty_like(scores)
    ranks[order] = mean_rank[inverse]
    u = ranks[positive.bool()].sum() - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).float()


class AUROC(Metric):
    """ROC AUC over the whole split: of P(class 1) for 2 classes, macro one-vs-rest for more (classes absent
    from the split are skipped). Keeps every score (B x C floats), gathered across processes."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, **kw):
        super().__init__(**kw)
        self.num_classes = num_classes
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.probs.append(torch.softmax(logits.detach().float(), -1))
        self.labels.append(labels.reshape(-1).long())

    def compute(self) -> torch.Tensor:
        if not len(self.probs):
            return torch.tensor(float("nan"))
        probs = torch.cat(self.probs) if isinstance(self.probs, list) else self.probs
        labels = torch.cat(self.labels) if isinstance(self.labels, list) else self.labels
        if self.num_classes == 2:
            return binary_auroc(probs[:, 1], labels == 1)
        per_class = [binary_auroc(probs[:, c], labels == c) for c in range(self.num_classes)]
        valid = [v for v in per_class if not torch.isnan(v)]
        return torch.stack(valid).mean() if valid else torch.tensor(float("nan"))


class CrossEntropy(Metric):
    """Mean cross-entropy per example over the whole split, from logits (Composer's `CrossEntropy` averages batch
    means, which weighs the examples of a short last batch more)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_state("sum_loss", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.reshape(-1).long()
        self.sum_loss += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").double()
        self.count += labels.numel()

    def compute(self) -> torch.Tensor:
        return (self.sum_loss / self.count).float() if self.count > 0 else torch.tensor(float("nan"))


#: task.metric -> metric name in `classification_metrics`
HEADLINE = {"mcc": "MCC", "f1": "F1", "accuracy": "Accuracy"}


def classification_metrics(num_classes: int) -> dict[str, Metric]:
    """Fresh instances of every split-level metric, keyed by the name Composer logs them under."""
    return {"Accuracy": Accuracy(num_classes), "MCC": MCC(num_classes), "F1": F1(num_classes),
            "MacroF1": MacroF1(num_classes), "AUROC": AUROC(num_classes), "CrossEntropy": CrossEntropy()}
