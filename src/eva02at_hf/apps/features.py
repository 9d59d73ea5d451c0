"""Batched, resumable feature extraction: videos (with optional windows) and texts -> safetensors shards.

Layout of an output folder ``DIR``::

    DIR/manifest.json                 settings fingerprint + the shards already written (rewritten atomically)
    DIR/video-00000.safetensors       ``embeddings`` (n, D) float32 and ``indices`` (n,) int64: input rows
    DIR/text-00000.safetensors        same for the texts
    DIR/videos.parquet                one row per input video: id, path, start, end, status, shard, row, error
    DIR/texts.parquet                 one row per text: id, text, shard, row
    DIR/failed.json                   the videos that could not be decoded (id, path, window, error)

Each shard is written to a temporary file and renamed into place, then recorded in the manifest, so an
interrupted run leaves only complete shards behind; a rerun skips them (and recomputes a shard that no longer
reads back). A rerun whose settings (model weights, processor, frame count, inputs, shard size) differ from the
manifest's is refused with `FingerprintMismatchError`; with ``overwrite`` the old shards, indexes and
``failed.json`` are removed first. The indexes carry the fingerprint of the run that wrote them and
`load_features` refuses indexes that do not belong to the manifest's run. Non-finite embeddings (a broken model,
a corrupted shard) are refused when written and when read (`NonFiniteError`). Videos that cannot be decoded are
listed (``status = "failed"``) and never stop the run.

Several processes (``torchrun`` / ``accelerate launch``: `torch.distributed` initialised) split the work: the
shards still to compute are dealt round-robin to the ranks, rank 0 records its shards in ``manifest.json`` and
rank r > 0 in ``DIR/manifest.rank-0000r.json``; at the end rank 0 merges those records into ``manifest.json``
and writes the indexes. Shard numbers and contents do not depend on the number of processes, so the folder is
the one a single process makes. A rerun merges the records of ranks that died and computes only the shards no
record lists, with any number of processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.collate import ClipBatcher
from ..training.embedding import embed_texts, embed_videos
from ..utils.reliability import NonFiniteError, atomic_write_text, count_nonfinite, incomplete_sibling

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
MANIFEST = "manifest.json"
FAILED = "failed.json"
INDEX_FILES = {"video": "videos.parquet", "text": "texts.parquet"}
MANIFEST_VERSION = 1
FINGERPRINT_KEY = (
    b"eva02at_fingerprint"  # parquet schema metadata of the indexes: the writing run's fingerprint
)
RANK_RECORD_GLOB = "manifest.rank-*.json"


class FingerprintMismatchError(RuntimeError):
    """An output folder holds shards made with other settings; names the settings that differ."""


@dataclass(frozen=True)
class VideoItem:
    """One clip to embed: ``path`` and the window ``[start, end]`` in seconds (``None`` = file start / end)."""

    id: str
    path: str
    start: float | None = None
    end: float | None = None


@dataclass
class ExtractionResult:
    """What `extract_features` did: shards computed in this run vs. reused from an earlier one, and failures."""

    output_dir: str
    computed_shards: dict[str, list[int]] = field(default_factory=lambda: {"video": [], "text": []})
    reused_shards: dict[str, list[int]] = field(default_factory=lambda: {"video": [], "text": []})
    failed: list[dict[str, Any]] = field(default_factory=list)
    num_videos: int = 0
    num_texts: int = 0


def _optional_float(value: str | None, name: str, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: column {name!r} must be a number of seconds, got {value!r}") from None


def read_video_list(source: str | os.PathLike) -> list[VideoItem]:
    """Videos to embed from a folder (every video file below it, sorted, whole files) or a CSV file.

    The CSV has a ``path`` column and optional ``start``, ``end`` (seconds) and ``id`` columns; relative paths
    are resolved against the CSV's folder. Ids default to the path (relative to the folder / as written). Paths
    are made absolute, so the stored index stays valid from any working directory.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        items = [VideoItem(id=p.relative_to(source).as_posix(), path=os.path.abspath(p)) for p in files]
    elif source.is_file():
        from ..data import AnnotationFileError
        from ..data._common import read_table

        items = []
        try:
            for line, row in enumerate(read_table(str(source), ("path",)), start=2):
                where = f"{source}:{line}"
                path = (row.get("path") or "").strip()
                if not path:
                    raise ValueError(f"{where}: empty 'path'")
                start = _optional_float(row.get("start"), "start", where)
                end = _optional_float(row.get("end"), "end", where)
                item_id = (row.get("id") or "").strip() or path
                items.append(VideoItem(item_id, os.path.abspath(source.parent / path), start, end))
        except AnnotationFileError as err:
            raise ValueError(f"--videos: {err}") from None
    else:
        raise FileNotFoundError(f"video source not found: {source} (expected a folder or a CSV file)")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(
            f"{source}: duplicate video ids {duplicates[:10]}; give each window its own value in an 'id' column"
        )
    return items


