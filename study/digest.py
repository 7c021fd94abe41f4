"""A digest of every value of an Arrow table, for compaction's read-back check
(study.results.compact): equal for equal tables however they are chunked or sliced, so the file
written can be compared with the rows meant for it, row group by row group, without holding both."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def digest(table: pa.Table) -> bytes:
    """A digest of every value of `table`: equal for equal tables however they are chunked or
    sliced, NaN by its bits, nulls apart from the values under them."""
    h = hashlib.blake2b(digest_size=32)
    h.update(repr([(f.name, _type(f.type)) for f in table.schema]).encode())
    for column in table.columns:
        _feed(h, column.combine_chunks() if column.num_chunks else pa.array([], column.type))
    return h.digest()


def _type(t: pa.DataType) -> str:
    """A type's text without the name of a list's item field (Parquet keeps "element")."""
    return f"list<{_type(t.value_type)}>" if pa.types.is_list(t) else str(t)


def _feed(h: Any, x: pa.Array) -> None:
    h.update(len(x).to_bytes(8, "little"))
    h.update(x.is_valid().to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_list(x.type):
        h.update(pc.fill_null(pc.list_value_length(x), 0).to_numpy().tobytes())
        _feed(h, x.flatten())  # the values of the non-null lists, slicing undone
    elif pa.types.is_string(x.type) or pa.types.is_large_string(x.type):
        x = pc.fill_null(x, "")
        h.update(pc.binary_length(x).to_numpy().tobytes())
        if len(x):
            width = np.int64 if pa.types.is_large_string(x.type) else np.int32
            offsets = np.frombuffer(x.buffers()[1], dtype=width)[x.offset : x.offset + len(x) + 1]
            data = x.buffers()[2]
            h.update(memoryview(data)[offsets[0] : offsets[-1]] if data is not None else b"")
    else:  # numbers and booleans; floats by their bits (tobytes)
        fill = False if pa.types.is_boolean(x.type) else 0
        h.update(pc.fill_null(x, fill).to_numpy(zero_copy_only=False).tobytes())
