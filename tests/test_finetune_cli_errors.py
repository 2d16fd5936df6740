"""Fine-tuning command lines given bad data or arguments end in one line naming what and where (exit 2), before
any run directory is made; lowercase bases in custom data are bases."""
import pytest

from dnax import run as cli
from experiments import genomic_benchmarks


def _csv(path, rows):
    path.write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
    return path


@pytest.mark.parametrize("make, token, message", [
    (lambda d: _csv(d / "one.csv", [("ACGT", 1)] * 10), "custom('{d}/one.csv', 50)",
     "one.csv: every training label is '1'"),
    (lambda d: (d / "c.tsv").write_text("sequence,label\nACGT,1\n"), "custom('{d}/c.tsv', 50)",
     "c.tsv:1: no column 'sequence'"),
    (lambda d: _csv(d / "u.csv", [("ACGT", 0), ("ACGU", 1)]), "custom('{d}/u.csv', 50)",
     "u.csv:3:1: invalid nucleotide 'U' at position 3"),
    (lambda d: None, "custom('{d}/missing.csv', 50)", "missing.csv: no such file"),
    (lambda d: None, "data_dir('{d}/gb')", "gb/human_ocr_ensembl/train: missing"),
])
def test_bad_custom_data_ends_in_one_line(tmp_path, in_tmp, capsys, make, token, message):
    make(tmp_path)
    code = cli.main(["experiments.genomic_benchmarks.human_ocr_ensembl", "sample", token.format(d=tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (in_tmp / "runs").exists()


def test_an_unknown_gue_task_ends_in_one_line(in_tmp, capsys):
    assert cli.main(["experiments.gue", "task('tf/9')", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dnax.run: error: unknown GUE task 'tf/9' (known: tf/0,") and len(err.splitlines()) == 1


def test_custom_sets_task_classes_metric_and_length_and_reads_lowercase_as_bases(tmp_path):
    from dnax.data.downstream import task_dataloader

    import fiddle as fdl

    path = _csv(tmp_path / "mine.csv", [("acgtnACGT" * 3, i % 3) for i in range(30)])
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, ["tiny", f"custom('{path}', 20, 'accuracy')"], genomic_benchmarks)
    assert cfg.model.num_classes == 3 and cfg.model.backbone.max_length == 20
    assert cfg.trainer.callbacks[0].metric == "accuracy" and cfg.trainer.callbacks[0].task == "mine"
    loader = fdl.build(cfg.train_dataloader)
    assert loader.dataset.max_length == 20
    batch = next(iter(task_dataloader(fdl.build(cfg.train_dataloader.task), "train", batch_size=4, shuffle=False)))
    assert batch["input_ids"][0].tolist() == [7, 8, 9, 10, 11, 7, 8, 9, 10] * 2 + [7, 8]  # A C G T N, cut at 20


def test_data_dir_reads_the_genomic_benchmarks_layout(tmp_path):
    task = tmp_path / "gb" / "human_nontata_promoters"
    for split, n in (("train", 10), ("test", 4)):
        for label, base in (("negative", "A"), ("positive", "C")):
            (task / split / label).mkdir(parents=True)
            for i in range(n):
                (task / split / label / f"{i}.txt").write_text(base * 30 + "g" * i)
    cfg = genomic_benchmarks.human_nontata_promoters()
    cli.mutate(cfg, [f"data_dir('{tmp_path / 'gb'}')"], genomic_benchmarks)
    import fiddle as fdl

    test = fdl.build(cfg.trainer.callbacks[0].test_dataloader)
    assert len(test.dataset) == 8 and sorted(test.dataset.labels.tolist()) == [0] * 4 + [1] * 4


def test_a_task_neither_cached_nor_reachable_ends_in_one_line(tmp_path, in_tmp, capfd, monkeypatch):
    """The hub offline and no dnax cache: the loader's message (what to do), one line at build time, exit 2."""
    monkeypatch.setenv("DNAX_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code = cli.main(["experiments.genomic_benchmarks.human_nontata_promoters", "sample", "trainer.run_name=off"])
    err = capfd.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("dnax.run: error: task 'human_nontata_promoters' (genomic_benchmarks) is "
                                        "not in the dnax cache"), err
    assert "run once with network access to cache it" in err
    assert not (in_tmp / "runs").exists()
