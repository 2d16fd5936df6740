"""load_task: class ids, the validation split, the GB on-disk layout, custom files (GUE) and the hub snapshot."""
import gzip
import random

import datasets
import pytest
import torch

from dnax.data.downstream import (GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER, NUCLEOTIDE_TRANSFORMER_REVISED,
                                  TaskDataError, custom_task, load_task, sorted_class_names, split_validation)
from dnax.data.downstream import hub, loading
from dnax.data.sources import cache_root

from .conftest import FIXTURES, SHARED_DATA


def _write_gb_layout(root, task, splits, class_order):
    """splits: {split: {class: [seq, ...]}}; class folders are created in `class_order` (directory order varies)."""
    for split, by_class in splits.items():
        for cls in class_order:
            folder = root / task / split / cls
            folder.mkdir(parents=True)
            for i, seq in enumerate(by_class[cls]):
                (folder / f"{i}.txt").write_text(seq)


GB_DATA = {"train": {"promoter": ["AAAA", "AAAC"], "enhancer": ["CCCC", "CCCA", "CCCG"], "ocr": ["GGGG"]},
           "test": {"promoter": ["TTTT"], "enhancer": ["TTTA"], "ocr": ["TTTC"]}}


@pytest.mark.parametrize("order", [["promoter", "enhancer", "ocr"], ["ocr", "promoter", "enhancer"]])
def test_gb_layout_class_ids_are_sorted_names_whatever_the_directory_order(tmp_path, order):
    _write_gb_layout(tmp_path, "human_ensembl_regulatory", GB_DATA, order)
    data = load_task("human_ensembl_regulatory", source="disk", data_dir=tmp_path, val_fraction=0.0)
    assert data.class_names == ["enhancer", "ocr", "promoter"]
    ids = {name: i for i, name in enumerate(data.class_names)}
    expected = sorted((s, ids[c]) for c, seqs in GB_DATA["train"].items() for s in seqs)
    assert sorted(data.train) == expected
    assert sorted(data.test) == sorted((s, ids[c]) for c, seqs in GB_DATA["test"].items() for s in seqs)
    assert data.valid == []


def test_auto_uses_data_dir_when_nothing_is_cached(tmp_path):
    _write_gb_layout(tmp_path, "human_ensembl_regulatory", GB_DATA, ["ocr", "enhancer", "promoter"])
    assert len(load_task("human_ensembl_regulatory", data_dir=tmp_path, val_fraction=0.0).train) == 6


def test_gb_layout_wrong_class_count_and_missing_split(tmp_path):
    _write_gb_layout(tmp_path, "human_ocr_ensembl", GB_DATA, ["ocr", "enhancer", "promoter"])
    with pytest.raises(TaskDataError, match="task 'human_ocr_ensembl' has 2 classes but the training data has 3"):
        load_task("human_ocr_ensembl", source="disk", data_dir=tmp_path)
    (tmp_path / "human_nontata_promoters" / "train").mkdir(parents=True)
    with pytest.raises(TaskDataError, match=r"human_nontata_promoters/train: no class folders"):
        load_task("human_nontata_promoters", source="disk", data_dir=tmp_path)


