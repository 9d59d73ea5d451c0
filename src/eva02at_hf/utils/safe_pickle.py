"""Restricted unpickling: read a pickle from a user file without executing code.

`pickle` rebuilds objects by calling whatever importable callable the file names (``os.system`` included).
`restricted_pickle_load` resolves only the globals of an allow-list and refuses any other before it is called.
Builtin containers, strings and numbers (list, tuple, dict, str, bytes, int, float, bool, None) have their
own opcodes and need no global, so they always load.
"""

from __future__ import annotations

import codecs
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

try:
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _np_multiarray
    from numpy.core import numeric as _np_numeric

AllowedGlobals = Mapping[tuple[str, str], object]

# Protocols <= 2 store bytes (e.g. a numpy buffer) as `_codecs.encode(<latin-1 text>, "latin1")`.
_BYTES_GLOBALS: AllowedGlobals = {("_codecs", "encode"): codecs.encode}

# Globals of a pickled numpy scalar (e.g. `np.float64(1.5)`), written by numpy 1.x or 2.x.
NUMPY_SCALAR_GLOBALS: AllowedGlobals = {
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _np_multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _np_multiarray.scalar,
    **_BYTES_GLOBALS,
}

# Globals of a pickled numpy array (protocols 2 to 5), written by numpy 1.x or 2.x.
NUMPY_ARRAY_GLOBALS: AllowedGlobals = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _np_numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_numeric._frombuffer,
    **_BYTES_GLOBALS,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals of ``allowed``; any other (e.g. `os.system`) is refused."""

    def __init__(self, file: BinaryIO, allowed: AllowedGlobals, description: str) -> None:
        super().__init__(file, encoding="latin1")
        self.allowed = allowed
        self.description = description

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(
                f"refusing to load `{module}.{name}`: only {self.description} may be loaded from this file"
            )
        return self.allowed[(module, name)]


def restricted_pickle_load(path: str | os.PathLike, allowed: AllowedGlobals, description: str) -> object:
    """The object pickled in ``path``, rebuilt with no global outside ``allowed``.

    Args:
        path: the pickle file.
        allowed: ``(module, name) -> object`` of the globals the file may reference.
        description: what ``allowed`` permits, for the error (e.g. ``"numpy arrays"``).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        pickle.UnpicklingError: naming ``path``, on a refused global or a truncated / malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    with path.open("rb") as handle:
        try:
            return _RestrictedUnpickler(handle, allowed, description).load()
        except (pickle.UnpicklingError, EOFError) as error:
            raise pickle.UnpicklingError(f"{path}: {error or 'truncated pickle'}") from None
        except (
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            MemoryError,
            RecursionError,
        ) as error:
            # e.g. an EXT opcode naming an unregistered extension code, or a malformed opcode stream
            raise pickle.UnpicklingError(
                f"{path}: not a loadable pickle ({type(error).__name__}: {error})"
            ) from None
