"""The fine-tuning recipe shared by the downstream experiments (Genomic Benchmarks, Nucleotide Transformer, GUE)
and its fiddlers. Registers no experiment itself.

The recipe follows DNA-xLSTM `configs/experiment/hg38/{genomic_benchmark,nucleotide_transformer}.yaml` and
`scripts_downstream/run_{genomics,nucleotide}.sh`: AdamW betas (0.9, 0.999), weight decay 0.1, linear warmup over 1 %
of the steps then cosine decay to 0.1 x lr (timm `cosine_warmup`; Composer warms up from 0 instead of 1e-6),
gradient clipping 1.0, bf16, one validation evaluation per epoch; the validation split is 10 % of the training
split drawn with the cell's seed, and the test split is scored once with the best validation weights
(`dnax.finetune.SelectBestAndTest`). Post-hoc RC conjoining (PH) by default, as the reference xLSTM runs.

Fiddlers (command line: `python -m dnax.run experiments.genomic_benchmarks.human_nontata_promoters seed(3) lr(1e-3)`):
`seed(n)`, `lr(x)`, `cnn`, `frozen`, `from_run(path)`, `from_reference(source)`, `custom(path, max_length)`,
`data_dir(path)`, `sample`, `tiny`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import fiddle as fdl
import torch
from composer import Trainer
from composer.algorithms import GradientClipping
from composer.optim import CosineAnnealingWithWarmupScheduler

from dnax import fiddlers, tags
from dnax.callbacks import RunReport
from dnax.data.downstream import TaskDataError, TaskSpec, custom_task, load_task, task_dataloader
from dnax.finetune import SelectBestAndTest
from dnax.models.backbones.cnn import GenomicBenchmarksCNN
from dnax.models.backbones.hyena import HyenaLM
from dnax.models.classifier import SequenceClassifier
from dnax.train import train
from experiments.common import RUN_DIR, experiment

#: the reference's learning-rate sweep (both benchmark scripts)
LR_SWEEP = (1e-3, 2e-3, 4e-4, 6e-4, 8e-4)
TINY_TASK_DIR = Path(__file__).resolve().parent / "fixtures" / "gue_mouse3_tiny"


def finetune(
    task: str | fdl.Config,
    spec: TaskSpec,
    backbone: fdl.Config,
    *,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.999),
    rc_mode: str = "ph",
    rc_aug: bool = False,
    pooling: str = "mean",
    seed: int = 0,
    grad_clip: float = 1.0,
    warmup_fraction: float = 0.01,
    lr_min_ratio: float = 0.1,
    num_workers: int = 2,
) -> fdl.Partial:
    """A fine-tuning run of `backbone` + a linear head on `task` (a task name for `task_dataloader`, or a config
    building a TaskSpec); `spec` gives its classes, max length and headline metric at config time."""
    length = tags.SeqLen.new(spec.max_length)
    backbone.max_length = length

    def loader(split: str, **kw) -> fdl.Config:
        return fdl.Config(task_dataloader, task, split, batch_size=batch_size, seed=seed, val_seed=seed,
                          max_length=length, num_workers=num_workers, **kw)

    return fdl.Partial(
        train,
        model=fdl.Config(SequenceClassifier, backbone=backbone, num_classes=spec.num_classes, pooling=pooling,
                         rc_mode=rc_mode),
        train_dataloader=loader("train", rc_aug=rc_aug),
        eval_dataloader=loader("valid"),
        optimizer=fdl.Partial(torch.optim.AdamW, lr=lr, betas=betas, weight_decay=weight_decay, eps=1e-8),
        trainer=fdl.Partial(
            Trainer,
            run_name=None,
            max_duration=f"{epochs}ep",
            schedulers=[fdl.Config(CosineAnnealingWithWarmupScheduler, t_warmup=f"{warmup_fraction}dur",
                                   alpha_f=lr_min_ratio)],
            algorithms=[fdl.Config(GradientClipping, clipping_type="norm", clipping_threshold=grad_clip)],
            loggers=[fdl.Config(RunReport, folder=RUN_DIR)],
            callbacks=[fdl.Config(SelectBestAndTest, test_dataloader=loader("test"), metric=spec.metric,
                                  folder=RUN_DIR, task=spec.name)],
            eval_interval="1ep",
            save_folder=RUN_DIR + "/checkpoints",
            save_interval="1ep",
            save_num_checkpoints_to_keep=1,
            save_overwrite=False,
            autoresume=True,
            precision="amp_bf16",
            device_train_microbatch_size="auto",
            seed=seed,
        ),
    )


def register_tasks(namespace: dict, specs: Mapping[str, TaskSpec], build: Callable[[str], fdl.Partial],
                   describe: Callable[[str, TaskSpec], str]) -> None:
    """One registered experiment per task in `specs`, named after it, in the module whose globals are `namespace`:
    `build(name)` is its config, `describe(name, spec)` its docstring."""
    for name, spec in specs.items():
        namespace[name] = experiment(_task_experiment(name, namespace["__name__"], build, describe(name, spec)))


def _task_experiment(name: str, module: str, build: Callable[[str], fdl.Partial], doc: str) -> Callable:
    def fn() -> fdl.Partial:
        return build(name)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__, fn.__doc__ = module, doc
    return fn


def _loaders(cfg: fdl.Buildable) -> list[fdl.Config]:
    return [cfg.train_dataloader, cfg.eval_dataloader, *(c.test_dataloader for c in _selectors(cfg))]


def _selectors(cfg: fdl.Buildable) -> list[fdl.Config]:
    return [c for c in cfg.trainer.callbacks if c.__fn_or_cls__ is SelectBestAndTest]


# -- fiddlers ---------------------------------------------------------------------------------------------------------
def seed(cfg: fdl.Buildable, n: int) -> None:
    """One seed for everything random in a cell: the train/validation split, the shuffle and RC flips, the init."""
    cfg.trainer.seed = int(n)
    for loader in _loaders(cfg):
        loader.seed = loader.val_seed = int(n)


def lr(cfg: fdl.Buildable, x: float) -> None:
    """Peak learning rate (the schedule's floor stays a fraction of it)."""
    cfg.optimizer.lr = float(x)


def cnn(cfg: fdl.Buildable) -> None:
    """The Genomic Benchmarks CNN baseline instead of the backbone: from scratch, forward strand only, Adam
    (AdamW without decay) at lr 1e-3, as the paper's and Caduceus' CNN runs."""
    cfg.model.backbone = fdl.Config(GenomicBenchmarksCNN, max_length=cfg.model.backbone.max_length)
    cfg.model.rc_mode = "none"
    cfg.model.pretrained = None
    cfg.optimizer.lr = 1e-3
    cfg.optimizer.weight_decay = 0.0


def frozen(cfg: fdl.Buildable) -> None:
    """Train the classification head only (linear probe of the backbone's features)."""
    cfg.model.freeze_backbone = True


def _at_task_length(backbone: fdl.Config, length: int) -> None:
    """Set a pretrained backbone's `max_length` to the task's, except HyenaDNA's: its positional features are
    buffers sized by the pretraining length (`l_max`), saved with its weights; it runs any shorter length on their
    prefix, and no longer one (UsageError). The length stays tagged `SeqLen`, so a later `seq_len(n)` (or `tiny`)
    sets it too."""
    if backbone.__fn_or_cls__ is not HyenaLM:
        backbone.max_length = tags.SeqLen.new(length)
    elif backbone.max_length < length:
        from dnax.run import UsageError

        raise UsageError(f"the pretrained HyenaDNA model covers {backbone.max_length} tokens (its l_max "
                         f"{backbone.max_length + 2}); this task's sequences take {length}")


def from_run(cfg: fdl.Buildable, path: str) -> None:
    """Start from a dnax pretraining run (its directory): the backbone as that run configured it (its
    `config.json`), the weights of its latest checkpoint."""
    from fiddle.experimental import serialization

    run = Path(path)
    config_file = run / "config.json"
    if not config_file.is_file():
        from dnax.run import UsageError

        raise UsageError(f"{config_file}: not found; from_run takes a dnax run directory (for a reference model or a "
                         "dnax.pretrained folder: from_reference)")
    backbone = serialization.load_json(config_file.read_text()).model.backbone
    _at_task_length(backbone, cfg.model.backbone.max_length)
    cfg.model.backbone = backbone
    cfg.model.pretrained = str(run)


def from_reference(cfg: fdl.Buildable, source: str) -> None:
    """Start from a reference model (`dnax.convert.load_reference` sources): a DNA-xLSTM / Caduceus / Mamba /
    Transformer++ run folder or `.ckpt`, a Hugging Face Caduceus or HyenaDNA release folder, a released run's name
    such as `context_1k/dna_xlstm_500k_mlm_ph`, or `hf://owner/name` (downloaded once); or a `dnax.pretrained`
    folder (what `python -m dnax.convert load` writes). The backbone as that model was configured, its weights; an
    RCPS model fine-tunes in PS mode (the reference's `conjoin_train` decoder), any other keeps the experiment's
    mode (PH)."""
    from dnax.convert import reference_backbone
    from dnax.pretrained import declares_pretrained, pretrained_backbone

    if declares_pretrained(source):  # e.g. what `python -m dnax.convert load ... --out DIR` wrote
        try:  # built once (random init), as reference_backbone does: a damaged config.json fails here, by name
            path, model = Path(source), pretrained_backbone(source)
        except (OSError, ValueError) as e:
            raise fiddlers.FiddlerError(f"from_reference({source!r}): {e}") from None
        cls, kwargs = type(model), model.init_kwargs
    else:
        path, cls, kwargs = reference_backbone(source)
    backbone = fdl.Config(cls, **kwargs)
    _at_task_length(backbone, cfg.model.backbone.max_length)
    cfg.model.backbone = backbone
    cfg.model.pretrained = str(path)
    if kwargs.get("rcps"):
        cfg.model.rc_mode = "ps"


def custom(cfg: fdl.Buildable, path: str, max_length: int, metric: str = "mcc", sequence_column: str = "sequence",
           label_column: str = "label") -> None:
    """Your own data instead of the task (`dnax.data.downstream.custom_task`): `path` is a CSV/TSV/Parquet/FASTA
    training file or a folder of train/dev/test files; longer sequences are cut to `max_length`. The files are
    read here, so a problem in them ends the command with one line. Give it after `tiny`, which sets its own task."""
    name = Path(path).stem.split(".")[0] if Path(path).is_file() else Path(path).name
    try:
        spec = custom_task(name, path, max_length=max_length, metric=metric, sequence_column=sequence_column,
                           label_column=label_column)
    except (TaskDataError, ValueError, TypeError) as e:
        raise fiddlers.FiddlerError(f"custom({path!r}, ...): {e}") from None
    use_task(cfg, fdl.Config(custom_task, name, path, sequence_column=sequence_column, label_column=label_column,
                             max_length=int(max_length), metric=metric, num_classes=spec.num_classes))


def data_dir(cfg: fdl.Buildable, path: str) -> None:
    """Read the task from `path` on disk (Genomic Benchmarks layout `<task>/{train,test}/<class>/<id>.txt`, NT
    `<task>/{train,test}.fna`) instead of the hub; checked here, so a missing or bad folder ends the command with
    one line."""
    for loader in _loaders(cfg):
        if not isinstance(loader.task, str):
            raise fiddlers.FiddlerError(f"data_dir({path!r}): this config's task is not a benchmark task read from "
                                        "the hub (a custom or GUE task reads its own files)")
        try:
            load_task(loader.task, source="disk", data_dir=path, val_seed=loader.val_seed)
        except TaskDataError as e:
            raise fiddlers.FiddlerError(f"data_dir({path!r}): {e}") from None
        loader.source, loader.data_dir = "disk", str(path)


def use_task(cfg: fdl.Buildable, task: fdl.Config) -> None:
    """Every split, the checkpoint selector and the head on `task` (a `custom_task` config with its name,
    max_length, metric and num_classes); the data and a from-scratch model at its length, a pretrained backbone as
    `_at_task_length` allows."""
    for loader in _loaders(cfg):
        loader.task = task
    fiddlers.seq_len(cfg, task.max_length)
    if cfg.model.pretrained is not None:
        _at_task_length(cfg.model.backbone, task.max_length)
    cfg.model.num_classes = task.num_classes
    for selector in _selectors(cfg):
        selector.task, selector.metric = task.name, task.metric


def sample(cfg: fdl.Buildable) -> None:
    """CPU, fp32, no worker processes: a small local run."""
    fiddlers.cpu(cfg)
    for loader in _loaders(cfg):
        loader.num_workers = 0


def tiny(cfg: fdl.Buildable) -> None:
    """The smallest trainable version (tests, smoke runs): 64/32/32 sequences of a real GUE task shipped in
    `experiments/fixtures/`, 101 bp, 2 steps of 8, one evaluation on 8, test on 32, CPU; a backbone from scratch
    shrinks to d_model 32, 1 layer, a pretrained one (`from_run`, `from_reference`, before or after `tiny`) stays."""
    sample(cfg)
    use_task(cfg, fdl.Config(custom_task, "gue_mouse3_tiny", str(TINY_TASK_DIR), max_length=101, metric="mcc",
                             num_classes=2))
    for loader in _loaders(cfg):
        loader.batch_size = 8
    backbone = cfg.model.backbone
    if cfg.model.pretrained is None and hasattr(backbone.__fn_or_cls__, "hidden_states"):  # an LM, not the CNN
        backbone.d_model = 32
        backbone.n_layer = 1
    cfg.trainer.max_duration = "2ba"
    cfg.trainer.eval_interval = "2ba"
    cfg.trainer.eval_subset_num_batches = 1
    cfg.trainer.save_interval = "2ba"
