import torch
from composer.core import Event

from dnax import tokenizer as tk
from dnax.algorithms.reverse_complement import ReverseComplementAugmentation, random_reverse_complement


def test_pure_function_flips_about_half_the_rows_exactly():
    ids = torch.randint(tk.A, tk.N + 1, (400, 33))
    out, flipped = random_reverse_complement(ids, p=0.5, generator=torch.Generator().manual_seed(0))
    assert 150 < flipped.sum() < 250
    assert torch.equal(out[flipped], tk.reverse_complement(ids[flipped]))
    assert torch.equal(out[~flipped], ids[~flipped])


def test_p_zero_and_one():
    ids = torch.randint(tk.A, tk.T + 1, (5, 9))
    assert torch.equal(random_reverse_complement(ids, p=0.0)[0], ids)
    assert torch.equal(random_reverse_complement(ids, p=1.0)[0], tk.reverse_complement(ids))


class _State:
    def __init__(self, batch):
        self.batch = batch


def test_algorithm_applies_after_dataloader_only():
    algo = ReverseComplementAugmentation(p=1.0)
    ids = torch.randint(tk.A, tk.T + 1, (3, 8))
    state = _State({"input_ids": ids.clone()})
    assert algo.match(Event.AFTER_DATALOADER, state)
    assert not algo.match(Event.EVAL_BEFORE_FORWARD, state)
    assert not algo.match(Event.BEFORE_FORWARD, state)
    algo.apply(Event.AFTER_DATALOADER, state, None)
    assert torch.equal(state.batch["input_ids"], tk.reverse_complement(ids))
    assert state.batch["reverse_complemented"].all()


def test_keyed_flips_depend_on_the_sample_only():
    n = 64
    batch = {"input_ids": torch.randint(tk.A, tk.T + 1, (n, 16)), "chrom_index": torch.zeros(n, dtype=torch.long),
             "start": torch.arange(n, dtype=torch.long) * 16, "epoch": torch.zeros(n, dtype=torch.long)}
    algo = ReverseComplementAugmentation(p=0.5, seed=3)
    state = _State({k: v.clone() for k, v in batch.items()})
    algo.apply(Event.AFTER_DATALOADER, state, None)
    flips = state.batch["reverse_complemented"]
    assert 10 < int(flips.sum()) < 54
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    shuffled = _State({k: v[perm].clone() for k, v in batch.items()})
    algo.apply(Event.AFTER_DATALOADER, shuffled, None)
    assert torch.equal(shuffled.batch["reverse_complemented"], flips[perm])
    assert torch.equal(shuffled.batch["input_ids"], state.batch["input_ids"][perm])
    later = _State({**{k: v.clone() for k, v in batch.items()}, "epoch": torch.ones(n, dtype=torch.long)})
    algo.apply(Event.AFTER_DATALOADER, later, None)
    assert not torch.equal(later.batch["reverse_complemented"], flips)
