"""EVA02-AT processor: `EVA02ATVideoProcessor` + CLIP BPE tokenizer (context 77, open_clip-identical ids)."""

import html
import os
from pathlib import Path
from typing import Any

import ftfy
import torch
from transformers import AutoProcessor, AutoVideoProcessor, CLIPTokenizer
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack
from transformers.tokenization_utils_base import PreTokenizedInput, TextInput
from transformers.video_utils import VideoInput

from .configuration_eva02at import PRESETS, EVA02ATConfig
from .video_processing_eva02at import EVA02ATVideoProcessor, EVA02ATVideoProcessorKwargs, make_video_list

TOKENIZER_DIR = Path(__file__).resolve().parent / "tokenizer"
CONTEXT_LENGTH = 77


class EVA02ATProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: EVA02ATVideoProcessorKwargs


def clean_caption(text: str) -> str:
    """open_clip's caption cleaning: ftfy repair, double HTML unescape, whitespace collapse (lower-casing is
    done by the tokenizer's normaliser)."""
    return " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split())


class EVA02ATProcessor(ProcessorMixin):
    r"""
    Wraps an [`EVA02ATVideoProcessor`] and a CLIP BPE tokenizer into one processor.

    ``processor(videos=..., text=..., return_tensors="pt")`` returns ``pixel_values`` ``(B, T, 3, H, W)``,
    ``input_ids`` and ``attention_mask`` ``(B, 77)``: ids equal ``open_clip.tokenize`` (start / end-of-text
    49406 / 49407, end-of-text kept when truncating, zero padding); the mask marks real tokens. Video
    options (``num_frames``, ``sampling``, ``start_time``, ``end_time``, ``seed``, ``on_error``, ...) are
    forwarded to the video processor. With ``on_error="skip"``, ``failed_indices`` lists the skipped videos;
    when ``text`` has one caption per video the captions of skipped videos are dropped too, so rows stay paired.
    """

    valid_processor_kwargs = EVA02ATProcessorKwargs
    text_kwargs = {"padding": "max_length", "max_length": CONTEXT_LENGTH, "truncation": True}
    skip_tensor_conversion = [*ProcessorMixin.skip_tensor_conversion, "failed_indices"]

    def __init__(self, video_processor: EVA02ATVideoProcessor, tokenizer: CLIPTokenizer, **kwargs) -> None:
        super().__init__(video_processor, tokenizer, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        """`ProcessorMixin.save_pretrained`. The `auto_map` that saving writes (for `trust_remote_code`) goes to the
        file only: the processor is left as it was, so it equals the processor loaded back (transformers does not
        keep `auto_map` on load) and save -> load -> save writes the same `processor_config.json`."""
        previous = self.__dict__.get("auto_map")
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if previous is None:
                self.__dict__.pop("auto_map", None)
            else:
                self.auto_map = previous

    @classmethod
    def from_preset(cls, name: str = "eva02at-b", **video_kwargs) -> "EVA02ATProcessor":
        """Default processor for a model preset, built offline from the tokenizer files shipped in the package.

        Args:
            name: a model preset of `EVA02ATConfig.from_preset` (``"eva02at-b"``, ``"eva02at-l"``,
                ``"eva02at-tiny"``); the crop matches the preset's image size.
            video_kwargs: overrides for [`EVA02ATVideoProcessor`] (e.g. ``num_frames=4``).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; available: {sorted(PRESETS)}.")
        image_size = PRESETS[name]["vision_config"]["image_size"]
        video_kwargs = {
            "size": {"shortest_edge": image_size},
            "crop_size": {"height": image_size, "width": image_size},
            **video_kwargs,
        }
        return cls(EVA02ATVideoProcessor(**video_kwargs), CLIPTokenizer.from_pretrained(TOKENIZER_DIR))

    def __call__(
        self,
        videos: VideoInput | None = None,
        text: TextInput | PreTokenizedInput | list[TextInput] | None = None,
        **kwargs: Unpack[EVA02ATProcessorKwargs],
    ) -> BatchFeature:
        """Process ``videos`` (paths, or in-memory frames) and/or ``text`` (captions) into model inputs."""
        if videos is None and text is None:
            raise ValueError("Provide `videos`, `text` or both.")
        # A generator must reach the video processor itself (not a deep copy) so its state advances.
        seed: int | torch.Generator | None = kwargs.pop("seed", None)
        output_kwargs = self._merge_kwargs(
            EVA02ATProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        data = {}
        if videos is not None:
            data.update(self.video_processor(videos, seed=seed, **output_kwargs["videos_kwargs"]))
        if text is not None:
            captions = (
                [text] if isinstance(text, str) else list(text) if isinstance(text, list | tuple) else None
            )
            if not captions:
                raise TypeError(f"`text` must be a string or a non-empty list of strings, got {text!r:.80}")
            for i, caption in enumerate(captions):
                if not isinstance(caption, str):
                    raise TypeError(
                        f"`text`[{i}] must be a string, got {type(caption).__name__} {caption!r:.80}"
                    )
            failed = set(data.get("failed_indices", []))
            if failed and len(captions) == len(make_video_list(videos)):
                captions = [caption for i, caption in enumerate(captions) if i not in failed]
            data.update(self.tokenizer([clean_caption(c) for c in captions], **output_kwargs["text_kwargs"]))
        return BatchFeature(
            data,
            tensor_type=output_kwargs["text_kwargs"].get("return_tensors"),
            skip_tensor_conversion=self.skip_tensor_conversion,
        )


AutoVideoProcessor.register(EVA02ATConfig, EVA02ATVideoProcessor, exist_ok=True)
AutoProcessor.register(EVA02ATConfig, EVA02ATProcessor, exist_ok=True)

__all__ = ["EVA02ATProcessor", "clean_caption"]
