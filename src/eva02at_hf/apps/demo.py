"""Browser demo over an `eva02at extract` folder (Gradio): text -> video and video -> text search.

    eva02at demo --features features/          # also: python -m eva02at_hf demo --features features/

Queries are embedded with the model recorded in the folder's manifest (or ``--model``) and ranked against the
stored embeddings (`eva02at_hf.apps.search`). Text hits show as a table of rank, id, score and a player of the clip
window, and as frame strips (`eva02at_hf.apps.contact_sheet`). A folder that cannot be searched (no manifest, no
embeddings, a missing model, features of another dimension) gives a page saying why and how to fix it.

The server binds 127.0.0.1 on a free port unless told otherwise; on a Hugging Face Space, ``app.py`` calls
``build_demo("features").launch()``.
"""

from __future__ import annotations

import html
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..utils.reliability import CheckpointLoadError
from .features import FeatureExtractor, FeatureSet, VideoItem, load_features, read_manifest, weights_digest
from .search import search

if TYPE_CHECKING:
    import gradio as gr
    from PIL import Image

MAX_TOP_K = 50  # slider range (a larger --top_k widens it)
logger = logging.getLogger(__name__)

EXTRACT_HINT = "eva02at extract --model MODEL_DIR --videos VIDEOS --texts TEXTS.txt --output_dir {dir}"


class DemoSetupError(RuntimeError):
    """The features folder cannot be searched; the message says why and what to run."""


@dataclass
class VideoHit:
    rank: int
    id: str
    score: float
    path: str
    start: float | None
    end: float | None


@dataclass
class TextHit:
    rank: int
    id: str
    score: float
    text: str


