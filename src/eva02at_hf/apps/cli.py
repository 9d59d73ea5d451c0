"""The `eva02at` command line: convert checkpoints, extract features, search them, evaluate, publish.

    eva02at convert  --checkpoint timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k --output_dir eva02at-b
    eva02at extract  --model eva02at-b --videos clips/ --texts captions.txt --output_dir features/
    eva02at search   --features features/ --query "open the fridge" --top_k 5 --show top.png
    eva02at demo     --features features/
    eva02at eval     ek100_mir --model eva02at-b --data_dir annotations/ --video_root videos/
    eva02at publish  --model_dir eva02at-b --repo_id me/eva02at-b --results model_cards/eva02at-b.json

Exit codes (stable, for scripts): 0 success; 1 runtime failure; 2 usage error (bad arguments, missing input
files, an output folder holding features made with other settings); 3 partial success (finished, but some
inputs could not be decoded: see the listed failures); 130 interrupted (Ctrl-C; `extract` resumes on rerun).
Also runnable as ``python -m eva02at_hf``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 success, 1 runtime failure, 2 usage error (bad arguments / missing inputs), "
    "3 partial success (some inputs failed), 130 interrupted"
)


class UsageError(Exception):
    """Bad arguments or missing input files: reported on stderr with exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose multi-word flags are spelled with underscores (``--top_k``), as the example
    scripts' flags are; the hyphen spelling (``--top-k``) is a hidden alias, mapped to it before parsing. Its
    ``--help`` (and every subcommand's) shows each flag's default, as the scripts' does (`HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ..training.loop import HelpFormatter

        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.default not in (None, argparse.SUPPRESS) and not action.required:
            action.help = (
                "(default: %(default)s)"  # argparse prints no help line at all for a flag without help
            )
        return action

    def parse_known_args(
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = sys.argv[1:] if args is None else args
        return super().parse_known_args([self.canonical_flag(arg) for arg in args], namespace)

    def canonical_flag(self, arg: str) -> str:
        """``arg`` with a hyphenated flag of this parser (``--top-k``, ``--top-k=3``) in its underscore spelling."""
        if not arg.startswith("--") or "-" not in arg[2:].partition("=")[0]:
            return arg
        flag, equals, value = arg.partition("=")
        spelled = "--" + flag[2:].replace("-", "_")
        known = {option for action in self._actions for option in action.option_strings}
        return spelled + equals + value if spelled in known and flag not in known else arg


def _existing_file(path: str | None, flag: str) -> Path:
    if path is None or not Path(path).is_file():
        raise UsageError(f"{flag}: file not found: {path}")
    return Path(path)


def _existing_dir(path: str | None, flag: str) -> Path:
    if path is None or not Path(path).is_dir():
        raise UsageError(f"{flag}: folder not found: {path}")
    return Path(path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _write_json(path: str | None, payload: Any) -> None:
    """Write ``payload`` as strict JSON: NaN (e.g. an accuracy over no question) becomes null."""
    if path is None:
        return
    from ..utils.reliability import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_nan_to_null(payload), indent=2, allow_nan=False))


def _nan_to_null(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {key: _nan_to_null(value) for key, value in payload.items()}
    if isinstance(payload, list | tuple):
        return [_nan_to_null(value) for value in payload]
    return _nan_to_none(payload) if isinstance(payload, float) else payload


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device}: no CUDA device is available (torch.cuda.is_available() is False)"
        )


