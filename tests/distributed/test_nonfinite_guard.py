"""`NonFiniteLossGuard`: an injected NaN loss stops the run with the step and the windows, or skips the update."""
import fiddle as fdl
import pytest
import torch
from composer.core import Algorithm, Event

from dnax import run as cli
from dnax.callbacks import NonFiniteLossError
from experiments import hg38_xlstm


class PoisonLoss(Algorithm):
    """Multiplies the training loss by NaN at the given 0-based step (after the loss, before backward)."""

    def __init__(self, step: int):
        self.step = step

    def match(self, event, state):
        return event == Event.AFTER_LOSS and int(state.timestamp.batch) == self.step

    def apply(self, event, state, logger):
        state.loss = state.loss * float("nan")


class Snapshots(Algorithm):
    """Copies of the parameters and optimizer step counts after every batch."""

    def __init__(self):
        self.params, self.counts = [], []

    def match(self, event, state):
        return event == Event.BATCH_END

    def apply(self, event, state, logger):
        self.params.append([p.detach().clone() for p in state.model.parameters()])
        opt = state.optimizers[0]
        self.counts.append(sorted({int(s["step"]) for s in opt.state.values() if "step" in s}))


def _build(guard: str, steps: int, *extra):
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["tiny", f"steps({steps})", f"nan_guard('{guard}')", "eval_dataloader=None",
                     "trainer.save_interval='100ba'", f"trainer.run_name='{guard}'"])
    return cfg


def test_stop_names_step_and_windows(in_tmp):
    cfg = _build("stop", 2)
    cfg.trainer.algorithms = [*cfg.trainer.algorithms, fdl.Config(PoisonLoss, step=1)]
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss at step 1 \(rank 0: loss nan on windows "
                                                 r"\(chrom_index, start, rc\) \[\(0, \d+, (True|False)\), \(0, \d+"):
        cli.run(cfg)


def test_skip_leaves_parameters_and_optimizer_untouched(in_tmp):
    cfg = _build("skip", 3)
    cfg.trainer.algorithms = [*cfg.trainer.algorithms, fdl.Config(PoisonLoss, step=1), fdl.Config(Snapshots)]
    trainer = cli.run(cfg)
    snaps = [a for a in trainer.state.algorithms if isinstance(a, Snapshots)][0]
    assert int(trainer.state.timestamp.batch) == 3
    before, skipped, after = snaps.params  # after steps 0, 1 (poisoned), 2
    assert all(torch.equal(a, b) for a, b in zip(before, skipped))  # the poisoned update was not applied
    assert not all(torch.equal(a, b) for a, b in zip(skipped, after))  # training went on
    assert all(torch.isfinite(p).all() for p in after)
    assert snaps.counts == [[1], [1], [2]]  # AdamW's step count did not advance on the skipped step
    guard = [c for c in trainer.state.callbacks if type(c).__name__ == "NonFiniteLossGuard"][0]
    assert guard.skipped == [1]


def test_bad_action_is_one_line_error():
    cfg = hg38_xlstm.hg38_xlstm()
    with pytest.raises(cli.UsageError, match="nan_guard\\('retry'\\): the action is 'stop' or 'skip'"):
        cli.mutate(cfg, ["nan_guard('retry')"])
