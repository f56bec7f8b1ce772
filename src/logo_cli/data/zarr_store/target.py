"""The output of one rollout run: its lock, and whether it starts, continues or replaces a buffer."""

from __future__ import annotations

from pathlib import Path

from logo_cli.artifact_kind import artifact_kind, is_synthetic_buffer
from logo_cli.data.transitions import Dims
from logo_cli.data.zarr_store.reader import open_synthetic
from logo_cli.data.zarr_store.writer import NonFiniteRows, SyntheticWriter
from logo_cli.errors import LogoError, one_line

# Config fields that may differ when an interrupted rollout is continued (they do not change rows).
RESUMABLE = ("out", "overwrite", "device", "chunk_rows")
# Rollout options added after buffers were first written, with the value a buffer without them used.
ADDED_OPTIONS = {"uniform": False}


class BufferTarget:
    """The output of one rollout run: its lock, and whether it starts, continues or replaces a buffer.

    - nothing at the path: a fresh buffer is written there (an interrupted run leaves its prefix,
      marked incomplete, which the same command continues; a run that wrote no row leaves nothing);
    - an incomplete buffer made with the same options: it is continued (`SyntheticWriter(resume)`);
      with other options it is refused, naming the first difference;
    - `--overwrite` of a buffer (complete or not): the new one is built in a hidden sibling and
      swapped in by `finish()`, so the old one survives every failure until then;
    - anything else there is refused (see outputs.check_target).
    The lock on the path is held from `__enter__` to `__exit__`.
    """

    def __init__(self, path: str | Path, overwrite: bool, config: dict):
        self.path = Path(path)
        self.overwrite = overwrite
        self.config = config
        self.mode = "fresh"
        self.build = self.path
        self._lock = None
        self._writer: SyntheticWriter | None = None
        self._stored: dict | None = None

    def __enter__(self) -> BufferTarget:
        from logo_cli.outputs import OutputLock, ensure_parent, remove_stale

        ensure_parent(self.path)
        self._lock = OutputLock(self.path).acquire()
        try:
            remove_stale(self.path)
            self._decide()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _decide(self) -> None:
        from logo_cli.outputs import check_target, staging_path

        path = self.path
        if not (path.exists() or path.is_symlink()):
            return
        if self.overwrite:
            check_target(path, "rollout", overwrite=True)
            self.mode, self.build = "replace", staging_path(path, directory=True, create=False)
            return
        if artifact_kind(path) != "rollout":
            check_target(path, "rollout", overwrite=False)  # raises: already exists
        buf = open_synthetic(path, allow_incomplete=True)
        if buf.complete:
            raise LogoError(f"{path}: already exists (pass --overwrite to replace it)")
        if buf.n == 0:  # an interrupted run that wrote nothing: nothing to keep or to continue
            self.mode, self.build = "replace", staging_path(path, directory=True, create=False)
            return
        self._stored = buf.attrs
        diff = _config_diff(buf.attrs.get("config"), self.config)
        if diff:
            raise LogoError(
                f"{path}: an interrupted rollout ({buf.n} rows) made with other options ({diff}); rerun "
                "it with the same options to continue it, or pass --overwrite to replace it"
            )
        self.mode = "resume"

    def writer(self, attrs: dict, dims: Dims, chunk_rows: int) -> SyntheticWriter:
        """The writer for this run; when continuing, the provenance must match the stored one."""
        if self.mode == "resume":
            assert self._stored is not None
            for key in ("model", "policy", "source_data", "horizon", "seed", "sample"):
                if self._stored.get(key) != attrs.get(key):
                    was, now = (one_line(repr(x), 80) for x in (self._stored.get(key), attrs.get(key)))
                    raise LogoError(
                        f"{self.path}: an interrupted rollout whose {key.replace('_', ' ')} has changed "
                        f"since ({was} vs {now}); pass --overwrite to replace it"
                    )
            self._writer = SyntheticWriter(self.path, attrs, dims, chunk_rows, resume=True)
        else:
            self._writer = SyntheticWriter(self.build, attrs, dims, chunk_rows, label=self.path)
        return self._writer

    @property
    def resumed_from(self) -> int:
        return self._writer.resumed_from if self._writer is not None else 0

    def finish(self) -> None:
        """Swap a replacement in (checked again first); a no-op for fresh or continued buffers."""
        from logo_cli.outputs import swap_in

        if self.mode == "replace":
            swap_in(self.build, self.path, "rollout", overwrite=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        from logo_cli.outputs import os_error_line, remove

        kept = None
        try:
            if exc_type is not None:
                if self.mode == "replace":
                    remove(self.build)  # the buffer being replaced stays as it was
                    kept = f"{self.path} is unchanged" if self.path.exists() else "nothing was written"
                elif self.mode == "fresh" and (self._writer is None or self._writer.n == 0):
                    if is_synthetic_buffer(self.path):
                        remove(self.path)  # nothing written: leave no buffer blocking the rerun
                    kept = "nothing was written"
                else:
                    kept = (
                        "the rows written so far stay, marked incomplete (rerun the same command to continue)"
                    )
        finally:
            assert self._lock is not None
            self._lock.release()
        if isinstance(exc, OSError):
            raise LogoError(os_error_line(exc, self.path, kept)) from None
        if isinstance(exc, NonFiniteRows) and kept:
            raise LogoError(f"{exc}; {kept}") from None


def _config_diff(stored: object, now: dict) -> str:
    """The first option that differs between a stored rollout config and this run's."""
    if not isinstance(stored, dict):
        return "no recorded options"
    for key, value in now.items():
        old = stored.get(key, ADDED_OPTIONS.get(key))
        if key not in RESUMABLE and old != value:
            return f"{key} {old!r} vs {value!r}"
    return ""
