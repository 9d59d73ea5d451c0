"""Shared safety mechanisms: atomic writes of files and folders, refusal of non-finite numbers, checked loading.

One home for each, reused by training, extraction, search and the command line (see ``docs/reliability.md``):

* `atomic_write_text` / `atomic_write_json` / `atomic_folder` / `atomic_export`: a file or folder is written under
  a temporary sibling name (``.<name>.incomplete``) and renamed into place, so an interruption (kill, full disk)
  leaves either the old complete version or the new complete version, never a truncated one.
* `check_finite`: raises `NonFiniteError` naming what held NaN / inf (and how many values).
* `load_pretrained_checked`: ``from_pretrained(..., output_loading_info=True)`` that refuses missing,
  unexpected or mismatched keys, non-floating weights and non-finite weights, naming them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

INCOMPLETE_SUFFIX = ".incomplete"
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


class NonFiniteError(ValueError):
    """A tensor (a loss, an embedding, a weight) holds NaN or infinite values; the message names it."""


class CheckpointLoadError(ValueError):
    """Weights that do not match the model (missing / unexpected / mismatched keys), are not floating point or
    are not finite; the message names the folder and the keys."""


def incomplete_sibling(path: str | os.PathLike) -> Path:
    """The temporary name ``<parent>/.<name>.incomplete`` a file or folder is written under before its rename."""
    path = Path(path)
    return path.with_name(f".{path.name}{INCOMPLETE_SUFFIX}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary sibling of ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    tmp = incomplete_sibling(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, payload: Any, **kwargs: Any) -> None:
    """`atomic_write_text` of ``json.dumps(payload, **kwargs)`` (``indent=2`` unless given)."""
    atomic_write_text(path, json.dumps(payload, **{"indent": 2, **kwargs}))


def commit_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``path``, replacing a previous ``path`` (removed only afterwards)."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``path`` to write into; on success it replaces ``path``.

    On an exception the temporary folder is removed and ``path`` (if it existed) is left as it was.
    """
    tmp = incomplete_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_folder(tmp, path)


@contextmanager
def atomic_export(path: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_folder`, for a folder the user named: a new ``path`` appears whole; into an existing one each
    written file is renamed over its old version (never truncated) and the user's other files are left alone."""
    path = Path(path)
    if not path.exists():
        with atomic_folder(path) as tmp:
            yield tmp
        return
    tmp = incomplete_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = path / file.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def count_nonfinite(tensor: torch.Tensor) -> int:
    """Number of NaN / +-inf values in ``tensor`` (0 for integer tensors)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    return int((~torch.isfinite(tensor.detach())).sum())


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """Raise `NonFiniteError` naming ``what`` if ``tensor`` holds NaN or infinite values."""
    bad = count_nonfinite(tensor)
    if bad:
        raise NonFiniteError(f"{what} holds {bad} non-finite (NaN or inf) value(s) of {tensor.numel()}")


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``model`` holding NaN or infinite values."""
    return [name for name, tensor in model.state_dict().items() if count_nonfinite(tensor)]


def safetensors_dtypes(folder: str | os.PathLike) -> dict[str, str]:
    """``tensor name -> safetensors dtype`` (e.g. ``"F32"``) of every ``*.safetensors`` file in ``folder``, read from
    the headers only."""
    dtypes: dict[str, str] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            try:
                header = json.loads(handle.read(size)) if 0 < size <= file.stat().st_size - 8 else None
            except (UnicodeDecodeError, json.JSONDecodeError, MemoryError):
                header = None
        if not isinstance(header, dict):
            raise CheckpointLoadError(f"{file}: not a safetensors file (unreadable or truncated header)")
        dtypes.update({name: info["dtype"] for name, info in header.items() if name != "__metadata__"})
    return dtypes


def load_pretrained_checked(model_class: Any, folder: str | os.PathLike, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(folder, output_loading_info=True, **kwargs)``, refusing a folder whose weights
    do not fit the model exactly.

    Raises:
        CheckpointLoadError: naming ``folder`` and the keys that are missing, unexpected or of another shape, that
            are stored as non-floating dtypes (e.g. int64 weights), or that hold NaN / inf after loading.
    """
    dtypes = safetensors_dtypes(folder)
    integral = sorted(name for name, dtype in dtypes.items() if dtype not in _FLOAT_DTYPES)
    if integral:
        listed = ", ".join(f"{name} ({dtypes[name]})" for name in integral[:10])
        raise CheckpointLoadError(
            f"{folder}: {len(integral)} weight(s) are not floating point: {listed}; the file is corrupt or not "
            "an EVA02-AT checkpoint"
        )
    try:
        model, info = model_class.from_pretrained(folder, output_loading_info=True, **kwargs)
    except OSError:
        raise
    except Exception as error:  # e.g. a SafetensorError on a truncated file, named by neither
        raise CheckpointLoadError(
            f"{folder}: the weights cannot be loaded ({type(error).__name__}: {error})"
        ) from error
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(key) for key in info.get(kind) or [])
        if keys:
            more = f" (+{len(keys) - 10} more)" if len(keys) > 10 else ""
            problems.append(f"{len(keys)} {kind.replace('_', ' ')}: {', '.join(keys[:10])}{more}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(message) for message in info["error_msgs"]))
    if problems:
        raise CheckpointLoadError(
            f"{folder}: the weights do not match {model_class.__name__} ({'; '.join(problems)}); the checkpoint is "
            "incomplete or of another architecture"
        )
    bad = nonfinite_parameters(model)
    if bad:
        raise CheckpointLoadError(
            f"{folder}: {len(bad)} weight tensor(s) hold NaN or inf values: {', '.join(bad[:10])}; the checkpoint "
            "is corrupt (or was saved from a diverged run)"
        )
    return model


__all__ = [
    "CheckpointLoadError",
    "INCOMPLETE_SUFFIX",
    "NonFiniteError",
    "atomic_export",
    "atomic_folder",
    "atomic_write_json",
    "atomic_write_text",
    "check_finite",
    "commit_folder",
    "count_nonfinite",
    "incomplete_sibling",
    "load_pretrained_checked",
    "nonfinite_parameters",
    "safetensors_dtypes",
]