def read_text_list(path: str | os.PathLike) -> list[str]:
    """Texts to embed: one per non-empty line of a UTF-8 file (surrounding whitespace stripped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        from ..data._common import first_undecodable_line

        raise ValueError(
            f"{path}: line {first_undecodable_line(path)}: not UTF-8 text ({err.reason}); save it as UTF-8"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def weights_digest(model: torch.nn.Module) -> str:
    """BLAKE2b of every parameter and buffer (names, dtypes, shapes, bytes): identifies the weights exactly."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _digest(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode(), digest_size=16).hexdigest()


def settings_fingerprint(
    model: torch.nn.Module,
    processor: Any,
    videos: Sequence[VideoItem],
    texts: Sequence[str],
    num_frames: int,
    shard_size: int,
) -> dict[str, Any]:
    """Everything that determines the shards' contents; a resume must match it exactly."""
    return {
        "weights": weights_digest(model),
        "processor": _digest(processor.video_processor.to_dict()),
        "num_frames": num_frames,
        "shard_size": shard_size,
        "videos": _digest([asdict(item) for item in videos]),
        "texts": _digest(list(texts)),
    }


def _atomic_save_shard(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = incomplete_sibling(path)
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def read_shard(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a shard file; a truncated / corrupt file or non-finite embeddings raise an error naming it.

    Raises:
        ValueError: ``path`` is not a readable safetensors file (truncated, corrupt).
        NonFiniteError: its ``embeddings`` hold NaN / inf.
    """
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors' SafetensorError / OSError name neither the file nor the fix
        raise ValueError(
            f"{path}: truncated or corrupt shard ({type(error).__name__}: {error}); delete it and rerun "
            "`eva02at extract` with the same arguments to recompute it"
        ) from error
    _check_embeddings(tensors["embeddings"], tensors["indices"].tolist(), str(path))
    return tensors


def _check_embeddings(embeddings: torch.Tensor, rows: Sequence[int], where: str) -> None:
    """Raise `NonFiniteError` naming ``where`` and the input rows whose embeddings hold NaN / inf."""
    bad = [row for row, vector in zip(rows, embeddings, strict=True) if count_nonfinite(vector)]
    if bad:
        raise NonFiniteError(
            f"{where}: the embeddings of {len(bad)} input(s) (rows {bad[:10]}) hold NaN / inf values; the model's "
            "weights (or the shard) are broken: check them with `eva02at_hf.utils.reliability.load_pretrained_checked`"
        )


def _reusable(path: Path) -> bool:
    """Whether a finished shard reads back (a file damaged since is recomputed, with a warning)."""
    if not path.is_file():
        return False
    try:
        read_shard(path)
    except ValueError as error:
        logger.warning("recomputing %s: %s", path, error)
        return False
    return True


def shard_name(kind: str, index: int) -> str:
    return f"{kind}-{index:05d}.safetensors"


def rank_record_name(rank: int) -> str:
    """The file where rank ``rank`` > 0 records its finished shards until rank 0 merges them."""
    return f"manifest.rank-{rank:05d}.json"


@dataclass(frozen=True)
class _Ranks:
    """This process's place in the `torch.distributed` group (rank 0 of 1 when none is initialised)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> _Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a barrier too). An exception is raised on every rank."""
        if self.world_size > 1:
            box = [value]
            dist.broadcast_object_list(box, src=0)
            value = box[0]
        if isinstance(value, BaseException):
            raise value
        return value

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _fold_rank_records(out: Path, manifest: dict[str, Any]) -> None:
    """Move the shards recorded by ranks > 0 into ``manifest`` (in place), write it, delete the rank records.

    Records made with another fingerprint (a run with other settings) are dropped.
    """
    records = sorted(out.glob(RANK_RECORD_GLOB))
    for path in records:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("fingerprint") != manifest["fingerprint"]:
            logger.warning("%s was made with other settings: ignored", path)
            continue
        for kind, shards in record["shards"].items():
            manifest["shards"][kind].update(shards)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    for path in records:
        path.unlink()


class _VideoItemBatcher(ClipBatcher):
    """`ClipBatcher` over `VideoItem`s, read as file rows (``path``, ``start``, ``end``): batches keep their size
    (``valid``) and list each clip's decode error (``None`` when decoded) for ``failed.json``."""

    def __init__(self, processor: Any, num_frames: int) -> None:
        super().__init__(processor, num_frames, on_error="mask")

    def __call__(self, items: list[VideoItem]) -> dict[str, Any]:  # type: ignore[override]
        clips = self.pixels([asdict(item) for item in items])
        return {"pixel_values": clips.pixel_values, "valid": clips.valid, "errors": clips.errors}


def _failures(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The undecodable videos recorded in ``manifest``, in input order."""
    failed = [failure for entry in manifest["shards"]["video"].values() for failure in entry["failed"]]
    return sorted(failed, key=lambda failure: failure["row"])


def _chunks(num_items: int, shard_size: int) -> Iterator[tuple[int, range]]:
    for shard, first in enumerate(range(0, num_items, shard_size)):
        yield shard, range(first, min(first + shard_size, num_items))


class FeatureExtractor:
    """Embeds videos and texts with an `EVA02ATForVideoTextRetrieval` into a resumable shard folder.

    Args:
        model: the retrieval model (its device and dtype are used as they are).
        processor: an `EVA02ATProcessor`.
        num_frames: frames sampled per clip (uniformly, one per segment).
        batch_size: clips or texts per forward pass.
        shard_size: inputs per shard file (the unit of resumption).
        num_workers: `DataLoader` worker processes decoding videos.
        progress: show tqdm progress bars.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        num_frames: int = 16,
        batch_size: int = 32,
        shard_size: int = 1024,
        num_workers: int = 0,
        progress: bool = True,
    ) -> None:
        for name, value in (
            ("num_frames", num_frames),
            ("batch_size", batch_size),
            ("shard_size", shard_size),
        ):
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}")
        self.model = model.eval()
        self.processor = processor
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.num_workers = num_workers
        self.progress = progress

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def embed_videos(
        self, items: Sequence[VideoItem], rows: Sequence[int]
    ) -> tuple[torch.Tensor, list[int], list]:
        """Embed ``items`` -> (embeddings (n, D) float32 of the decodable ones, their ``rows``, failures)."""
        loader = DataLoader(
            list(items),
            batch_size=self.batch_size,
            collate_fn=_VideoItemBatcher(self.processor, self.num_frames),
            num_workers=self.num_workers,
        )
        embeddings, valid, errors = embed_videos(self.model, loader, progress=False)
        kept = [row for row, ok in zip(rows, valid.tolist(), strict=True) if ok]
        failures = [
            {**asdict(item), "row": row, "error": error}
            for row, item, error in zip(rows, items, errors, strict=True)
            if error is not None
        ]
        return embeddings[valid], kept, failures

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(n,) texts -> (n, D) float32 L2-normalised embeddings."""
        return embed_texts(self.model, self.processor, texts, batch_size=self.batch_size)

    def run(
        self,
        output_dir: str | os.PathLike,
        videos: Sequence[VideoItem] = (),
        texts: Sequence[str] = (),
        model_name: str | None = None,
        overwrite: bool = False,
    ) -> ExtractionResult:
        """Embed ``videos`` and ``texts`` into ``output_dir``, resuming from the shards already there.

        Under `torch.distributed` every rank calls this with the same arguments; each computes its share of the
        shards and all return once rank 0 has merged the folder (the result describes the whole run).

        Args:
            model_name: recorded in the manifest (e.g. the model folder) so `search` can embed queries.
            overwrite: discard an existing manifest with other settings instead of refusing to resume.

        Raises:
            FingerprintMismatchError: ``output_dir`` holds shards made with other settings.
        """
        out = Path(output_dir)
        ranks = _Ranks.current()
        fingerprint = settings_fingerprint(
            self.model, self.processor, videos, texts, self.num_frames, self.shard_size
        )
        prepared: dict[str, Any] | Exception | None = None
        if ranks.is_main:
            try:
                out.mkdir(parents=True, exist_ok=True)
                prepared = self._load_manifest(out, fingerprint, overwrite)
                prepared["model_name"] = model_name
                prepared["model_dtype"] = str(self.dtype).removeprefix("torch.")
                _fold_rank_records(out, prepared)
            except Exception as err:  # every rank raises it, none waits for a rank that stopped
                prepared = err
        manifest: dict[str, Any] = ranks.from_main(prepared)
        done_at_start = {
            kind: {
                int(shard)
                for shard in manifest["shards"][kind]
                if _reusable(out / shard_name(kind, int(shard)))
            }
            for kind in ("video", "text")
        }
        if ranks.is_main:
            record, record_path = manifest, out / MANIFEST
        else:
            record = {
                "version": MANIFEST_VERSION,
                "fingerprint": fingerprint,
                "shards": {"video": {}, "text": {}},
            }
            record_path = out / rank_record_name(ranks.rank)
        for kind, count in (("video", len(videos)), ("text", len(texts))):
            pending = [
                (shard, rows)
                for shard, rows in _chunks(count, self.shard_size)
                if shard not in done_at_start[kind]
            ]
            mine = pending[ranks.rank :: ranks.world_size]
            desc = f"{kind}s" if ranks.world_size == 1 else f"{kind}s (rank 0 of {ranks.world_size})"
            bar = tqdm(
                total=sum(len(rows) for _, rows in mine),
                desc=desc,
                unit=kind,
                disable=not (self.progress and ranks.is_main),
            )
            for shard, rows in mine:
                if kind == "video":
                    embeddings, kept, failures = self.embed_videos([videos[i] for i in rows], list(rows))
                else:
                    embeddings, kept, failures = self.embed_texts([texts[i] for i in rows]), list(rows), []
                _check_embeddings(embeddings, kept, f"{out / shard_name(kind, shard)} (not written)")
                tensors = {
                    "embeddings": embeddings.contiguous(),
                    "indices": torch.tensor(kept, dtype=torch.int64),
                }
                _atomic_save_shard(out / shard_name(kind, shard), tensors)
                record["shards"][kind][str(shard)] = {"rows": len(rows), "failed": failures}
                atomic_write_text(record_path, json.dumps(record, indent=1))
                bar.update(len(rows))
            bar.close()
        ranks.barrier()
        merged: dict[str, Any] | Exception | None = None
        if ranks.is_main:
            try:
                _fold_rank_records(out, manifest)
                self._check_complete(out, manifest, len(videos), len(texts))
                self._write_indexes(out, videos, texts, manifest, _failures(manifest))
                merged = manifest
            except Exception as err:
                merged = err
        manifest = ranks.from_main(merged)
        result = ExtractionResult(output_dir=str(out), num_videos=len(videos), num_texts=len(texts))
        for kind, count in (("video", len(videos)), ("text", len(texts))):
            for shard, _ in _chunks(count, self.shard_size):
                reused = shard in done_at_start[kind]
                (result.reused_shards if reused else result.computed_shards)[kind].append(shard)
        result.failed = _failures(manifest)
        return result

    def _check_complete(self, out: Path, manifest: dict[str, Any], num_videos: int, num_texts: int) -> None:
        """Every shard of the inputs is recorded and on disk (a rank on another node may write elsewhere)."""
        for kind, count in (("video", num_videos), ("text", num_texts)):
            missing = [
                shard_name(kind, shard)
                for shard, _ in _chunks(count, self.shard_size)
                if str(shard) not in manifest["shards"][kind] or not (out / shard_name(kind, shard)).is_file()
            ]
            if missing:
                raise RuntimeError(
                    f"{out}: {len(missing)} shard(s) missing after every rank finished ({', '.join(missing[:5])}); "
                    "with several nodes, --output_dir must be a folder every node shares. Rerun to compute them."
                )

    def _load_manifest(self, out: Path, fingerprint: dict[str, Any], overwrite: bool) -> dict[str, Any]:
        path = out / MANIFEST
        fresh = {"version": MANIFEST_VERSION, "fingerprint": fingerprint, "shards": {"video": {}, "text": {}}}
        if not path.is_file():
            return fresh
        manifest = read_manifest(out) if not overwrite else _read_json_or_none(path)
        if manifest is None:  # unreadable, and overwrite asked: start afresh
            manifest = {}
        if manifest.get("fingerprint") == fingerprint and manifest.get("version") == MANIFEST_VERSION:
            return manifest
        if not overwrite:
            old = manifest.get("fingerprint", {})
            differing = sorted(key for key in fingerprint if old.get(key) != fingerprint[key])
            raise FingerprintMismatchError(
                f"{out} holds features made with other settings (differing: {', '.join(differing)}); "
                "use a new output folder or pass overwrite (--overwrite) to recompute everything."
            )
        # Everything of the old run goes, indexes and failures included: none of it describes the new shards.
        for stale in [
            *out.glob("video-*.safetensors"),
            *out.glob("text-*.safetensors"),
            *out.glob(RANK_RECORD_GLOB),
            *(out / name for name in (*INDEX_FILES.values(), FAILED)),
        ]:
            stale.unlink(missing_ok=True)
        atomic_write_text(path, json.dumps(fresh, indent=1))
        return fresh

    def _write_indexes(
        self,
        out: Path,
        videos: Sequence[VideoItem],
        texts: Sequence[str],
        manifest: dict[str, Any],
        failed: list[dict],
    ) -> None:
        errors = {failure["row"]: failure["error"] for failure in failed}
        placement: dict[str, dict[int, tuple[int, int]]] = {"video": {}, "text": {}}
        for kind in placement:
            for shard in sorted(int(s) for s in manifest["shards"][kind]):
                indices = read_shard(out / shard_name(kind, shard))["indices"].tolist()
                placement[kind].update({row: (shard, position) for position, row in enumerate(indices)})
        video_table = pd.DataFrame(
            {
                "id": [item.id for item in videos],
                "path": [item.path for item in videos],
                "start": [item.start for item in videos],
                "end": [item.end for item in videos],
                "status": ["failed" if i in errors else "ok" for i in range(len(videos))],
                "shard": [placement["video"].get(i, (-1, -1))[0] for i in range(len(videos))],
                "row": [placement["video"].get(i, (-1, -1))[1] for i in range(len(videos))],
                "error": [errors.get(i) for i in range(len(videos))],
            }
        )
        text_table = pd.DataFrame(
            {
                "id": [f"text-{i}" for i in range(len(texts))],
                "text": list(texts),
                "shard": [placement["text"][i][0] for i in range(len(texts))],
                "row": [placement["text"][i][1] for i in range(len(texts))],
            }
        )
        stamp = {FINGERPRINT_KEY: json.dumps(manifest["fingerprint"], sort_keys=True).encode()}
        for kind, table in (("video", video_table), ("text", text_table)):
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **stamp})
            tmp = incomplete_sibling(out / INDEX_FILES[kind])
            pq.write_table(arrow, tmp)
            os.replace(tmp, out / INDEX_FILES[kind])
        atomic_write_text(out / FAILED, json.dumps(failed, indent=1))


@dataclass
class FeatureSet:
    """Embeddings of one kind read back from an extraction folder: ``embeddings`` (N, D) row-aligned with
    ``table`` (the index rows with ``status == "ok"``, in input order)."""

    embeddings: torch.Tensor
    table: pd.DataFrame

    @property
    def ids(self) -> list[str]:
        return self.table["id"].tolist()


def _read_json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def read_manifest(features_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of an extraction folder.

    Raises:
        FileNotFoundError: there is none.
        ValueError: naming the file, when it is not a manifest (corrupt, truncated, edited).
    """
    path = Path(features_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {features_dir}: not an `eva02at extract` output folder")
    manifest = _read_json_or_none(path)
    if manifest is None or not isinstance(manifest.get("fingerprint"), dict) or "shards" not in manifest:
        raise ValueError(
            f"{path} is corrupt (not an extraction manifest); rerun `eva02at extract` with --overwrite to rebuild "
            "the folder"
        )
    return manifest


def _read_index(path: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """An index table, refused unless it was written by the run the manifest describes."""
    try:
        arrow = pq.read_table(path)
    except Exception as error:
        raise ValueError(
            f"{path}: unreadable index ({type(error).__name__}: {error}); rerun extract"
        ) from error
    stamp = (arrow.schema.metadata or {}).get(FINGERPRINT_KEY)
    if stamp is None or json.loads(stamp) != manifest["fingerprint"]:
        raise FingerprintMismatchError(
            f"{path} was written by another extraction run than {path.parent / MANIFEST} describes (an "
            "interrupted --overwrite?); rerun the same `eva02at extract` command to finish it"
        )
    return arrow.to_pandas()


def load_features(features_dir: str | os.PathLike, kind: str) -> FeatureSet:
    """Read the ``kind`` (``"video"`` or ``"text"``) embeddings of a finished extraction, in input order."""
    if kind not in INDEX_FILES:
        raise ValueError(f"`kind` must be 'video' or 'text', got {kind!r}")
    folder = Path(features_dir)
    manifest = read_manifest(folder)
    index_path = folder / INDEX_FILES[kind]
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path} is missing: the extraction in {folder} did not finish; rerun it"
        )
    table = _read_index(index_path, manifest)
    if kind == "video":
        table = table[table["status"] == "ok"]
    shards = {
        int(s): read_shard(folder / shard_name(kind, int(s)))["embeddings"] for s in table["shard"].unique()
    }
    if table.empty:
        return FeatureSet(torch.empty(0, 0), table.reset_index(drop=True))
    embeddings = torch.stack([shards[s][r] for s, r in zip(table["shard"], table["row"], strict=True)])
    return FeatureSet(embeddings, table.reset_index(drop=True))


__all__ = [
    "ExtractionResult",
    "FeatureExtractor",
    "FeatureSet",
    "FingerprintMismatchError",
    "VideoItem",
    "load_features",
    "read_manifest",
    "read_shard",
    "read_text_list",
    "read_video_list",
    "settings_fingerprint",
    "weights_digest",
]