def _load_model(model: str, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """(model on ``device`` in ``dtype``, processor) from a saved / converted folder."""
    import torch

    from ..training.models import load_model_and_processor
    from ..utils.reliability import CheckpointLoadError

    if not Path(model).is_dir():
        from ..configuration_eva02at import PRESETS

        hint = (
            f" ({model!r} is a preset name, not weights: `eva02at convert` an EVA02-CLIP checkpoint into a folder)"
            if model in PRESETS
            else ""
        )
        raise UsageError(f"--model: folder not found: {model}{hint}")
    _check_device(device)
    try:
        network, processor = load_model_and_processor(model)
    except CheckpointLoadError as err:
        raise UsageError(f"--model: {err}") from None
    return network.to(device=device, dtype=getattr(torch, dtype)).eval(), processor


# --------------------------------------------------------------------------------------------------- convert


def preset_for(config: Any) -> str:
    """The processor preset of a converted model: L for a 1024-wide vision tower, else B."""
    vision_config = getattr(config, "vision_config", config)
    return "eva02at-l" if vision_config.hidden_size >= 1024 else "eva02at-b"


def run_convert(args: argparse.Namespace) -> int:
    from ..processing_eva02at import EVA02ATProcessor
    from ..utils.reliability import atomic_export
    from .conversion import (
        convert_checkpoint,
        load_checkpoint,
        read_architecture_hints,
        resolve_checkpoint,
    )

    if args.results and not args.push_to_hub:
        raise UsageError("--results is only used with --push_to_hub (it fills the model card)")
    try:
        checkpoint = resolve_checkpoint(
            args.checkpoint, args.filename, args.revision, args.token, args.cache_dir
        )
    except FileNotFoundError as error:
        raise UsageError(f"--checkpoint: {error}") from None
    temporal = ("use_temporal_embedding", "temporal_rope", "temporal_position_encoding")
    vision_overrides = {name: getattr(args, name) for name in temporal if getattr(args, name) is not None}
    overrides = {"vision_config": vision_overrides} if vision_overrides else {}
    try:
        model = convert_checkpoint(
            load_checkpoint(checkpoint),
            num_frames=args.num_frames,
            projection_dim=args.projection_dim,
            format=args.format,
            num_heads=args.num_heads,
            text_num_heads=args.text_num_heads,
            hints=read_architecture_hints(checkpoint),
            **overrides,
        )
    except ValueError as error:  # ConversionError, or an option the converted tower does not have
        raise UsageError(f"--checkpoint {args.checkpoint}: {error}") from None
    saved = [type(model).__name__]
    vision_config = getattr(model.config, "vision_config", model.config)
    with atomic_export(args.output_dir) as staging:  # an interrupted save leaves no truncated file
        model.save_pretrained(staging)
        if args.processor:
            size = vision_config.image_size
            EVA02ATProcessor.from_preset(
                preset_for(model.config),
                num_frames=vision_config.num_frames,
                size={"shortest_edge": size},
                crop_size={"height": size, "width": size},
            ).save_pretrained(staging)
            saved.append("processor")
    print(f"saved {' + '.join(saved)} to {args.output_dir}")
    if args.push_to_hub:
        _publish(
            model_dir=args.output_dir,
            repo_id=args.push_to_hub,
            results_path=args.results,
            private=args.private,
            token=args.token,
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------------------- extract


WORLD_SIZE_VARIABLES = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]


def _join_launched_processes(device: str, timeout_minutes: int) -> tuple[str, bool]:
    """Under ``torchrun`` / ``accelerate launch`` / ``mpirun`` with several processes, join their group.

    The ranks only coordinate (barriers, small messages), so the group uses gloo over TCP whatever the device;
    the model goes to this process's own GPU (``cuda`` -> ``cuda:<local rank>``). Returns (device, is main).
    """
    from accelerate.utils import get_int_from_env

    if get_int_from_env(WORLD_SIZE_VARIABLES, 1) <= 1:
        return device, True
    from datetime import timedelta

    from accelerate import PartialState

    state = PartialState(cpu=True, timeout=timedelta(minutes=timeout_minutes))
    if device == "cuda":
        device = f"cuda:{state.local_process_index}"
    return device, state.is_main_process


def run_extract(args: argparse.Namespace) -> int:
    from ..utils.reliability import NonFiniteError
    from .features import FeatureExtractor, FingerprintMismatchError, read_text_list, read_video_list

    if args.videos is None and args.texts is None:
        raise UsageError("give --videos (a folder or a CSV list) and/or --texts (a file, one text per line)")
    if args.videos is not None and not Path(args.videos).exists():
        raise UsageError(f"--videos: not found: {args.videos}")
    try:
        videos = read_video_list(args.videos) if args.videos else []
        texts = read_text_list(_existing_file(args.texts, "--texts")) if args.texts else []
    except ValueError as err:
        raise UsageError(str(err)) from None
    device, is_main = _join_launched_processes(args.device, args.dist_timeout)
    model, processor = _load_model(args.model, device, args.dtype)
    extractor = FeatureExtractor(
        model,
        processor,
        num_frames=args.num_frames or model.config.vision_config.num_frames,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        num_workers=args.num_workers,
        progress=not args.no_progress,
    )
    try:
        result = extractor.run(
            args.output_dir, videos, texts, model_name=os.path.abspath(args.model), overwrite=args.overwrite
        )
    except NonFiniteError:
        raise
    except (FingerprintMismatchError, ValueError) as err:  # settings changed; a corrupt manifest or shard
        raise UsageError(str(err)) from None
    if not is_main:  # rank 0 reports for the whole run
        return EXIT_PARTIAL if result.failed else EXIT_OK
    computed = sum(len(v) for v in result.computed_shards.values())
    reused = sum(len(v) for v in result.reused_shards.values())
    print(
        f"embedded {len(videos) - len(result.failed)}/{len(videos)} videos and {len(texts)} texts into "
        f"{args.output_dir} ({computed} shards computed, {reused} reused from an earlier run)"
    )
    if result.failed:
        print(f"{len(result.failed)} videos could not be decoded (listed in failed.json):", file=sys.stderr)
        for failure in result.failed[:20]:
            print(f"  {failure['id']}: {failure['error']}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- search


def _query_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.query or [])
    if any(not text.strip() for text in texts):
        raise UsageError("--query: an empty query ranks nothing; give a text to search for")
    if args.query_file:
        from .features import read_text_list

        texts += read_text_list(_existing_file(args.query_file, "--query_file"))
        if not texts:
            raise UsageError(f"--query_file: {args.query_file} holds no query (only blank lines)")
    return texts


def _check_same_weights(model: Any, model_path: str, manifest: dict[str, Any], features_dir: Path) -> None:
    """Refuse a query model whose weights differ from those the features were extracted with."""
    from .features import weights_digest

    expected = manifest["fingerprint"].get("weights")
    if expected is not None and weights_digest(model) != expected:
        raise UsageError(
            f"--model: {model_path} is not the model {features_dir} was extracted with "
            f"({manifest.get('model_name')}, weights fingerprint {expected}); its queries would be ranked against "
            "another embedding space. Search with that model, or extract again with this one"
        )


def run_search(args: argparse.Namespace) -> int:
    import torch

    from ..training.embedding import embed_texts
    from ..utils.reliability import check_finite
    from .features import FingerprintMismatchError, VideoItem, load_features, read_manifest
    from .search import faiss_available, search

    features_dir = _existing_dir(args.features, "--features")
    try:
        manifest = read_manifest(features_dir)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"--features: {err}") from None
    texts = _query_texts(args)
    if bool(texts) == bool(args.query_video):
        raise UsageError("give text queries (--query / --query_file) or --query_video, not both or neither")
    if args.index == "faiss" and not faiss_available():
        raise UsageError("--index faiss needs FAISS: pip install faiss-cpu (or eva02at-hf[search])")
    if args.show and not texts:
        raise UsageError("--show renders video hits: use it with text queries (--query / --query_file)")

    def features(kind: str) -> Any:
        try:
            return load_features(features_dir, kind)
        except (FileNotFoundError, ValueError, FingerprintMismatchError) as err:  # incomplete / corrupt files
            raise UsageError(f"--features: {err}") from None

    corpus = features("video" if texts else "text")
    model_path = args.model or manifest.get("model_name")
    loaded: list[Any] = []

    def model_and_processor() -> tuple[Any, Any]:
        if not loaded:
            if not model_path:
                raise UsageError("embedding the queries needs a model: pass --model")
            loaded.extend(_load_model(model_path, dtype=manifest.get("model_dtype", "float32")))
        return loaded[0], loaded[1]

    if texts:
        kind = "video"
        queries = embed_texts(*model_and_processor(), texts)
        labels = texts
    else:
        kind = "text"
        videos = features("video") if (features_dir / "videos.parquet").is_file() else None
        rows, labels = [], []
        for query in args.query_video:
            if videos is not None and query in videos.ids:
                rows.append(videos.embeddings[videos.ids.index(query)])
            elif Path(query).is_file():
                from .features import FeatureExtractor

                model, processor = model_and_processor()
                extractor = FeatureExtractor(
                    model, processor, model.config.vision_config.num_frames, progress=False
                )
                embedding, _, failures = extractor.embed_videos([VideoItem(query, query)], [0])
                if failures:
                    raise UsageError(f"--query_video: {failures[0]['error']}")
                rows.append(embedding[0])
            else:
                raise UsageError(
                    f"--query_video: {query!r} is neither an extracted video id nor a video file"
                )
            labels.append(query)
        queries = torch.stack(rows)
    check_finite(queries, f"--model {model_path}: the query embeddings")
    if len(corpus.table) == 0:
        raise UsageError(f"--features: {features_dir} holds no {kind} embeddings to search")
    if queries.shape[-1] != corpus.embeddings.shape[-1]:
        raise UsageError(
            f"--model: {model_path} embeds queries in {queries.shape[-1]} dimensions but {features_dir} holds "
            f"{corpus.embeddings.shape[-1]}-dimensional features (extracted with {manifest.get('model_name')}); "
            "search with the model the features were extracted with"
        )
    if loaded:
        _check_same_weights(loaded[0], model_path, manifest, features_dir)
    scores, indices = search(queries, corpus.embeddings, args.top_k, backend=args.index)
    report = []
    for label, row_scores, row_indices in zip(labels, scores.tolist(), indices.tolist(), strict=True):
        hits = []
        for score, index in zip(row_scores, row_indices, strict=True):
            record = corpus.table.iloc[index]
            hit = {"score": score, "id": record["id"]}
            if kind == "video":
                hit |= {
                    "path": record["path"],
                    "start": _nan_to_none(record["start"]),
                    "end": _nan_to_none(record["end"]),
                }
            else:
                hit["text"] = record["text"]
            hits.append(hit)
        report.append({"query": label, "hits": hits})
    _print_report(report, kind)
    _write_json(args.output, report)
    if args.show:
        _show(report, args.show, args.show_frames)
    return EXIT_OK


