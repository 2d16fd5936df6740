"""Fiddle tags for scalars shared by several config fields; one fiddler owns each (see dnax/fiddlers.py)."""
import fiddle as fdl


class SeqLen(fdl.Tag):
    """Context length: data window length and the model's max_length."""


class GlobalBatch(fdl.Tag):
    """Training windows per optimizer step, summed over all processes."""
