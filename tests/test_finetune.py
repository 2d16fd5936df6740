"""Checkpoint selection on validation, one test evaluation with the best weights, and the fine-tuning experiments."""
import json
import shutil

import fiddle as fdl
import numpy as np
import pytest
import torch
from composer import Trainer
from fiddle.experimental import serialization

from dnax import run as cli
from dnax.data.downstream import classification_dataloader
from dnax.finetune import BEST_WEIGHTS, RESULTS, SelectBestAndTest
from dnax.models.classifier import SequenceClassifier
from tests.models.tokenwise import TokenwiseBackbone


def gc_examples(n, seed):
    """Random sequences labelled by GC content > 50 % (learnable from token counts)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gc = rng.uniform(0.2, 0.8)
        probs = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
        seq = "".join(rng.choice(list("ACGT"), p=probs, size=rng.integers(20, 40)))
        out.append((seq, int((seq.count("G") + seq.count("C")) / len(seq) > 0.5)))
    return out


class Recording:
    """A test loader that records when it is iterated (how many validation evaluations had happened)."""

    def __init__(self, loader, selector):
        self.loader, self.selector, self.iterated_after = loader, selector, []

    def __iter__(self):
        self.iterated_after.append(len(self.selector.history))
        return iter(self.loader)


def fit(folder, test_examples, epochs=4):
    torch.manual_seed(0)
    loader = lambda ex, shuffle: classification_dataloader(ex, batch_size=16, max_length=40, shuffle=shuffle,  # noqa
                                                          seed=0)
    selector = SelectBestAndTest(None, metric="mcc", folder=str(folder), task="gc")
    selector.test_dataloader = Recording(loader(test_examples, False), selector)
    model = SequenceClassifier(TokenwiseBackbone(), num_classes=2)
    trainer = Trainer(model=model, train_dataloader=loader(gc_examples(64, 1), True),
                      eval_dataloader=loader(gc_examples(48, 2), False), max_duration=f"{epochs}ep",
                      optimizers=torch.optim.AdamW(model.parameters(), lr=3e-2), callbacks=[selector],
                      device="cpu", seed=0, progress_bar=False, log_to_console=False)
    trainer.fit()
    return trainer, selector


def direct_mcc(model, examples):
    loader = classification_dataloader(examples, batch_size=7, max_length=40, shuffle=False)
    model.eval()
    with torch.no_grad():
        preds = torch.cat([model({"input_ids": b["input_ids"]}).argmax(-1) for b in loader]).numpy()
    y = np.array([label for _, label in examples])
    tp, tn = np.sum((y == 1) & (preds == 1)), np.sum((y == 0) & (preds == 0))
    fp, fn = np.sum((y == 0) & (preds == 1)), np.sum((y == 1) & (preds == 0))
    return float(tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))


def test_best_validation_weights_are_tested_once_and_the_test_split_never_selects(tmp_path):
    test = gc_examples(40, 3)
    trainer, selector = fit(tmp_path / "a", test)
    history = selector.history
    assert len(history) == 4  # one evaluation per epoch
    best = max(range(4), key=lambda i: (history[i]["MCC"], -i))  # ties keep the earlier
    assert selector.best_batch == history[best]["batch"]
    assert selector.test_dataloader.iterated_after == [4]  # once, after every validation evaluation
    results = json.loads((tmp_path / "a" / RESULTS).read_text())
    assert results["best_epoch"] == history[best]["epoch"] and results["val"]["MCC"] == history[best]["MCC"]
    assert results["task"] == "gc" and results["lr"] == pytest.approx(3e-2) and results["seed"] == 0
    # the model ends with the best weights, and the test numbers are theirs
    best_weights = torch.load(tmp_path / "a" / BEST_WEIGHTS)
    assert all(torch.equal(trainer.state.model.state_dict()[k], v) for k, v in best_weights.items())
    assert results["test"]["MCC"] == pytest.approx(direct_mcc(trainer.state.model, test), abs=1e-5)
    # a test split with every label flipped changes the test score, not the selection
    _, flipped = fit(tmp_path / "b", [(s, 1 - y) for s, y in test])
    flipped_results = json.loads((tmp_path / "b" / RESULTS).read_text())
    assert flipped.history == history and flipped.best_batch == selector.best_batch
    assert flipped_results["test"]["MCC"] == pytest.approx(-results["test"]["MCC"], abs=1e-5)


def test_selection_state_survives_a_checkpoint_round_trip():
    selector = SelectBestAndTest(metric="f1")
    assert selector.metric == "F1"
    selector.best, selector.best_epoch, selector.best_batch = 0.7, 2, 20
    selector.history = [{"epoch": 2, "batch": 20, "F1": 0.7}]
    other = SelectBestAndTest(metric="f1")
    other.load_state_dict(selector.state_dict())
    assert other.state_dict() == selector.state_dict()


@pytest.mark.parametrize("tokens", [["tiny"], ["tiny", "cnn"]])
def test_genomic_benchmarks_experiment_fine_tunes_two_batches(in_tmp, tokens):
    cfg = cli.resolve_experiment("experiments.genomic_benchmarks.human_nontata_promoters")[0]()
    restored = serialization.load_json(serialization.dump_json(cfg))
    assert sorted(cli.flatten(restored)) == sorted(cli.flatten(cfg))
    from experiments import genomic_benchmarks

    cli.mutate(cfg, tokens + ["seed(3)", "lr(2e-3)", "trainer.run_name='ft'"], genomic_benchmarks)
    trainer = cli.run(cfg)
    assert int(trainer.state.timestamp.batch) == 2
    results = json.loads((in_tmp / "runs" / "ft" / RESULTS).read_text())
    assert results["seed"] == 3 and results["lr"] == pytest.approx(2e-3) and results["metric"] == "MCC"
    assert set(results["test"]) >= {"MCC", "F1", "Accuracy", "AUROC", "MacroF1"}
    assert 0.0 <= results["test"]["Accuracy"] <= 1.0


def test_from_run_fiddler_takes_the_pretraining_backbone_and_weights(tmp_path):
    from experiments import genomic_benchmarks, hg38_xlstm

    pre = hg38_xlstm.hg38_xlstm()
    pre.model.backbone.d_model, pre.model.backbone.n_layer = 32, 1
    run = tmp_path / "pre"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(serialization.dump_json(pre))
    backbone = fdl.build(pre.model.backbone)
    torch.save({"state": {"model": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}},
               run / "checkpoints" / "latest-rank0.pt")
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", f"from_run({str(run)!r})"], genomic_benchmarks)
    model = fdl.build(cfg.model)
    assert model.backbone.n_layer == 1 and model.backbone.max_length == 101
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in backbone.state_dict().items())


@pytest.mark.parametrize("case, rc_mode", [("xlstm_mlstm_flip_add", "ph"), ("caduceus_ps", "ps"),
                                           ("caduceus_ps/hf", "ps")])
def test_from_reference_fiddler_fine_tunes_a_reference_run(case, rc_mode, in_tmp):
    """A reference run (here a conformance case, laid out as released) becomes the backbone with its weights; the
    saved config replays; RCPS runs switch to PS. Two training batches run end to end."""
    from dnax.convert import load_reference
    from experiments import genomic_benchmarks
    from tests.models.conformance import CONFORMANCE

    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", f"from_reference({str(CONFORMANCE / case)!r})", "trainer.run_name='ft'"],
               genomic_benchmarks)
    assert cfg.model.rc_mode == rc_mode and cfg.model.backbone.max_length == 101
    restored = serialization.load_json(serialization.dump_json(cfg))
    assert sorted(cli.flatten(restored)) == sorted(cli.flatten(cfg))
    model = fdl.build(restored.model)
    reference = load_reference(CONFORMANCE / case).state_dict()
    assert model.backbone.state_dict().keys() == reference.keys()
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in reference.items())
    trainer = cli.run(cfg)
    assert int(trainer.state.timestamp.batch) == 2
    assert json.loads((in_tmp / "runs" / "ft" / RESULTS).read_text())["test"]["MCC"] is not None


@pytest.mark.parametrize("order", ["tiny first", "tiny last"])
def test_tiny_keeps_a_pretrained_backbone_whatever_the_fiddler_order(order):
    """`tiny` shrinks a from-scratch backbone but keeps a pretrained one and its weights (it used to replace it by a
    d_model 32 model without weights when it came after `from_reference`); a later `seq_len` reaches the backbone."""
    from experiments import genomic_benchmarks
    from tests.models.conformance import CONFORMANCE

    source = f"from_reference({str(CONFORMANCE / 'xlstm_mlstm_causal')!r})"
    tokens = ["tiny", source] if order == "tiny first" else [source, "tiny"]
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, tokens, genomic_benchmarks)
    plain = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(plain, [source], genomic_benchmarks)
    assert cfg.model.pretrained == plain.model.pretrained is not None
    assert cfg.model.backbone.max_length == 101 and cfg.model.backbone.d_model == plain.model.backbone.d_model
    cli.mutate(cfg, ["seq_len(64)"], genomic_benchmarks)
    assert cfg.model.backbone.max_length == cfg.train_dataloader.max_length == 64


def test_from_reference_takes_a_hyenadna_release_folder(tmp_path):
    """LongSafari/hyenadna-* layout (config.json + weights.ckpt with `model.` keys): the fiddler builds HyenaLM with
    the release's configuration and the classifier loads its weights."""
    from dnax.models.backbones.hyena import HyenaLM
    from experiments import genomic_benchmarks

    config = {"d_model": 32, "n_layer": 1, "d_inner": 128, "vocab_size": 12, "embed_dropout": 0.1,
              "layer": {"_name_": "hyena", "emb_dim": 5, "filter_order": 16, "l_max": 1026, "modulate": True}}
    torch.manual_seed(0)
    release = HyenaLM.from_reference_config(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.save({"state_dict": {f"model.{k}": v for k, v in release.state_dict().items()}}, tmp_path / "weights.ckpt")
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", f"from_reference({str(tmp_path)!r})"], genomic_benchmarks)
    assert cfg.model.backbone.__fn_or_cls__ is HyenaLM and cfg.model.rc_mode == "ph"
    model = fdl.build(cfg.model)
    # it keeps the pretraining length: the positional features (buffers sized by it) are part of its weights
    assert model.backbone.max_length == 1024 and model.backbone.n_layer == 1
    assert model.backbone.state_dict().keys() == release.state_dict().keys()
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in release.state_dict().items())
    ids = torch.randint(7, 11, (2, 101))
    with torch.no_grad():  # and runs the task's length on their prefix
        torch.testing.assert_close(model.backbone.eval().hidden_states(ids), release.eval().hidden_states(ids))
    short = {**config, "layer": {**config["layer"], "l_max": 66}}  # trained at 64 tokens: the task needs 101
    (tmp_path / "config.json").write_text(json.dumps(short))
    torch.save({"state_dict": {f"model.{k}": v for k, v in HyenaLM.from_reference_config(short).state_dict().items()}},
               tmp_path / "weights.ckpt")
    with pytest.raises(cli.UsageError, match=r"covers 64 tokens \(its l_max 66\); this task's sequences take 101"):
        cli.mutate(genomic_benchmarks.human_nontata_promoters(), ["tiny", f"from_reference({str(tmp_path)!r})"],
                   genomic_benchmarks)