def _window(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


class FeatureSearch:
    """An extraction folder and the model that embeds queries for it.

    Args:
        features_dir: an `eva02at extract` output folder.
        model: model folder embedding the queries (default: the manifest's ``model_name``).
        device: torch device of the model.

    Raises:
        DemoSetupError: no manifest, no embeddings, the model cannot be found or loaded, or its embedding size
            differs from the features'.
    """

    def __init__(
        self, features_dir: str | os.PathLike, model: str | None = None, device: str = "cpu"
    ) -> None:
        from ..training.models import load_model_and_processor

        self.features_dir = Path(features_dir)
        hint = EXTRACT_HINT.format(dir=self.features_dir)
        if not self.features_dir.is_dir():
            raise DemoSetupError(
                f"{self.features_dir} is not a folder. Extract features first:\n\n    {hint}"
            )
        try:
            self.manifest = read_manifest(self.features_dir)
            self.videos = self._load("video")
            self.texts = self._load("text")
        except FileNotFoundError as err:
            raise DemoSetupError(f"{err}. Extract features first:\n\n    {hint}") from None
        if self.videos is None and self.texts is None:
            raise DemoSetupError(f"{self.features_dir} holds no embeddings. Extract some:\n\n    {hint}")
        self.model_path = model or self.manifest.get("model_name")
        if not self.model_path or not Path(self.model_path).is_dir():
            raise DemoSetupError(
                f"the model that embeds the queries was not found: {self.model_path!r} (recorded in "
                f"{self.features_dir / 'manifest.json'}); pass the extraction's model folder with --model"
            )
        try:
            network, self.processor = load_model_and_processor(self.model_path)
        except CheckpointLoadError as err:
            raise DemoSetupError(f"the query model cannot be loaded: {err}") from None
        self.model = network.to(device).eval()
        dim = self.model.config.projection_dim
        for kind, features in (("video", self.videos), ("text", self.texts)):
            if features is not None and features.embeddings.shape[1] != dim:
                raise DemoSetupError(
                    f"{self.features_dir} holds {features.embeddings.shape[1]}-dimensional {kind} features but "
                    f"{self.model_path} embeds queries in {dim} dimensions: the features were extracted with "
                    f"another model ({self.manifest.get('model_name')}); start the demo with that model "
                    "(--model) or extract again with this one"
                )
        self.extractor = FeatureExtractor(
            self.model, self.processor, self.model.config.vision_config.num_frames, progress=False
        )
        recorded = self.manifest.get("fingerprint", {}).get("weights")
        self.weights_match = recorded is None or recorded == weights_digest(self.model)

    def _load(self, kind: str) -> FeatureSet | None:
        """The ``kind`` features, or None when the extraction embedded none."""
        if not self.manifest.get("shards", {}).get(kind):
            return None
        features = load_features(self.features_dir, kind)
        return features if len(features.table) else None

    @torch.no_grad()
    def text_to_video(self, query: str, k: int = 5) -> list[VideoHit]:
        """The ``k`` clips closest to ``query``, best first."""
        if self.videos is None:
            raise DemoSetupError(f"{self.features_dir} holds no video embeddings to search")
        if not query.strip():
            raise ValueError("type a text query")
        scores, indices = search(self.extractor.embed_texts([query.strip()]), self.videos.embeddings, k)
        hits = []
        for rank, (score, index) in enumerate(zip(scores[0].tolist(), indices[0].tolist(), strict=True), 1):
            row = self.videos.table.iloc[index]
            hits.append(
                VideoHit(rank, row["id"], score, row["path"], _window(row["start"]), _window(row["end"]))
            )
        return hits

    @torch.no_grad()
    def video_to_text(self, video: str, k: int = 5) -> list[TextHit]:
        """The ``k`` texts closest to ``video``: an extracted video id or a video file, best first."""
        if self.texts is None:
            raise DemoSetupError(f"{self.features_dir} holds no text embeddings to search")
        if not video:
            raise ValueError("type an extracted clip id or upload a video")
        if self.videos is not None and video in self.videos.ids:
            query = self.videos.embeddings[self.videos.ids.index(video)][None]
        elif Path(video).is_file():
            query, _, failures = self.extractor.embed_videos([VideoItem(video, video)], [0])
            if failures:
                raise ValueError(failures[0]["error"])
        else:
            raise ValueError(f"{video!r} is neither an extracted video id nor a video file")
        scores, indices = search(query, self.texts.embeddings, k)
        return [
            TextHit(rank, self.texts.table.iloc[index]["id"], score, self.texts.table.iloc[index]["text"])
            for rank, (score, index) in enumerate(
                zip(scores[0].tolist(), indices[0].tolist(), strict=True), 1
            )
        ]


# ------------------------------------------------------------------------------------------------- rendering


def _file_url(path: str, start: float | None, end: float | None) -> str:
    """Gradio file route for ``path``, with a media fragment (``#t=start,end``) that plays only the window."""
    fragment = ""
    if start is not None or end is not None:
        fragment = f"#t={start or 0:g}" + (f",{end:g}" if end is not None else "")
    return f"/gradio_api/file={html.escape(path)}{fragment}"


def video_hits_html(hits: list[VideoHit]) -> str:
    rows = []
    for hit in hits:
        window = "whole file" if hit.start is None and hit.end is None else f"{hit.start} - {hit.end} s"
        player = f'<video controls preload="none" width="240" src="{_file_url(hit.path, hit.start, hit.end)}"></video>'
        rows.append(
            f'<tr class="hit" data-id="{html.escape(hit.id)}"><td>{hit.rank}</td><td class="hit-id">'
            f'{html.escape(hit.id)}</td><td class="score">{hit.score:.4f}</td><td>{window}</td><td>{player}</td></tr>'
        )
    return (
        '<table id="video-hits"><thead><tr><th>#</th><th>clip</th><th>score</th><th>window</th><th>play</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def text_hits_html(hits: list[TextHit]) -> str:
    rows = [
        f'<tr class="hit" data-id="{html.escape(hit.id)}"><td>{hit.rank}</td><td class="hit-text">'
        f'{html.escape(hit.text)}</td><td class="score">{hit.score:.4f}</td></tr>'
        for hit in hits
    ]
    return (
        '<table id="text-hits"><thead><tr><th>#</th><th>text</th><th>score</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def frame_strips(query: str, hits: list[VideoHit], num_frames: int = 6) -> Image.Image:
    from .contact_sheet import Hit, SheetLayout, render_contact_sheet

    sheet_hits = [Hit(h.path, h.start, h.end, h.score, h.id) for h in hits]
    return render_contact_sheet([(query, sheet_hits)], SheetLayout(num_frames=num_frames))


def _message_html(text: str, kind: str = "error") -> str:
    return f'<div id="demo-{kind}" class="demo-{kind}"><pre>{html.escape(text)}</pre></div>'


# -------------------------------------------------------------------------------------------------------- app


def build_demo(
    features_dir: str | os.PathLike, model: str | None = None, device: str = "cpu", top_k: int = 5
) -> gr.Blocks:
    """The Gradio app: a search page, or a page explaining why ``features_dir`` cannot be searched."""
    import gradio as gr

    try:
        index = FeatureSearch(features_dir, model, device)
    except DemoSetupError as err:
        logger.warning("cannot search %s: %s", features_dir, err)
        with gr.Blocks(title="EVA02-AT search: nothing to search") as page:
            gr.Markdown("# EVA02-AT search")
            gr.HTML(_message_html(f"Cannot search {features_dir}:\n\n{err}"))
        return page

    num_videos = 0 if index.videos is None else len(index.videos.table)
    num_texts = 0 if index.texts is None else len(index.texts.table)
    notes = [
        f"{num_videos} clips and {num_texts} texts in `{features_dir}`; queries embedded by `{index.model_path}`."
    ]
    if not index.weights_match:
        notes.append(
            "Warning: this model's weights differ from those recorded at extraction (another model, or "
            "extraction in another dtype): rankings may be meaningless."
        )

    def run_text_query(query: str, k: float) -> tuple[str, Any]:
        try:
            hits = index.text_to_video(query, int(k))
        except (ValueError, DemoSetupError) as err:
            return _message_html(str(err)), None
        return video_hits_html(hits), frame_strips(query, hits)

    def run_video_query(video_id: str | None, upload: str | None, k: float) -> str:
        try:
            return text_hits_html(index.video_to_text(upload or (video_id or "").strip(), int(k)))
        except (ValueError, DemoSetupError) as err:
            return _message_html(str(err))

    with gr.Blocks(title="EVA02-AT search") as page:
        gr.Markdown("# EVA02-AT search\n\n" + "\n\n".join(notes))
        with gr.Tab("Text → video"):
            with gr.Row():
                query = gr.Textbox(
                    label="Text query", placeholder="open the fridge", elem_id="query", scale=4
                )
                k_videos = _top_k_slider(num_videos, top_k)
            text_button = gr.Button("Search clips", variant="primary", elem_id="search-videos")
            video_results = gr.HTML(elem_id="video-results")
            strips = gr.Image(label="Frame strips", type="pil", elem_id="frame-strips", interactive=False)
            for trigger in (text_button.click, query.submit):
                trigger(run_text_query, [query, k_videos], [video_results, strips])
        with gr.Tab("Video → text"):
            example = index.videos.ids[0] if index.videos is not None else ""
            with gr.Row():
                video_id = gr.Textbox(
                    label="Extracted clip id (as listed in the text → video results)",
                    placeholder=example,
                    elem_id="video-query",
                    scale=3,
                )
                upload = gr.Video(label="or a video file", sources=["upload"], elem_id="video-upload")
                k_texts = _top_k_slider(num_texts, top_k)
            video_button = gr.Button("Search texts", variant="primary", elem_id="search-texts")
            text_results = gr.HTML(elem_id="text-results")
            for trigger in (video_button.click, video_id.submit):
                trigger(run_video_query, [video_id, upload, k_texts], text_results)
    if index.videos is not None:  # the clip players fetch exactly these files, nothing else is served
        gr.set_static_paths(sorted(set(index.videos.table["path"])))
    return page


def _top_k_slider(count: int, top_k: int) -> gr.Slider:
    import gradio as gr

    largest = max(1, min(count, max(MAX_TOP_K, top_k)))
    return gr.Slider(1, largest, value=min(top_k, largest), step=1, label="top k")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch(
    page: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, block: bool = True
) -> tuple[gr.Blocks, str]:
    """Serve ``page`` on ``host`` (local only by default) and a free port; returns (page, its URL).

    With ``block=False`` the call returns at once; stop the server with ``page.close()``.
    """
    page.launch(
        server_name=host,
        server_port=port or free_port(host),
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=True,
        ssr_mode=False,
    )
    return page, page.local_url


__all__ = ["DemoSetupError", "FeatureSearch", "TextHit", "VideoHit", "build_demo", "free_port", "launch"]
