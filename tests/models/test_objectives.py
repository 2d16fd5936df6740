import torch

from dnax import tokenizer as tk
from dnax.models.objectives import IGNORE_INDEX, CausalLM, MaskedLM


def _batch(b=8, l=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(tk.A, tk.T + 1, (b, l), generator=g)
    ids[0, :10] = tk.N
    return {"input_ids": ids, "chrom_index": torch.zeros(b, dtype=torch.long),
            "start": torch.arange(b, dtype=torch.long) * l}


def test_mlm_rates_and_targets():
    batch = _batch(64, 1024)
    inputs, targets = MaskedLM()(batch, training=True)
    tokens = batch["input_ids"]
    scored = targets != IGNORE_INDEX
    valid = tokens != tk.N
    rate = scored.sum() / valid.sum()
    assert abs(rate.item() - 0.15) < 0.01
    assert torch.equal(targets[scored], tokens[scored])           # targets are the original bases
    assert not scored[~valid].any()                               # N is never scored
    assert (inputs[~valid] == tk.PAD).all()                        # N -> PAD in inputs
    masked = inputs[scored] == tk.MASK
    assert abs(masked.float().mean().item() - 0.8) < 0.02
    unchanged = inputs[scored] == tokens[scored]
    # 10 % unchanged plus the 1/12 of vocab-wide random replacements that hit the same id (reference behaviour)
    assert abs(unchanged.float().mean().item() - (0.1 + 0.1 / 12)) < 0.02
    assert torch.equal(inputs[~scored & valid], tokens[~scored & valid])


def test_mlm_random_nucleotides_option():
    batch = _batch(64, 1024)
    inputs, targets = MaskedLM(random_tokens="nucleotides")(batch, training=True)
    scored = targets != IGNORE_INDEX
    unchanged = inputs[scored] == batch["input_ids"][scored]
    assert abs(unchanged.float().mean().item() - (0.1 + 0.1 / 4)) < 0.02
    assert set(inputs.unique().tolist()) <= {tk.MASK, tk.PAD, tk.A, tk.C, tk.G, tk.T}


def test_mlm_eval_mask_is_fixed_by_genomic_position_not_by_batching():
    batch = _batch(6, 256)
    full_in, full_t = MaskedLM()(batch, training=False)
    again_in, again_t = MaskedLM()(batch, training=False)
    assert torch.equal(full_in, again_in) and torch.equal(full_t, again_t)
    half = {k: v[3:] for k, v in batch.items()}
    half_in, half_t = MaskedLM()(half, training=False)
    assert torch.equal(half_in, full_in[3:]) and torch.equal(half_t, full_t[3:])
    # training masks differ call to call
    a, _ = MaskedLM()(batch, training=True)
    b, _ = MaskedLM()(batch, training=True)
    assert not torch.equal(a, b)


def test_mlm_eval_mask_rate():
    inputs, targets = MaskedLM()(_batch(32, 1024), training=False)
    rate = (targets != IGNORE_INDEX).float().mean().item()
    assert abs(rate - 0.15) < 0.01


def test_clm_shift_and_sep():
    batch = _batch(2, 16)
    inputs, targets = CausalLM()(batch, training=True)
    tokens = batch["input_ids"].clone()
    tokens[tokens == tk.N] = tk.PAD
    assert torch.equal(inputs, tokens)
    assert torch.equal(targets[:, :-1], tokens[:, 1:])
    assert (targets[:, -1] == tk.SEP).all()


def _epoch(batch, e):
    return {**batch, "epoch": torch.full_like(batch["start"], e)}


def test_keyed_training_masks_are_a_function_of_the_sample():
    """With train_seed and (chrom_index, start, epoch) in the batch, a window's mask does not depend on which other
    windows share its batch or in which order (so not on the process layout), and changes with the epoch."""
    mlm = MaskedLM(train_seed=7)
    batch = _epoch(_batch(6, 512), 0)
    full_in, full_t = mlm(batch, training=True)
    perm = torch.tensor([4, 1, 5, 0, 3, 2])
    shuffled_in, shuffled_t = mlm({k: v[perm] for k, v in batch.items()}, training=True)
    assert torch.equal(shuffled_in, full_in[perm]) and torch.equal(shuffled_t, full_t[perm])
    next_in, _ = mlm(_epoch(_batch(6, 512), 1), training=True)
    assert not torch.equal(next_in, full_in)
    other_seed, _ = MaskedLM(train_seed=8)(batch, training=True)
    assert not torch.equal(other_seed, full_in)
    eval_in, _ = mlm(batch, training=False)  # evaluation keeps its own fixed mask
    assert torch.equal(eval_in, MaskedLM()(batch, training=False)[0])
    # the keyed masks have the configured rates
    big = _epoch(_batch(64, 1024), 3)
    inputs, targets = mlm(big, training=True)
    scored = targets != IGNORE_INDEX
    assert abs(scored.sum().item() / (big["input_ids"] != tk.N).sum().item() - 0.15) < 0.01
    assert abs((inputs[scored] == tk.MASK).float().mean().item() - 0.8) < 0.02


def test_training_masks_without_sample_keys_use_the_global_rng():
    mlm = MaskedLM(train_seed=7)
    batch = _batch(4, 256)  # no epoch: keyed draws are impossible
    torch.manual_seed(0)
    a, _ = mlm(batch, training=True)
    torch.manual_seed(0)
    b, _ = MaskedLM()(batch, training=True)
    assert torch.equal(a, b)