def _nan_to_none(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _print_report(report: list[dict[str, Any]], kind: str) -> None:
    for entry in report:
        print(f"query: {entry['query']}")
        for rank, hit in enumerate(entry["hits"], start=1):
            where = hit["text"] if kind == "text" else hit["id"]
            window = ""
            if kind == "video" and (hit["start"] is not None or hit["end"] is not None):
                window = f"  [{hit['start']}, {hit['end']}] s"
            print(f"  {rank:3d}. {hit['score']:.4f}  {where}{window}")


def _show(report: list[dict[str, Any]], path: str, num_frames: int) -> None:
    from .contact_sheet import Hit, SheetLayout, render_contact_sheet

    sections = [
        (
            entry["query"],
            [Hit(h["path"], h["start"], h["end"], h["score"], h["id"]) for h in entry["hits"]],
        )
        for entry in report
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    render_contact_sheet(sections, SheetLayout(num_frames=num_frames)).save(path)
    print(f"contact sheet written to {path}")


# ------------------------------------------------------------------------------------------------------ demo


def run_demo(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine unless asked
    try:
        from .demo import build_demo, launch
    except ImportError as err:
        raise UsageError(f"the demo needs Gradio: pip install gradio (or eva02at-hf[demo]) ({err})") from None

    _check_device(args.device)
    page = build_demo(args.features, model=args.model, device=args.device, top_k=args.top_k)
    _, url = launch(page, host=args.host, port=args.port, block=False)
    print(f"EVA02-AT demo on {url} (Ctrl-C to stop)", flush=True)
    try:
        page.block_thread()
    finally:
        page.close()
    return EXIT_OK


# ------------------------------------------------------------------------------------------------------ eval


def run_eval(args: argparse.Namespace) -> int:
    from accelerate import Accelerator

    from ..data import AnnotationFileError, BadRowError
    from ..training.benchmarks import DEFAULT_CACHE_DIR, get_benchmark

    benchmark = get_benchmark(args.benchmark)  # argparse has checked the name against the registry
    try:
        split = benchmark.check_split(args.split)
    except ValueError as err:
        raise UsageError(str(err)) from None
    data_dir = _existing_dir(args.data_dir, "--data_dir")
    video_root = _existing_dir(args.video_root, "--video_root")
    model, processor = _load_model(args.model, args.device)
    num_frames = args.num_frames or model.config.vision_config.num_frames
    accelerator = Accelerator(cpu=args.device == "cpu")
    try:
        data = benchmark.load(
            data_dir, video_root, split, args.cache_dir or DEFAULT_CACHE_DIR, chunk_len=args.chunk_len
        )
        metrics = benchmark.evaluate(
            model, processor, data, accelerator, num_frames, args.batch_size, args.num_workers
        )
    except (FileNotFoundError, BadRowError, AnnotationFileError) as err:
        raise UsageError(str(err)) from None
    extra = {"num_skipped": metrics.pop("num_skipped"), **data.info}
    result = {
        "model_name": Path(args.model).name,
        "source": {"name": f"eva02at eval on {data_dir}", "url": None, "reproduced": True},
        "results": [
            {"benchmark": args.benchmark, "setting": "zero-shot", "split": split, "metrics": metrics, **extra}
        ],
    }
    print(f"{args.benchmark} ({split}, {num_frames} frames):")
    for key, value in metrics.items():
        print(f"  {key:>22s}: {value:.2f}")
    for key, value in extra.items():
        print(f"  {key:>22s}: {value}")
    _write_json(args.output, result)
    return EXIT_PARTIAL if extra.get("num_skipped") else EXIT_OK


# --------------------------------------------------------------------------------------------------- publish


def _publish(
    *,
    model_dir: str,
    repo_id: str,
    results_path: str | None = None,
    template: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    staging_dir: str | None = None,
) -> None:
    """Render the card of ``model_dir`` (results JSON at ``results_path``) and upload, or with ``dry_run`` stage
    and list the files (kept in ``staging_dir`` when given)."""
    from ..configuration_eva02at import EVA02ATConfig
    from .hub import load_results, publish, render_model_card, stage_for_hub

    model_path = _existing_dir(model_dir, "--model_dir")
    try:
        results = load_results(_existing_file(results_path, "--results")) if results_path else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    if template is not None:
        _existing_file(template, "--template")
    config = EVA02ATConfig.from_pretrained(model_path)
    card = render_model_card(config, results, repo_id, template)
    with tempfile.TemporaryDirectory() as tmp:
        staging = staging_dir or tmp
        if dry_run:
            files = stage_for_hub(model_path, staging, card)
            print(f"dry run: would upload to {repo_id}:")
            for name in files:
                print(f"  {name}")
            return
        commit = publish(model_path, repo_id, card, staging, private=private, revision=revision, token=token)
        print(f"uploaded to {getattr(commit, 'commit_url', repo_id)}")


def run_publish(args: argparse.Namespace) -> int:
    if args.staging_dir and not args.dry_run:
        raise UsageError("--staging_dir is only used with --dry_run")
    _publish(
        model_dir=args.model_dir,
        repo_id=args.repo_id,
        results_path=args.results,
        template=args.template,
        private=args.private,
        revision=args.revision,
        token=args.token,
        dry_run=args.dry_run,
        staging_dir=args.staging_dir,
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- parser


def _add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", help="results JSON for the model card (e.g. model_cards/eva02at-b.json)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")


def _add_switch(
    parser: argparse.ArgumentParser, name: str, dest: str, default: bool | None, help: str
) -> None:
    """``--<name>`` / ``--no_<name>`` (`argparse.BooleanOptionalAction` would spell the second ``--no-<name>``)."""
    parser.add_argument(
        f"--{name}",
        dest=dest,
        action="store_const",
        const=True,
        default=default,
        help=f"{help} (default: yes)",
    )
    parser.add_argument(
        f"--no_{name}",
        dest=dest,
        action="store_const",
        const=False,
        default=argparse.SUPPRESS,
        help=f"not --{name}",
    )


def build_parser() -> argparse.ArgumentParser:
    from ..configuration_eva02at import LEGACY_TEMPORAL_POSITION_ENCODINGS, TEMPORAL_ROPES
    from ..training.benchmarks import BENCHMARKS
    from .conversion import FORMATS

    parser = ArgumentParser(
        prog="eva02at",
        description="EVA02-AT egocentric video-language model: convert, extract, search, demo, eval, publish.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of runtime failures")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser(
        "convert",
        help="convert an EVA02-CLIP / AVION / CLIP checkpoint (file or Hub id) into an EVA02-AT folder",
        description=(
            "Convert a checkpoint into an EVA02-AT model folder (AutoModel-loadable). Formats (detected from the "
            "keys; --format forces one): " + "; ".join(f"{name}: {text}" for name, text in FORMATS.items())
        ),
        epilog=EXIT_CODES_HELP,
    )
    convert.add_argument(
        "--checkpoint",
        required=True,
        help=".safetensors / .bin / .pt / .pth state dict, a folder holding one, or a Hub model id",
    )
    convert.add_argument("--output_dir", required=True, help="folder to write the model (and processor) to")
    convert.add_argument("--format", choices=sorted(FORMATS), help="checkpoint layout (default: detected)")
    convert.add_argument(
        "--num_frames",
        type=_positive_int,
        help="frames P_t is sized for (default: the checkpoint's P_t, else 16)",
    )
    convert.add_argument(
        "--num_heads", type=_positive_int, help="vision attention heads, for widths of no released model"
    )
    convert.add_argument(
        "--text_num_heads", type=_positive_int, help="text attention heads, for widths of no released model"
    )
    convert.add_argument("--filename", help="Hub id: the weights file in the repository (default: detected)")
    convert.add_argument("--revision", help="Hub id: branch, tag or commit")
    convert.add_argument("--cache_dir", help="Hub id: the huggingface_hub cache (default: HF_HUB_CACHE)")
    convert.add_argument(
        "--projection_dim",
        type=_positive_int,
        help="new random projections of this size (default: keep CLIP's)",
    )
    _add_switch(
        convert,
        "temporal_embedding",
        "use_temporal_embedding",
        None,
        "hold the learnable temporal embedding P_t",
    )
    convert.add_argument("--temporal_rope", choices=TEMPORAL_ROPES, help="temporal RoPE (default: additive)")
    convert.add_argument(
        "--temporal_position_encoding",
        choices=list(LEGACY_TEMPORAL_POSITION_ENCODINGS),
        help="the older single flag for both: learnable+rope, learnable, rope or split_3d_rope",
    )
    _add_switch(convert, "processor", "processor", True, "also save the default processor for the model size")
    convert.add_argument("--push_to_hub", metavar="REPO_ID", help="then publish model + processor + card")
    _add_hub_arguments(convert)
    convert.set_defaults(func=run_convert)

    extract = commands.add_parser(
        "extract",
        help="embed videos and texts into resumable safetensors shards",
        description=(
            "Embed a folder or CSV list of videos (columns path[,start,end][,id]) and/or a text file (one text per "
            "line) into safetensors shards with parquet indexes. Rerunning the same command resumes after an "
            "interruption; undecodable videos are listed in failed.json (exit code 3)."
        ),
        epilog=EXIT_CODES_HELP,
    )
    extract.add_argument("--model", required=True, help="a saved / converted EVA02-AT folder")
    extract.add_argument("--videos", help="folder of videos, or CSV with columns path[,start,end][,id]")
    extract.add_argument("--texts", help="text file, one text per line")
    extract.add_argument("--output_dir", required=True, help="where shards, indexes and manifest go")
    extract.add_argument("--num_frames", type=_positive_int, help="frames per clip (default: the model's)")
    extract.add_argument("--batch_size", type=_positive_int, default=16)
    extract.add_argument("--shard_size", type=_positive_int, default=1024, help="inputs per shard file")
    extract.add_argument("--num_workers", type=int, default=0, help="video decoding worker processes")
    extract.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    extract.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    extract.add_argument("--overwrite", action="store_true", help="recompute if settings changed")
    extract.add_argument("--no_progress", action="store_true", help="hide the progress bars")
    extract.add_argument(
        "--dist_timeout",
        type=_positive_int,
        default=360,
        help="minutes a process launched with others waits for the slowest one",
    )
    extract.set_defaults(func=run_extract)

    search = commands.add_parser(
        "search",
        help="text-to-video / video-to-text search over extracted features",
        description=(
            "Search extracted features: text queries (--query / --query_file) rank the videos, --query_video "
            "(an extracted video id or a video file) ranks the texts."
        ),
        epilog=EXIT_CODES_HELP,
    )
    search.add_argument("--features", required=True, help="an `eva02at extract` output folder")
    search.add_argument("--query", action="append", help="a text query (repeatable)")
    search.add_argument("--query_file", help="text queries, one per line")
    search.add_argument(
        "--query_video", action="append", help="an extracted video id or a video file (repeatable)"
    )
    search.add_argument("--top_k", type=_positive_int, default=5)
    search.add_argument(
        "--index", choices=("exact", "faiss"), default="exact", help="exact torch top-k or FAISS"
    )
    search.add_argument("--model", help="model to embed the queries (default: the one used by extract)")
    search.add_argument("--show", metavar="PNG", help="render the video hits as a contact sheet")
    search.add_argument("--show_frames", type=_positive_int, default=6, help="frames per row of the sheet")
    search.add_argument("--output", help="write the hits as JSON")
    search.set_defaults(func=run_search)

    demo = commands.add_parser(
        "demo",
        help="browser demo (Gradio) over extracted features: text -> video and video -> text search",
        description=(
            "Serve a Gradio page searching an `eva02at extract` folder: a text box ranks the clips (with scores, "
            "clip players and frame strips), an extracted clip or an uploaded video ranks the texts. Queries are "
            "embedded with the model recorded by extract (or --model). Binds 127.0.0.1 on a free port by default."
        ),
        epilog=EXIT_CODES_HELP,
    )
    demo.add_argument("--features", required=True, help="an `eva02at extract` output folder")
    demo.add_argument("--model", help="model to embed the queries (default: the one used by extract)")
    demo.add_argument("--top_k", type=_positive_int, default=5)
    demo.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"
    )
    demo.add_argument("--port", type=_positive_int, help="port (default: a free one)")
    demo.add_argument("--device", default="cpu", help="torch device of the query model")
    demo.set_defaults(func=run_demo)

    evaluate = commands.add_parser(
        "eval",
        help="zero-shot evaluation on " + ", ".join(b.hub.dataset_name for b in BENCHMARKS.values()),
        description=(
            "Zero-shot evaluation; prints the metrics (percent) and writes them as a results JSON. Benchmarks "
            "(eva02at_hf.training.benchmarks): "
            + "; ".join(f"{name} ({b.description})" for name, b in BENCHMARKS.items())
        ),
        epilog=EXIT_CODES_HELP,
    )
    evaluate.add_argument("benchmark", choices=tuple(BENCHMARKS))
    evaluate.add_argument("--model", required=True, help="a saved / converted EVA02-AT folder")
    evaluate.add_argument("--data_dir", required=True, help="folder of the benchmark's annotation files")
    evaluate.add_argument("--video_root", required=True, help="folder of the videos")
    evaluate.add_argument(
        "--split",
        choices=sorted({split for b in BENCHMARKS.values() for split in b.splits}),
        help="split to evaluate (default: "
        + ", ".join(f"{name} {b.split}" for name, b in BENCHMARKS.items())
        + ")",
    )
    evaluate.add_argument("--chunk_len", type=float, help="seconds per chunk of a pre-chunked video layout")
    evaluate.add_argument("--num_frames", type=_positive_int, help="frames per clip (default: the model's)")
    evaluate.add_argument(
        "--batch_size", type=_positive_int, default=16, help="clips per batch (EgoMCQ: 5 per question)"
    )
    evaluate.add_argument("--num_workers", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument(
        "--cache_dir", help="datasets / relevancy cache (default: a folder in the temp dir)"
    )
    evaluate.add_argument("--output", help="write the results JSON here (usable by `publish --results`)")
    evaluate.set_defaults(func=run_eval)

    publish = commands.add_parser(
        "publish",
        help="push model + processor + model card to the Hub in one commit",
        description=(
            "Upload a model folder to the Hub with its processor, remote code (auto_map, for trust_remote_code) "
            "and a model card rendered from model_cards/template.md and a results JSON."
        ),
        epilog=EXIT_CODES_HELP,
    )
    publish.add_argument(
        "--model_dir", required=True, help="a saved / converted EVA02-AT folder with processor"
    )
    publish.add_argument("--repo_id", required=True, help="Hub repository, e.g. me/eva02at-b")
    publish.add_argument("--template", help="Jinja model-card template (default: model_cards/template.md)")
    publish.add_argument("--revision", help="branch to commit to")
    publish.add_argument("--dry_run", action="store_true", help="stage and list the files, upload nothing")
    publish.add_argument("--staging_dir", help="with --dry_run: keep the staged files here")
    _add_hub_arguments(publish)
    publish.set_defaults(func=run_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code not in (0, None) else EXIT_OK
    try:
        return args.func(args)
    except UsageError as err:
        print(f"eva02at {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        hint = " (rerun the same command to resume)" if args.command == "extract" else ""
        print(f"eva02at {args.command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.debug:
            raise
        print(f"eva02at {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
