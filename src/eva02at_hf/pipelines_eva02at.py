"""transformers pipelines for EVA02-AT: `zero-shot-video-classification` and `video-text-retrieval`.

`import eva02at_hf` registers both tasks in transformers' `PIPELINE_REGISTRY`, so

>>> classifier = pipeline("zero-shot-video-classification", model="path/to/eva02at")
>>> classifier("clip.mp4", candidate_labels=["open the fridge", "cut the onion"])
[{'score': 0.93, 'label': 'open the fridge'}, {'score': 0.07, 'label': 'cut the onion'}]

A saved `EVA02ATForVideoTextRetrieval` lists both pipelines in its config (`custom_pipelines`) and carries this
module next to its modeling code, so the same calls work with `trust_remote_code=True` where the package is not
installed. This module imports nothing from the package: it is copied into saved folders as it is.

Videos are file paths, `{"video": path, "start_time": s, "end_time": e}` windows (seconds), or decoded clips
(numpy `(T, H, W, C)`, torch `(T, C, H, W)`, a list of frames, or a 5D batch of equal-length clips); the
processor samples `num_frames` frames from each (one per equal segment of the window) and applies the eval
transform. A file window shorter than `num_frames` frames repeats frames; a decoded clip must hold at least
`num_frames` frames (transformers' video-processor contract), else the call raises naming both counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TEXT_BATCH_SIZE = 256
VideoItem = str | os.PathLike | dict[str, Any] | np.ndarray | torch.Tensor | list


def _split_video_item(item: VideoItem) -> tuple[Any, float | None, float | None]:
    """A pipeline input -> (path or decoded clip, start_time, end_time)."""
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"video", "start_time", "end_time"})
        if "video" not in item or unknown:
            raise ValueError(
                "A video given as a dict needs a 'video' key (a path or a decoded clip) and may have "
                f"'start_time' / 'end_time' (seconds); got keys {sorted(item)}."
            )
        return item["video"], item.get("start_time"), item.get("end_time")
    if isinstance(item, os.PathLike):
        return os.fspath(item), None, None
    if isinstance(item, (str, list)) or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 4):
        return item, None, None
    raise ValueError(
        "Each video must be a file path, a {'video', 'start_time', 'end_time'} dict, a 4D decoded clip "
        f"((T, H, W, C) array or (T, C, H, W) tensor) or a list of frames; got {type(item).__name__}"
        + (f" of shape {tuple(item.shape)}." if hasattr(item, "shape") else ".")
    )


def _as_video_list(videos: Any) -> Any:
    """A 5D batch of decoded clips -> a list of clips (one pipeline input each); other inputs unchanged."""
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        return list(videos)
    return videos


class EVA02ATVideoPipeline(Pipeline):
    """Shared steps: decode and sample each video with the EVA02-AT processor, embed it (L2-normalised), and embed
    texts with the text tower. Needs the model's processor (`pipeline(..., processor=...)` when `model` is an
    object rather than a folder)."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.processor is None or not hasattr(self.processor, "video_processor"):
            raise ValueError(
                f"The {self.task or type(self).__name__} pipeline needs the EVA02-AT processor: load it from a "
                "folder with processor files, or pass processor=EVA02ATProcessor.from_pretrained(...)."
            )
        # `Pipeline` batches inputs with a collator that reads padding settings from `image_processor`; every clip
        # of a call has the same shape, so the video processor (no padding) serves.
        self.image_processor = self.processor.video_processor

    def _video_params(
        self, start_time: Any = None, end_time: Any = None, num_frames: int | None = None
    ) -> dict[str, Any]:
        params = {"start_time": start_time, "end_time": end_time, "num_frames": num_frames}
        return {name: value for name, value in params.items() if value is not None}

    def preprocess(
        self,
        video: VideoItem,
        start_time: float | None = None,
        end_time: float | None = None,
        num_frames: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """One video -> ``pixel_values`` (1, T, 3, H, W) in the model's dtype. A dict's window overrides the
        call's ``start_time`` / ``end_time``."""
        clip, start, end = _split_video_item(video)
        start = start_time if start is None else start
        end = end_time if end is None else end
        inputs = self.processor.video_processor(
            videos=[clip], start_time=start, end_time=end, num_frames=num_frames, return_tensors="pt"
        )
        return {"pixel_values": inputs["pixel_values"].to(self.dtype)}

    def embed_videos(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) clips -> (B, projection_dim) L2-normalised video embeddings."""
        embeds = self.model.get_video_features(pixel_values=pixel_values).pooler_output
        return F.normalize(embeds, dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, projection_dim) L2-normalised text embeddings on the pipeline's device."""
        if isinstance(texts, str) or not texts or not all(isinstance(text, str) for text in texts):
            raise ValueError(f"Texts must be a non-empty list of strings, got {texts!r}.")
        embeds = []
        with self.device_placement(), self.get_inference_context()():
            for first in range(0, len(texts), TEXT_BATCH_SIZE):
                batch = list(texts[first : first + TEXT_BATCH_SIZE])
                tokens = self.processor(text=batch, return_tensors="pt").to(self.device)
                pooled = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output
                embeds.append(F.normalize(pooled, dim=-1))
        return torch.cat(embeds)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save the model (its config lists these pipelines and their code is written next to the modeling code)
        and the processor, so `pipeline(task, model=save_directory)` loads this pipeline back, with
        `trust_remote_code=True` where the package is not installed."""
        os.makedirs(save_directory, exist_ok=True)
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)


class ZeroShotVideoClassificationPipeline(EVA02ATVideoPipeline):
    """Zero-shot video classification: a video and candidate labels -> the labels sorted by score, the softmax
    over labels of the model's scaled cosine similarities (`logit_scale.exp() * cos`), the video counterpart of
    transformers' `zero-shot-image-classification`.

    ```python
    >>> classifier = pipeline("zero-shot-video-classification", model="path/to/eva02at")
    >>> classifier({"video": "P01_01.mp4", "start_time": 3.2, "end_time": 5.0},
    ...            candidate_labels=["open fridge", "cut onion", "wash pan"])
    [{'score': 0.81, 'label': 'open fridge'}, {'score': 0.12, 'label': 'wash pan'}, ...]
    ```
    """

    def __call__(
        self, videos: VideoItem | Iterable[VideoItem], candidate_labels: Sequence[str] | str, **kwargs: Any
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Score the candidate labels for each video.

        Args:
            videos: one video or a list of them (file path, ``{"video", "start_time", "end_time"}`` dict,
                decoded clip), a 5D batch of decoded clips, or a dataset / generator of videos.
            candidate_labels: the labels, formatted with ``hypothesis_template`` into the text queries.
            hypothesis_template (`str`, *optional*, defaults to ``"{}"``): e.g. ``"a video of someone {}"``.
            start_time, end_time (`float`, *optional*): window in seconds for file inputs without their own.
            num_frames (`int`, *optional*): frames sampled per video (default: the processor's).
            top_k (`int`, *optional*): keep the k best labels.
            batch_size (`int`, *optional*): videos per forward pass.

        Returns:
            For one video, a list of ``{"score", "label"}`` sorted by decreasing score (scores sum to 1); for a
            list of videos, one such list per video.
        """
        if isinstance(candidate_labels, str):
            candidate_labels = [candidate_labels]
        if not candidate_labels:
            raise ValueError("candidate_labels must hold at least one label.")
        template = kwargs.pop("hypothesis_template", "{}")
        if "{}" not in template:
            raise ValueError(f"hypothesis_template must contain '{{}}', got {template!r}.")
        text_embeds = self.embed_texts([template.format(label) for label in candidate_labels])
        return super().__call__(
            _as_video_list(videos), candidate_labels=list(candidate_labels), text_embeds=text_embeds, **kwargs
        )

    def _sanitize_parameters(
        self,
        candidate_labels: list[str] | None = None,
        text_embeds: torch.Tensor | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
        num_frames: int | None = None,
        top_k: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        forward = {} if text_embeds is None else {"text_embeds": text_embeds}
        postprocess = {} if candidate_labels is None else {"candidate_labels": candidate_labels}
        if top_k is not None:
            postprocess["top_k"] = top_k
        return self._video_params(start_time, end_time, num_frames), forward, postprocess

    def _forward(self, model_inputs: dict[str, torch.Tensor], text_embeds: torch.Tensor) -> dict[str, Any]:
        video_embeds = self.embed_videos(model_inputs["pixel_values"])
        logits = self.model.logit_scale.exp() * video_embeds @ text_embeds.to(video_embeds).t()
        return {"logits": logits}

    def postprocess(
        self, model_outputs: dict[str, Any], candidate_labels: list[str], top_k: int | None = None
    ) -> list[dict[str, Any]]:
        scores = model_outputs["logits"][0].float().softmax(dim=-1).tolist()
        ranked = sorted(zip(scores, candidate_labels, strict=True), key=lambda pair: -pair[0])
        return [{"score": score, "label": label} for score, label in ranked[:top_k]]


class VideoTextRetrievalPipeline(EVA02ATVideoPipeline):
    """Video-text retrieval: clips and texts -> for each text the clips ranked by cosine similarity
    (``direction="text-to-video"``), or for each clip the texts (``"video-to-text"``).

    ```python
    >>> retriever = pipeline("video-text-retrieval", model="path/to/eva02at")
    >>> retriever(["a.mp4", "b.mp4", {"video": "c.mp4", "start_time": 2, "end_time": 4}],
    ...           texts=["open the fridge", "cut the onion"], top_k=2)
    [[{'score': 0.41, 'index': 2, 'video': {...}}, {'score': 0.17, 'index': 0, 'video': 'a.mp4'}], [...]]
    ```
    """

    DIRECTIONS = ("text-to-video", "video-to-text")

    def __call__(
        self,
        videos: VideoItem | Sequence[VideoItem],
        texts: Sequence[str] | str,
        direction: str = "text-to-video",
        top_k: int | None = None,
        **kwargs: Any,
    ) -> list[list[dict[str, Any]]]:
        """Rank clips for texts or texts for clips.

        Args:
            videos: the clips (file paths, ``{"video", "start_time", "end_time"}`` dicts, decoded clips, or a
                5D batch of decoded clips).
            texts: the texts (one string or a list).
            direction: ``"text-to-video"`` (one ranking of the clips per text) or ``"video-to-text"`` (one
                ranking of the texts per clip).
            top_k: keep the k best matches per query (default: all).
            start_time, end_time, num_frames, batch_size: as for `ZeroShotVideoClassificationPipeline`.

        Returns:
            One list per query, sorted by decreasing cosine similarity ``score`` (in [-1, 1]): entries
            ``{"score", "index", "video"}`` (``index`` into ``videos``; ``video`` the path or window dict as given,
            None for decoded clips) for text-to-video, ``{"score", "index", "text"}`` for video-to-text.
        """
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be one of {self.DIRECTIONS}, got {direction!r}.")
        texts = [texts] if isinstance(texts, str) else list(texts)
        videos = _as_video_list(videos)
        if not isinstance(videos, list):
            videos = [videos]
        if not videos:
            raise ValueError("videos must hold at least one clip.")
        text_embeds = self.embed_texts(texts)
        video_embeds = torch.cat(super().__call__(videos, **kwargs))
        similarity = (text_embeds.float().cpu() @ video_embeds.float().t()).tolist()
        if direction == "text-to-video":
            described = [video if isinstance(video, (str, os.PathLike, dict)) else None for video in videos]
            return [self._ranked(row, "video", described, top_k) for row in similarity]
        columns = [list(column) for column in zip(*similarity, strict=True)]
        return [self._ranked(column, "text", texts, top_k) for column in columns]

    @staticmethod
    def _ranked(scores: list[float], key: str, items: list[Any], top_k: int | None) -> list[dict[str, Any]]:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_k]
        return [{"score": scores[i], "index": i, key: items[i]} for i in order]

    def _sanitize_parameters(
        self,
        start_time: float | None = None,
        end_time: float | None = None,
        num_frames: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return self._video_params(start_time, end_time, num_frames), {}, {}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"video_embeds": self.embed_videos(model_inputs["pixel_values"])}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model_outputs["video_embeds"]


PIPELINES: dict[str, type[EVA02ATVideoPipeline]] = {
    "zero-shot-video-classification": ZeroShotVideoClassificationPipeline,
    "video-text-retrieval": VideoTextRetrievalPipeline,
}


def register_pipelines() -> None:
    """Register the EVA02-AT tasks in transformers' `PIPELINE_REGISTRY` (done by `import eva02at_hf`)."""
    for task, pipeline_class in PIPELINES.items():
        if PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is not pipeline_class:
            PIPELINE_REGISTRY.register_pipeline(task, pipeline_class, pt_model=AutoModel, type="multimodal")


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The `custom_pipelines` entry of a saved config: each task's class in this module (a saved folder carries
    it) and the model class transformers loads it with (`AutoModel`, which follows the config's `auto_map`)."""
    module = __name__.rsplit(".", 1)[-1]
    return {
        task: {"impl": f"{module}.{pipeline_class.__name__}", "pt": ["AutoModel"], "type": "multimodal"}
        for task, pipeline_class in PIPELINES.items()
    }


__all__ = [
    "EVA02ATVideoPipeline",
    "PIPELINES",
    "VideoTextRetrievalPipeline",
    "ZeroShotVideoClassificationPipeline",
    "custom_pipelines",
    "register_pipelines",
]
