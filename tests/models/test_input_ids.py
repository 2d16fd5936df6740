"""Wrong input a user gives a backbone, `DnaLM` or an objective: one clear error naming it, or the right result."""
import numpy as np
import pytest
import torch

from dnax import tokenizer as tk
from dnax.models.backbones.caduceus import CaduceusLM
from dnax.models.backbones.cnn import GenomicBenchmarksCNN
from dnax.models.backbones.hyena import HyenaLM
from dnax.models.backbones.mamba import MambaLM
from dnax.models.backbones.transformer_pp import TransformerPPLM
from dnax.models.backbones.xlstm import XLSTMLM
from dnax.models.lm import DnaLM
from dnax.models.objectives import CausalLM, MaskedLM

BACKBONES = {  # name -> (constructor, embedding rows)
    "XLSTMLM": (lambda: XLSTMLM(d_model=32, n_layer=1, max_length=16), 12),
    "XLSTMLM-rcps": (lambda: XLSTMLM(d_model=32, n_layer=1, s_num_heads=2, s_lstm_at=[0], rcps=True), 12),
    "MambaLM": (lambda: MambaLM(d_model=16, n_layer=1, max_length=16), 16),
    "CaduceusLM": (lambda: CaduceusLM(d_model=16, n_layer=1, max_length=16, rcps=True), 16),
    "TransformerPPLM": (lambda: TransformerPPLM(d_model=16, n_layer=1, n_heads=2, max_length=16), 12),
    "HyenaLM": (lambda: HyenaLM(d_model=16, n_layer=1, max_length=16), 16),
}


@pytest.fixture(scope="module", params=list(BACKBONES))
def backbone(request):
    torch.manual_seed(0)
    make, rows = BACKBONES[request.param]
    return request.param.split("-")[0], make().eval(), rows


def test_tokenizer_output_and_int32_give_the_int64_result(backbone):
    _, model, _ = backbone
    ids = np.stack([tk.encode("ACGTNacgtRYACGTA"), tk.encode("TTGCAACGTNNACGTC")])  # uint8, as encode returns
    with torch.no_grad():
        ref = model(torch.from_numpy(ids).long())
        assert torch.equal(model(torch.from_numpy(ids)), ref)
        assert torch.equal(model(torch.from_numpy(ids).int()), ref)


@pytest.mark.parametrize("make_ids, error, message", [
    (lambda rows: torch.full((2, 8), 7.0), TypeError, r"input_ids must be integer token ids \(torch.long\), got "
                                                      r"torch.float32"),
    (lambda rows: torch.ones(2, 8, dtype=torch.bool), TypeError, "input_ids must be integer .*got torch.bool"),
    (lambda rows: torch.full((2, 8), rows), ValueError, r"token id {rows} outside the vocabulary 0\.\.{last}"),
    (lambda rows: torch.tensor([[7, 8, -1]]), ValueError, r"token id -1 outside the vocabulary"),
    (lambda rows: torch.tensor([65, 67, 71, 84]), ValueError, r"input_ids must be \(batch, length\), got shape \(4,\)"),
    (lambda rows: torch.full((1, 2, 8), 7), ValueError, r"input_ids must be \(batch, length\), got shape \(1, 2, 8\)"),
    (lambda rows: torch.zeros(0, 8, dtype=torch.long), ValueError, r"input_ids has no tokens \(shape \(0, 8\)\)"),
    (lambda rows: torch.zeros(2, 0, dtype=torch.long), ValueError, r"input_ids has no tokens \(shape \(2, 0\)\)"),
], ids=["float", "bool", "id_past_vocab", "negative_id", "1d", "3d", "empty_batch", "empty_sequence"])
def test_wrong_ids_are_one_clear_error_naming_the_model(backbone, make_ids, error, message):
    name, model, rows = backbone
    with pytest.raises(error, match=f"^{name}: " + message.format(rows=rows, last=rows - 1)):
        model(make_ids(rows))
    with pytest.raises(error, match=f"^{name}: "):  # hidden_states, which classifiers call, checks the same
        model.hidden_states(make_ids(rows))


def test_cnn_checks_ids_and_keeps_an_empty_batch():
    model = GenomicBenchmarksCNN(max_length=64).eval()
    ids = torch.randint(7, 11, (2, 64))
    with torch.no_grad():
        assert torch.equal(model(ids.to(torch.uint8)), model(ids))
        assert model(ids[:0]).shape == (0, 512)
    with pytest.raises(ValueError, match="^GenomicBenchmarksCNN: token id 65 outside the vocabulary 0..11"):
        model(torch.full((1, 64), 65))


def test_range_check_is_skipped_under_torch_compile():
    """No host sync inside a compiled graph: the check traces into a graph without a break (fullgraph)."""
    from dnax.models.input_ids import check_input_ids

    fn = torch.compile(lambda x: check_input_ids(x, 12, "m").sum(), backend="eager", fullgraph=True)
    assert int(fn(torch.full((2, 3), 11, dtype=torch.uint8))) == 66


@pytest.mark.parametrize("objective", [MaskedLM(), CausalLM()], ids=["mlm", "clm"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
def test_dnalm_takes_any_integer_batch(objective, dtype):
    torch.manual_seed(0)
    lm = DnaLM(XLSTMLM(d_model=32, n_layer=1), objective).eval()
    batch = {"input_ids": torch.from_numpy(np.stack([tk.encode("ACGTNACGTTGCAACG")] * 2)).long()}
    ref = lm.loss(lm(batch), batch)
    other = {"input_ids": batch["input_ids"].to(dtype)}
    out = lm(other)
    assert out.targets.dtype == torch.long
    assert torch.equal(lm.loss(out, other), ref) and torch.isfinite(ref)


def test_dnalm_objective_must_be_callable():
    with pytest.raises(TypeError, match="^DnaLM: objective must be callable.*got 'mlm'"):
        DnaLM(XLSTMLM(d_model=32, n_layer=1), "mlm")


@pytest.mark.parametrize("kwargs, message", [
    (dict(mlm_probability=1.5), r"mlm_probability must be in \(0, 1\], got 1.5"),
    (dict(mlm_probability=0.0), r"mlm_probability must be in \(0, 1\], got 0.0"),
    (dict(mask_prob=0.9, random_prob=0.2), "mask_prob 0.9 and random_prob 0.2 must be >= 0 and sum to at most 1"),
    (dict(random_prob=-0.1), "mask_prob 0.8 and random_prob -0.1 must be >= 0"),
    (dict(random_tokens="acgt"), "random_tokens must be 'vocab' or 'nucleotides', got 'acgt'"),
])
def test_masked_lm_rejects_impossible_rates(kwargs, message):
    with pytest.raises(ValueError, match="^MaskedLM: " + message):
        MaskedLM(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(d_model=16), r"mLSTM: proj_factor 2.0 x embedding_dim 16 rounds down to an inner dim of 0 .*"
                       r"use embedding_dim >= 32"),
    (dict(d_model=32, m_num_heads=3), "mLSTM: num_heads 3 must divide the inner dim 64"),
    (dict(d_model=32, m_num_heads=0), "mLSTM: num_heads 0 must divide the inner dim 64"),
    (dict(d_model=32, m_qkv_proj_blocksize=5), "mLSTM: qkv_proj_blocksize 5 must divide the inner dim 64"),
    (dict(d_model=32, s_lstm_at=[0], s_num_heads=3), "sLSTM: num_heads 3 must divide embedding_dim 32"),
])
def test_xlstm_sizes_that_cannot_work_are_named_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        XLSTMLM(n_layer=1, **kwargs)
