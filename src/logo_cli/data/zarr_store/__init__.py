"""Synthetic rollout buffers: one zarr v3 group per rollout run.

Flat arrays of equal first dimension (one row per synthetic transition), chunked along axis 0 and
compressed with Blosc zstd: the nine `Transitions` fields plus `uncertainty` (f32), `step` (rollout
step index, int16) and `branch` (branch id, int64). Group attributes carry the provenance and two
fields that make interruption safe:

- `n_rows`: rows written consistently across *all* arrays. It is updated only after every array has
  received a chunk, so a crash between two arrays leaves some arrays longer than `n_rows`; readers
  use the first `n_rows` rows and never see a half-appended chunk.
- `complete`: false while writing, true once the writer closed normally.

The empty group is built in a hidden sibling directory and renamed into place, so the final path
holds either nothing or a readable (possibly incomplete) buffer. Readers refuse an incomplete buffer
unless asked to accept its prefix (`logo train-policy --allow-incomplete`); `logo rollout` continues
it (`SyntheticWriter(resume=True)`: the run regenerates its rows deterministically, checks them
against the stored ones, and appends the rest).

Every value is validated as it is read (no second pass over the data): floats finite, discrete
actions in range and available, `step` and `branch` >= 0 (`step` below the horizon), uncertainty
>= 0, and a chunk that does not decompress is one line naming the array. Buffers written with
`empty_chunks_written` store every chunk, so a deleted chunk file is found too (zarr would read
it as zeros). The writer refuses NaN or inf rows before they reach the disk.

schema.py: the format and the arrays; writer.py: SyntheticWriter; reader.py: open_synthetic and
SyntheticBuffer; target.py: BufferTarget, a rollout run's output (lock, continue or replace).
"""

from logo_cli.artifact_kind import is_synthetic_buffer
from logo_cli.data.zarr_store.reader import SyntheticBuffer, open_synthetic
from logo_cli.data.zarr_store.schema import FORMAT, SCHEMA_VERSION
from logo_cli.data.zarr_store.target import BufferTarget
from logo_cli.data.zarr_store.writer import NonFiniteRows, SyntheticWriter

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "BufferTarget",
    "NonFiniteRows",
    "SyntheticBuffer",
    "SyntheticWriter",
    "is_synthetic_buffer",
    "open_synthetic",
]
