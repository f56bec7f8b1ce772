"""Where every artifact is written: one lock per output, a sibling staging path, a checked swap.

The rules every command follows for its output (`--out`):

- Lock: a writer holds an OS file lock (`flock`) on `.<name>.lock` beside the output for as long as
  it works on it; a second writer of the same output gets one line and exits with code 2.
- Refuse early: an existing output is refused unless `--overwrite`, and `--overwrite` replaces only a
  logo artifact of the same kind (a pretrain run for pretrain, a synthetic buffer for rollout, ...).
  A symbolic link is never replaced (its target is named instead); a dangling one is refused.
- Build beside: the new artifact is built under a hidden sibling name (`.<name>.<random>.tmp`) and
  swapped in only when complete, so the old artifact survives every failure until that moment.
- Check again: just before the swap the output is checked again (something may have appeared there),
  then swapped atomically (`renameat2` RENAME_EXCHANGE / RENAME_NOREPLACE where the system has them).
- Leftovers of a killed writer (its staging siblings) are removed by the next holder of the lock.

Running as root ignores permission bits, so the tests simulate unwritable outputs by a file in the
place of a parent folder or by making os functions raise OSError (EACCES, ENOSPC) in-process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from logo_cli.artifact_kind import KIND_TEXT, artifact_kind, describe_path
from logo_cli.errors import LogoError, one_line

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: no locking
    fcntl = None  # type: ignore[assignment]

STAGING_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"


# ---- checks before anything is written ------------------------------------------------------------


def ensure_parent(target: Path, option: str = "--out") -> None:
    """Create the output's folder; one line when a file is in the way or it cannot be created."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LogoError(
            f"{option} {target}: cannot create its folder {parent} (a file is in the way)"
        ) from None
    except NotADirectoryError:
        raise LogoError(
            f"{option} {target}: cannot create its folder {parent} (a file is in the way)"
        ) from None
    except OSError as e:
        raise LogoError(f"{option} {target}: cannot create its folder {parent} ({e.strerror})") from None
    if not parent.is_dir():
        raise LogoError(f"{option} {target}: {parent} is not a folder")


def check_target(target: Path, kind: str, overwrite: bool, option: str = "--out") -> bool:
    """Refuse an output that may not be written; True when something replaceable is there.

    - nothing there: fine (False);
    - a symbolic link: refused (a dangling one, or --overwrite of a live one: logo replaces only real
      files and folders); without --overwrite a live link is "already exists";
    - something there without --overwrite: "already exists";
    - with --overwrite: only an artifact of `kind` (or an empty folder) may be replaced.
    """
    if target.is_symlink():
        dest = os.readlink(target)
        if not target.exists():
            raise LogoError(
                f"{option} {target}: a dangling symbolic link (to {dest}); remove it or choose another path"
            )
        if overwrite:
            raise LogoError(
                f"{option} {target}: a symbolic link (to {dest}); --overwrite replaces only real files "
                "and folders: give the link's target instead"
            )
        raise LogoError(f"{target}: already exists (pass --overwrite to replace it)")
    if not target.exists():
        return False
    if not overwrite:
        raise LogoError(f"{target}: already exists (pass --overwrite to replace it)")
    found = artifact_kind(target)
    if found == kind or (found == "empty" and kind not in ("dataset", "evaluate")):
        return True
    raise LogoError(
        f"{option} {target}: {describe_path(target)}, not {KIND_TEXT[kind]}; --overwrite replaces only "
        "that (remove it yourself or choose another path)"
    )


# ---- the lock -------------------------------------------------------------------------------------


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


