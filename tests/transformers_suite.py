"""transformers' own common test mixins, fetched at test time from the sdist of the installed version.

`common_tests()` downloads `transformers==<installed>` as a source distribution (pip, no dependencies) into
`~/.cache/eva02at-hf/transformers-tests/<version>/` once, extracts its `tests/*.py`, and imports them as the package
`transformers_common_tests`, whose path also holds `tests/transformers_shims/` (the few helpers the sdist lacks).
Nothing of transformers' test code is kept in this repository. A failed download raises: the suites must not be
skipped silently.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import transformers

PACKAGE = "transformers_common_tests"
SHIMS = Path(__file__).parent / "transformers_shims"
SAFE_EXTRACT = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eva02at-hf" / "transformers-tests" / transformers.__version__


def fetch_tests() -> Path:
    """The folder holding the installed transformers' `tests/*.py`, downloaded and extracted if not cached."""
    target = cache_root() / "tests"
    if (target / "test_modeling_common.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        spec = f"transformers=={transformers.__version__}"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec]
        result = subprocess.run([*command, "-d", scratch], capture_output=True, text=True)
        archives = sorted(Path(scratch).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(
                f"Could not download the {spec} sdist that holds transformers' common test suites "
                f"({' '.join(command)}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        extracted = Path(scratch) / "tests"
        extracted.mkdir()
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "tests" and member.isfile() and parts[2].endswith(".py"):
                    member.name = parts[2]
                    archive.extract(member, extracted, **SAFE_EXTRACT)
        if not (extracted / "test_modeling_common.py").is_file():
            raise RuntimeError(f"{archives[0].name} has no tests/test_modeling_common.py")
        # `direct_transformers_import(tests/)` in the configuration mixin executes tests/__init__.py (empty
        # upstream, not in the sdist).
        (extracted / "__init__.py").touch()
        try:
            extracted.rename(target)
        except OSError:  # another process extracted it first
            shutil.rmtree(extracted, ignore_errors=True)
    return target


def common_tests(module: str) -> types.ModuleType:
    """Import `tests/<module>.py` of the installed transformers' sdist, e.g. `common_tests("test_modeling_common")`."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(fetch_tests()), str(SHIMS)]
        sys.modules[PACKAGE] = package
        if str(SHIMS / "ci_utils") not in sys.path:
            sys.path.append(str(SHIMS / "ci_utils"))
    return importlib.import_module(f"{PACKAGE}.{module}")
