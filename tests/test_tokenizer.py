import numpy as np
import pytest
import torch

from dnax import tokenizer as tk


def test_reference_ids_exactly():
    assert tk.VOCAB == ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N")
    assert (tk.CLS, tk.SEP, tk.BOS, tk.MASK, tk.PAD, tk.RESERVED, tk.UNK) == tuple(range(7))
    assert (tk.A, tk.C, tk.G, tk.T, tk.N) == (7, 8, 9, 10, 11)


def test_complement_map_is_the_reference_one():
    assert tk.COMPLEMENT_MAP == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 9, 9: 8, 10: 7, 11: 11}


def test_complement_is_an_involution_and_rc_twice_is_identity():
    ids = torch.randint(0, tk.VOCAB_SIZE, (5, 37))
    assert torch.equal(tk.complement(tk.complement(ids)), ids)
    assert torch.equal(tk.reverse_complement(tk.reverse_complement(ids)), ids)


def test_reverse_complement_of_text():
    ids = torch.as_tensor(tk.encode("AACGTN").astype(np.int64))
    assert tk.decode(tk.reverse_complement(ids)) == "NACGTT"


def test_lowercase_maps_like_uppercase_and_iupac_to_n():
    assert np.array_equal(tk.encode("acgtn"), tk.encode("ACGTN"))
    assert set(tk.encode("RYKMSWBDHVrykmswbdhv").tolist()) == {tk.N}


def test_invalid_character_names_position():
    with pytest.raises(ValueError, match=r"invalid nucleotide 'X' at position 3"):
        tk.encode("ACGXT")


def test_dtype_preserved():
    ids = torch.tensor([[7, 8, 9, 10, 11, 3]], dtype=torch.uint8)
    out = tk.reverse_complement(ids)
    assert out.dtype == torch.uint8
    assert out.tolist() == [[3, 11, 7, 8, 9, 10]]


def test_invalid_character_is_the_one_the_user_wrote():
    with pytest.raises(ValueError, match=r"invalid nucleotide 'é' at position 4"):
        tk.encode("ACGTé")
    with pytest.raises(ValueError, match=r"invalid nucleotide 'U' at position 3"):
        tk.encode(b"ACGU")


def test_encode_takes_one_sequence():
    assert tk.encode(bytearray(b"acgt")).tolist() == [7, 8, 9, 10]
    assert tk.encode(np.frombuffer(b"ACGT", dtype=np.uint8)).tolist() == [7, 8, 9, 10]
    assert tk.encode("").shape == (0,)
    with pytest.raises(TypeError, match="encode takes one sequence .*got list; encode each one"):
        tk.encode(["ACGT", "AC"])


def test_decode_round_trip_and_wrong_ids():
    assert tk.decode(tk.encode("ACGTNryN")) == "ACGTNNNN"
    assert tk.decode(torch.tensor([tk.A, tk.MASK, tk.T], dtype=torch.int32)) == "A?T"
    assert tk.decode([]) == ""
    with pytest.raises(ValueError, match=r"decode: token id -1 outside the vocabulary 0\.\.11"):
        tk.decode([7, -1])  # numpy would wrap -1 around to 'N'
    with pytest.raises(ValueError, match=r"token id 12 outside"):
        tk.decode(torch.tensor([12]))
    with pytest.raises(TypeError, match="decode takes integer token ids, got dtype float"):
        tk.decode([7.0, 8.5])
    with pytest.raises(ValueError, match=r"decode takes one sequence \(1-D ids\), got shape \(2, 2\); decode each"):
        tk.decode(torch.tensor([[7, 8], [9, 10]]))


def test_reverse_complement_of_encode_output_stays_numpy():
    ids = tk.encode("AACGTN")
    out = tk.reverse_complement(ids)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and tk.decode(out) == "NACGTT"
    assert np.array_equal(tk.complement(ids), tk.complement(torch.from_numpy(ids)).numpy())