class OutputLock:
    """An exclusive, non-blocking OS lock on one output (flock on `.<name>.lock` beside it).

    The lock file is removed on release. A waiter that locked a file just unlinked by its previous
    holder notices (the path no longer names the file it locked) and tries again, so two processes
    never both hold the lock. Released automatically when the process dies (even by kill -9).
    """

    def __init__(self, target: str | Path, option: str = "--out"):
        self.target = Path(target)
        self.path = lock_path(self.target)
        self.option = option
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        if fcntl is None:  # pragma: no cover
            return self
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise LogoError(
                    f"{self.option} {self.target}: cannot write in {self.target.parent} "
                    f"({e.strerror or type(e).__name__})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_small(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise LogoError(
                    f"{self.target}: another logo process{who} is writing it right now; wait for it to "
                    "finish or choose another --out"
                ) from None
            except OSError as e:  # a file system without locks
                os.close(fd)
                raise LogoError(f"{self.target}: cannot lock {self.path} ({e.strerror})") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its previous holder removed it between our open and our lock
                os.close(fd)
                continue
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self
        raise LogoError(f"{self.target}: could not take the lock {self.path}")  # pragma: no cover

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: no one can hold a lock on this file now
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_small(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def exclusive(target: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold the output's lock for the whole block (create its folder first); stale staging leftovers
    of a killed writer are removed once the lock is held."""
    target = Path(target)
    ensure_parent(target, option)
    with OutputLock(target, option):
        remove_stale(target)
        try:
            yield target
        except OSError as e:  # named by the output when the error itself names no file
            raise LogoError(os_error_line(e, target)) from None


def remove_stale(target: Path) -> None:
    """Remove `.<name>.<random>.tmp` / `.old` siblings (and `..<name>.<random>.tmp.<random>.tmp` of
    writers that stage inside a staging name): only a lock holder creates them, so when we hold the
    lock they belong to a writer that died. The random part is tempfile's (8 of [a-z0-9_]), so the
    staging of another output whose name merely starts with this one never matches."""
    pattern = re.compile(
        r"^\.{1,2}" + re.escape(target.name) + r"\.[a-z0-9_]{8}\.(tmp|old)(\.[a-z0-9_]{8}\.tmp)?$"
    )
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        if pattern.match(p.name):
            remove(p)


# ---- staging and the swap -------------------------------------------------------------------------


def staging_path(target: Path, directory: bool, create: bool = True) -> Path:
    """A fresh hidden sibling of `target` to build into (`.<name>.<random>.tmp`)."""
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=STAGING_SUFFIX))
        if not create:
            tmp.rmdir()
        return tmp
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=STAGING_SUFFIX)
    os.close(fd)
    if not create:
        os.unlink(name)
    return Path(name)


def remove(path: Path) -> None:
    """Remove a file, link or folder; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(2) with `flags`; False when this system or file system does not offer it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(str(src)), _AT_FDCWD, os.fsencode(str(dst)), ctypes.c_uint(flags))
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _permissions(tmp: Path) -> None:
    """mkstemp/mkdtemp create private entries; a published artifact reads like any user file."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~mask)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def swap_in(tmp: Path, target: Path, kind: str, overwrite: bool, option: str = "--out") -> None:
    """Put the finished `tmp` in place of `target`, checking the target once more first.

    Without --overwrite nothing may have appeared at `target` meanwhile; with it, what is there must
    still be an artifact of `kind`. The swap is atomic where the system allows (the old artifact and
    the new one are exchanged, then the old one is removed); a refusal leaves `tmp` for the caller.
    """
    _permissions(tmp)
    exists = check_target(target, kind, overwrite, option)
    if not exists:
        if not _renameat2(tmp, target, _RENAME_NOREPLACE):
            if target.exists() or target.is_symlink():  # no RENAME_NOREPLACE here: a last look
                raise LogoError(f"{target}: already exists (appeared while this run was writing it)")
            os.rename(tmp, target)
        _fsync_dir(target.parent)
        return
    if tmp.is_file() and target.is_file():
        os.replace(tmp, target)  # atomic for files
    elif _renameat2(tmp, target, _RENAME_EXCHANGE):
        remove(tmp)  # now the old artifact
    else:  # two renames: the old one is kept aside until the new one is in place
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=OLD_SUFFIX))
        old.rmdir()
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(old, target)
            raise
        remove(old)
    _fsync_dir(target.parent)


def os_error_line(e: OSError, target: Path | None = None, kept: str | None = None) -> str:
    """One line for an OSError: the path it names (else `target`), the reason, and what was kept."""
    where = e.filename if e.filename is not None else target
    reason = e.strerror or one_line(e) or type(e).__name__
    code = errno.errorcode.get(e.errno or -1)
    text = f"{where}: {reason}" if where is not None else reason
    if code:
        text += f" ({code})"
    if e.filename2 is not None:
        text += f" [-> {e.filename2}]"
    if where is not None and target is not None and Path(where) != target:
        text += f" while writing {target}"
    if kept:
        text += f"; {kept}"
    return text


@contextlib.contextmanager
def building(
    target: str | Path, kind: str, overwrite: bool, *, directory: bool, option: str = "--out"
) -> Iterator[Path]:
    """Lock `target`, refuse what may not be replaced, yield a staging path to build into, and swap
    it in on success. On any failure the staging path is removed and `target` is left untouched;
    an OSError becomes one line naming the path.

    For a file (`directory=False`) the staging path exists as an empty file, which writers may
    replace (e.g. with their own temporary-file rename).
    """
    target = Path(target)
    with exclusive(target, option):
        check_target(target, kind, overwrite, option)
        try:
            tmp = staging_path(target, directory)
        except OSError as e:
            raise LogoError(os_error_line(e, target)) from None
        kept = f"{target} is unchanged" if target.exists() else f"nothing was written to {target}"
        try:
            yield tmp
            swap_in(tmp, target, kind, overwrite, option)
        except OSError as e:
            remove(tmp)
            raise LogoError(os_error_line(e, target, kept)) from None
        except BaseException:
            remove(tmp)
            raise
