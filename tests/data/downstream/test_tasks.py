import pytest

from dnax.data.downstream import (GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER, NUCLEOTIDE_TRANSFORMER_REVISED,
                                  TaskDataError, TaskSpec, resolve_task)


def test_genomic_benchmarks_match_the_reference_config():
    expected = {"dummy_mouse_enhancers_ensembl": 1024, "demo_coding_vs_intergenomic_seqs": 200,
                "demo_human_or_worm": 200, "human_enhancers_cohn": 500, "human_enhancers_ensembl": 512,
                "human_ensembl_regulatory": 512, "human_nontata_promoters": 251, "human_ocr_ensembl": 512}
    assert {n: t.max_length for n, t in GENOMIC_BENCHMARKS.items()} == expected
    assert {t.metric for t in GENOMIC_BENCHMARKS.values()} == {"accuracy"}
    assert [n for n, t in GENOMIC_BENCHMARKS.items() if t.num_classes == 3] == ["human_ensembl_regulatory"]


def test_nucleotide_transformer_v1_has_the_18_reference_tasks():
    assert len(NUCLEOTIDE_TRANSFORMER) == 18
    by_metric = {}
    for t in NUCLEOTIDE_TRANSFORMER.values():
        by_metric.setdefault(t.metric, set()).add(t.name)
    assert by_metric["accuracy"] == {"splice_sites_all"}
    assert by_metric["f1"] == {"promoter_all", "promoter_no_tata", "promoter_tata", "splice_sites_acceptors",
                               "splice_sites_donors"}
    assert len(by_metric["mcc"]) == 12  # 10 histone marks + 2 enhancer tasks
    assert NUCLEOTIDE_TRANSFORMER["H3K4me3"].max_length == 500
    assert NUCLEOTIDE_TRANSFORMER["splice_sites_all"].max_length == 400
    assert NUCLEOTIDE_TRANSFORMER["splice_sites_donors"].max_length == 600
    assert {n for n, t in NUCLEOTIDE_TRANSFORMER.items() if t.num_classes == 3} == {"enhancers_types",
                                                                                   "splice_sites_all"}


def test_revised_tasks_have_the_revised_lengths():
    assert len(NUCLEOTIDE_TRANSFORMER_REVISED) == 18
    assert NUCLEOTIDE_TRANSFORMER_REVISED["H3K27ac"].max_length == 1000
    assert NUCLEOTIDE_TRANSFORMER_REVISED["enhancers"].max_length == 400


def test_resolve_task_by_name_and_collection():
    assert resolve_task("H3K4me3") is NUCLEOTIDE_TRANSFORMER["H3K4me3"]
    assert resolve_task("human_ocr_ensembl").collection == "genomic_benchmarks"
    assert resolve_task("nucleotide_transformer_revised/H3K4me3") is NUCLEOTIDE_TRANSFORMER_REVISED["H3K4me3"]
    assert resolve_task("H2AFZ").collection == "nucleotide_transformer_revised"  # only in the revised set
    spec = TaskSpec("x", "custom", 10, "mcc", 2)
    assert resolve_task(spec) is spec
    with pytest.raises(TaskDataError, match="unknown task 'nope'"):
        resolve_task("nope")
    with pytest.raises(TaskDataError, match="unknown task collection"):
        resolve_task("other/H3")