def test_from_reference_takes_a_converted_model_and_reports_bad_sources_in_one_line(in_tmp, capsys):
    """`python -m dnax.convert load RUN --out DIR` then `from_reference(DIR)`; a source that does not exist or
    does not fit ends `dnax.run` with one line and exit 2."""
    from dnax.convert import load_reference
    from dnax.convert import main as convert
    from experiments import genomic_benchmarks
    from tests.models.conformance import CONFORMANCE

    case = CONFORMANCE / "xlstm_slstm_rcps"
    assert convert(["load", str(case), "--out", "converted"]) == 0
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", "from_reference('converted')"], genomic_benchmarks)
    assert cfg.model.rc_mode == "ps" and cfg.model.pretrained == "converted"
    model = fdl.build(cfg.model)
    reference = load_reference(case).state_dict()
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in reference.items())
    capsys.readouterr()
    experiment = "experiments.genomic_benchmarks.human_nontata_promoters"
    assert cli.main([experiment, "tiny", "from_reference('nowhere')", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dnax.run: error: nowhere: no such run directory or checkpoint file"
    assert cli.main([experiment, "tiny", "from_run('nowhere')", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().startswith("dnax.run: error: nowhere/config.json: not found; from_run ")
    assert cli.main([experiment, "tiny", "model.pretrained='nowhere'", "trainer.run_name='p'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "dnax.run: error: pretrained backbone 'nowhere': no such file or directory"
    bad = in_tmp / "bad"
    shutil.copytree(CONFORMANCE / "xlstm_mlstm_causal", bad)
    ckpt = bad / "checkpoints" / "test" / "loss.ckpt"
    from dnax.reference_checkpoint import load_lightning_state_dict

    sd = load_lightning_state_dict(ckpt)
    sd.pop(next(k for k in sd if k.endswith("post_blocks_norm.weight")))
    torch.save({"state_dict": sd}, ckpt)
    assert cli.main([experiment, "tiny", "from_reference('bad')", "trainer.run_name='r'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"dnax.run: error: {ckpt.relative_to(in_tmp)}: weights do not fit the model; missing keys "
                       "(1): xlstm_block_stack.post_blocks_norm.weight")
    # a converted (dnax.pretrained) folder whose config.json was damaged: named, one line, before any training
    converted = in_tmp / "converted"
    config = json.loads((converted / "config.json").read_text())
    for kwargs, message in (({**config["kwargs"], "bogus": 1}, "unexpected keyword argument 'bogus'"),
                            ({**config["kwargs"], "d_model": "x"}, "must be tuple of ints, not str")):
        (converted / "config.json").write_text(json.dumps({**config, "kwargs": kwargs}))
        assert cli.main([experiment, "tiny", "from_reference('converted')", "--dry-run"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dnax.run: error: from_reference('converted'): converted/config.json: its kwargs do "
                              "not build XLSTMLM: ") and message in err and "\n" not in err


def test_an_interrupted_fine_tuning_run_resumes_with_its_selection_state(in_tmp):
    from experiments import genomic_benchmarks

    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", "trainer.eval_interval='1ba'", "trainer.save_interval='1ba'", "trainer.run_name='r'"],
               genomic_benchmarks)
    cli.run(cfg)
    first = json.loads((in_tmp / "runs/r" / RESULTS).read_text())
    assert [h["batch"] for h in first["history"]] == [1, 2]
    # replay the saved config for longer: autoresume continues at batch 2, keeping the history and the best so far
    assert cli.main(["--config-file", "runs/r/config.json", "trainer.max_duration='3ba'"]) == 0
    resumed = json.loads((in_tmp / "runs/r" / RESULTS).read_text())
    assert [h["batch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == first["history"]


def test_an_empty_test_split_is_recorded_as_no_test_not_as_zero_scores(tmp_path):
    """A custom task without a test file has an empty test split: results.json says so (test: null)."""
    _, selector = fit(tmp_path, [], epochs=1)
    results = json.loads((tmp_path / RESULTS).read_text())
    assert results["test"] is None and results["val"]["MCC"] == selector.history[0]["MCC"]