def test_custom_class_ids_do_not_depend_on_row_order(tmp_path):
    rows = [("ACGT" * (i + 1), label) for i, label in enumerate(["b", "a", "c", "a", "b", "c"] * 3)]
    ids = []
    for seed in (0, 1):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        path = tmp_path / f"train{seed}.tsv"
        path.write_text("sequence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in shuffled))
        data = load_task(custom_task("t", path, max_length=64), val_fraction=0.0)
        assert data.class_names == ["a", "b", "c"]
        ids.append(dict(data.train))
    assert ids[0] == ids[1]


def test_numeric_class_names_sort_numerically():
    assert sorted_class_names(["10", "2", "0", "1"]) == ["0", "1", "2", "10"]
    assert sorted_class_names(["b", "10", "a"]) == ["10", "a", "b"]


def test_validation_split_is_the_reference_random_split_deterministic_and_disjoint():
    examples = [(f"ACGT{'A' * i}", i % 2) for i in range(53)]
    for seed in (0, 2222):
        train, valid = split_validation(examples, 0.1, seed)
        # the reference (GenomicBenchmark.setup): random_split(list, lengths=[0.1, 0.9], generator=manual_seed(seed))
        ref_valid, ref_train = torch.utils.data.random_split(examples, lengths=[0.1, 0.9],
                                                             generator=torch.Generator().manual_seed(seed))
        assert valid == list(ref_valid) and train == list(ref_train)
        assert len(valid) == 6 and len(train) == 47
        assert not set(train) & set(valid) and sorted(train + valid) == sorted(examples)
        assert split_validation(examples, 0.1, seed) == (train, valid)
    assert split_validation(examples, 0.1, 0)[1] != split_validation(examples, 0.1, 1)[1]


def test_load_task_splits_by_val_seed_and_keeps_test_untouched(tmp_path):
    data = {"train": {"negative": [f"A{'C' * i}" for i in range(20)], "positive": [f"G{'T' * i}" for i in range(20)]},
            "test": {"negative": ["AAAA"], "positive": ["GGGG"]}}
    _write_gb_layout(tmp_path, "human_ocr_ensembl", data, ["negative", "positive"])
    a = load_task("human_ocr_ensembl", source="disk", data_dir=tmp_path, val_seed=0)
    b = load_task("human_ocr_ensembl", source="disk", data_dir=tmp_path, val_seed=1)
    assert len(a.valid) == 4 and len(a.train) == 36 and a.test == b.test == [("AAAA", 0), ("GGGG", 1)]
    assert set(a.valid) != set(b.valid) and sorted(a.train + a.valid) == sorted(b.train + b.valid)


def test_gue_task_folder_uses_dev_as_validation():
    task = custom_task("prom_core_tata", FIXTURES / "gue_prom_core_tata", max_length=70)
    assert task.num_classes == 2 and task.valid_path.endswith("dev.csv.gz")
    data = load_task(task)
    assert (len(data.train), len(data.valid), len(data.test)) == (16, 8, 8)
    first_dev = gzip.open(FIXTURES / "gue_prom_core_tata" / "dev.csv.gz", "rt").read().splitlines()[1].split(",")
    assert data.valid[0] == (first_dev[0], int(first_dev[1]))


@pytest.mark.skipif(not (SHARED_DATA / "gue").is_dir(), reason="shared/data/gue not present")
def test_real_gue_tasks_load_through_custom_task():
    gue = SHARED_DATA / "gue"
    data = load_task(custom_task("mouse3", gue / "mouse" / "3", max_length=101))
    assert (len(data.train), len(data.valid), len(data.test)) == (1904, 239, 239)
    assert data.class_names == ["0", "1"]
    # a task without train: dev is the training set (10 % split off for validation), test untouched
    no_train = custom_task("splice", gue / "splice" / "reconstructed" / "dev.csv.gz", max_length=400,
                           test_path=gue / "splice" / "reconstructed" / "test.csv.gz")
    data = load_task(no_train)
    assert data.class_names == ["0", "1", "2"] and len(data.test) == 4562
    assert len(data.train) + len(data.valid) == 4562 and len(data.valid) == 457


# --- the Hugging Face hub source (no network: a saved snapshot, or datasets/huggingface_hub patched) ---

def _no_fetch(*args, **kwargs):
    raise AssertionError("the network must not be used")


def test_saved_snapshot_loads_offline(monkeypatch):
    task = GENOMIC_BENCHMARKS["human_nontata_promoters"]
    target = cache_root() / "downstream" / "genomic_benchmarks" / "human_nontata_promoters"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sequence": ["ACGT", "TTTT", "GGGG"],
                                             "label": ["negative", "positive", "negative"]}),
        "test": datasets.Dataset.from_dict({"sequence": ["CCCC"], "label": ["positive"]}),
    }).save_to_disk(str(target))
    monkeypatch.setattr(hub, "fetch_from_hub", _no_fetch)
    data = load_task(task, val_fraction=0.0)
    assert data.class_names == ["negative", "positive"]
    assert data.train == [("ACGT", 0), ("TTTT", 1), ("GGGG", 0)] and data.test == [("CCCC", 1)]


