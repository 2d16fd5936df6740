"""Batches: left padding with [PAD], truncation keeping the first bases, no special tokens, seeded RC augmentation."""
import pytest
import torch

from dnax.data.downstream import classification_dataloader, custom_task, pad_left, task_dataloader
from dnax.tokenizer import PAD

from .conftest import FIXTURES

IDS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}
RC = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def ids(text):
    return [IDS[c] for c in text.upper()]


def rc(text):
    return text.translate(RC)[::-1]


def batches(loader):
    return [(b["input_ids"].clone(), b["labels"].clone()) for b in loader]


def test_left_padding_truncation_and_no_special_tokens():
    examples = [("ACGT", 0), ("acgtNNAC", 1), ("GATTACAGATTACA", 2), ("r", 0)]
    (input_ids, labels), = batches(classification_dataloader(examples, batch_size=4, max_length=8, shuffle=False))
    assert input_ids.dtype == torch.long and input_ids.shape == (4, 8)
    assert input_ids.tolist() == [
        [PAD] * 4 + ids("ACGT"),  # shorter: [PAD] on the left, no [CLS]/[SEP]
        ids("ACGTNNAC"),  # lowercase accepted, exact length untouched
        ids("GATTACAG"),  # longer: the first max_length bases are kept (right-side truncation)
        [PAD] * 7 + [IDS["N"]],  # IUPAC code -> N
    ]
    assert labels.tolist() == [0, 1, 2, 0]
    assert pad_left(torch.tensor(ids("ACG")).numpy(), 2).tolist() == ids("AC")


def test_no_rc_unless_asked_and_rc_before_truncation():
    examples = [("AAAACCCC", 0)] * 64  # forward, cut to 4: AAAA; reverse complement GGGGTTTT, cut to 4: GGGG
    plain = torch.cat([b for b, _ in batches(classification_dataloader(
        examples, batch_size=16, max_length=4, shuffle=True, seed=3))])
    assert (plain == torch.tensor(ids("AAAA"))).all()
    flipped = torch.cat([b for b, _ in batches(classification_dataloader(
        examples, batch_size=16, max_length=4, shuffle=True, seed=3, rc_aug=True))])
    is_fwd = (flipped == torch.tensor(ids("AAAA"))).all(1)
    is_rc = (flipped == torch.tensor(ids("GGGG"))).all(1)
    assert (is_fwd | is_rc).all() and 16 < int(is_rc.sum()) < 48


def test_rc_aug_and_shuffle_are_deterministic_by_seed_and_change_per_epoch():
    examples = [(seq, i % 3) for i, seq in enumerate(["ACGTTGCA"[i % 8:] + "AC" * (i % 5) for i in range(40)])]

    def make(seed):
        return classification_dataloader(examples, batch_size=8, max_length=12, shuffle=True, seed=seed, rc_aug=True)

    a, b, c = make(0), make(0), make(1)
    epoch1_a, epoch1_b, epoch1_c = batches(a), batches(b), batches(c)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(epoch1_a, epoch1_b))
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(epoch1_a, epoch1_c))
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(batches(a), epoch1_a))  # a new epoch, a new draw
    # every row is its example, forward or reverse complemented
    allowed = {tuple(pad_left(torch.tensor(ids(s)).numpy(), 12).tolist()) for s, _ in examples}
    allowed |= {tuple(pad_left(torch.tensor(ids(rc(s))).numpy(), 12).tolist()) for s, _ in examples}
    assert all(tuple(row.tolist()) in allowed for x, _ in epoch1_a for row in x)


def test_workers_do_not_change_the_batches():
    examples = [("ACGTACGGT"[: 3 + i % 6], i % 2) for i in range(24)]
    kwargs = dict(batch_size=6, max_length=8, shuffle=True, seed=5, rc_aug=True)
    in_process = batches(classification_dataloader(examples, **kwargs))
    with_worker = batches(classification_dataloader(examples, num_workers=1, **kwargs))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(in_process, with_worker))


def test_task_dataloader_defaults(tmp_path):
    task = custom_task("prom_core_tata", FIXTURES / "gue_prom_core_tata", max_length=70)
    train = task_dataloader(task, "train", batch_size=4, rc_aug=True, seed=1)
    test = task_dataloader(task, "test", batch_size=4, rc_aug=True)
    assert train.sampler.shuffle and train.sampler.rc_aug
    assert not test.sampler.shuffle and not test.sampler.rc_aug  # rc_aug is for training only
    batch = next(iter(test))
    assert batch["input_ids"].shape == (4, 70) and batch["labels"].shape == (4,)
    short = task_dataloader(task, "valid", batch_size=8, max_length=16, drop_last=True)
    assert next(iter(short))["input_ids"].shape == (8, 16) and len(short) == 1
    with pytest.raises(ValueError, match="split must be"):
        task_dataloader(task, "dev", batch_size=4)


def test_distributed_shares(monkeypatch):
    from dnax.data.downstream import loader as loader_module

    def shares(shuffle):
        out = []
        for rank in (0, 1):
            monkeypatch.setattr(loader_module, "_world", lambda rank=rank: (rank, 2))
            sampler = loader_module.ExampleSampler(5, shuffle=shuffle, rc_aug=False, seed=0, pad_to_world=shuffle)
            out.append([i for i, _ in sampler])
            assert len(sampler) == len(out[-1])
        return out

    train = shares(True)  # padded to a multiple of the world size, as DistributedSampler
    assert [len(s) for s in train] == [3, 3] and set(train[0] + train[1]) == set(range(5))
    evaluation = shares(False)  # strided, every example exactly once
    assert evaluation == [[0, 2, 4], [1, 3]]
