"""Thin CLIs over pure, unit-tested functions: FASTA/BED -> windows -> MDS shards (see `fasta_to_mds`).

Not a published package (the repository root is on the path). Keep imports here cheap.
"""


class InputError(ValueError):
    """Bad user input (a file, an argument). The message is one line and names the file and line where known."""