def test_hub_fetch_maps_gb_labels_to_names_and_snapshots(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    seen = []

    def fake_load_dataset(repo, cache_dir=None):
        seen.append((repo, cache_dir))
        return datasets.DatasetDict({  # the hub copy: seq, int label with 0=promoter 1=enhancer 2=ocr
            "train": datasets.Dataset.from_dict({"seq": ["AAAA", "CCCC", "GGGG"], "label": [0, 1, 2]}),
            "test": datasets.Dataset.from_dict({"seq": ["TTTT"], "label": [0]})})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task("human_ensembl_regulatory", val_fraction=0.0)
    assert seen == [("katarinagresova/Genomic_Benchmarks_human_ensembl_regulatory",
                     str(cache_root() / "huggingface"))]
    assert data.class_names == ["enhancer", "ocr", "promoter"]  # the same ids as the on-disk layout
    assert data.train == [("AAAA", 2), ("CCCC", 0), ("GGGG", 1)] and data.test == [("TTTT", 2)]
    # later loads come from the snapshot, offline
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", _no_fetch)
    loading._load_cached.cache_clear()
    assert load_task("human_ensembl_regulatory", val_fraction=0.0) == data


def test_hub_fetch_filters_nt_revised_by_task_column(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    rows = [line.split("\t") for line in
            gzip.open(FIXTURES / "nt_revised_sample.tsv.gz", "rt").read().splitlines()[1:]]
    table = {"sequence": [r[0] for r in rows], "name": [r[1] for r in rows], "label": [int(r[2]) for r in rows],
             "task": [r[3] for r in rows]}
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, cache_dir=None: datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(table), "test": datasets.Dataset.from_dict(table)}))
    data = load_task(NUCLEOTIDE_TRANSFORMER_REVISED["enhancers_types"], val_fraction=0.0)
    expected = [(r[0], int(r[2])) for r in rows if r[3] == "enhancers_types"]
    assert data.train == expected and data.class_names == ["0", "1", "2"]


def test_hub_fetch_falls_back_to_the_nt_raw_fasta_files(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_DATASETS_OFFLINE")

    def script_repo(repo, cache_dir=None):
        raise RuntimeError("Dataset scripts are no longer supported")

    files = {"train": ">r1|1\nACGT\n>r2|0\nTTGA\n", "test": ">r3|0\nGGCC\n>r4|1\nACGG\n"}
    requested = []

    def fake_download(repo, filename, repo_type=None, cache_dir=None):
        requested.append((repo, filename, repo_type))
        path = tmp_path / filename.replace("/", "_")
        path.write_text(files[filename.split("/")[1].split(".")[0]])
        return str(path)

    import huggingface_hub
    monkeypatch.setattr(datasets, "load_dataset", script_repo)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    data = load_task("H3K4me3", val_fraction=0.0)
    assert requested == [("InstaDeepAI/nucleotide_transformer_downstream_tasks", f"H3K4me3/{s}.fna", "dataset")
                         for s in ("train", "test")]
    assert data.train == [("ACGT", 1), ("TTGA", 0)] and data.test == [("GGCC", 0), ("ACGG", 1)]
    assert hub.snapshot_dir(NUCLEOTIDE_TRANSFORMER["H3K4me3"]).is_dir()


def test_no_cache_and_no_network_is_one_clear_line(monkeypatch):
    with pytest.raises(TaskDataError) as err:  # offline mode: fails before any network access
        load_task("human_nontata_promoters")
    message = str(err.value)
    assert "\n" not in message and "'human_nontata_promoters'" in message
    assert "python -m data_tools.genomic_benchmarks rebuild" in message
    monkeypatch.delenv("HF_DATASETS_OFFLINE")

    def unreachable(repo, cache_dir=None):
        raise ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)\nmore\nlines")

    import huggingface_hub
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: unreachable(None))
    with pytest.raises(TaskDataError, match=r"task 'H3K4me3': cannot fetch InstaDeepAI/nucleotide_transformer_"
                                            r"downstream_tasks from the Hugging Face hub \(ConnectionError: ") as err:
        load_task("H3K4me3")
    assert "\n" not in str(err.value)


def test_hub_label_out_of_range_is_an_error(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, cache_dir=None: datasets.DatasetDict({
        s: datasets.Dataset.from_dict({"seq": ["ACGT"], "label": [5]}) for s in ("train", "test")}))
    with pytest.raises(TaskDataError, match=r"hub task 'human_ocr_ensembl' train row 1: label 5 is not one of 0..1"):
        load_task("human_ocr_ensembl")


def test_a_custom_task_with_one_class_is_refused(tmp_path):
    import pytest

    from dnax.data.downstream import TaskDataError, custom_task

    (tmp_path / "one.csv").write_text("sequence,label\n" + "ACGTACGT,pos\n" * 12)
    with pytest.raises(TaskDataError, match=r"one.csv: every training label is 'pos'; a classification task needs "
                                            "at least two classes"):
        custom_task("one", tmp_path / "one.csv", max_length=8)
