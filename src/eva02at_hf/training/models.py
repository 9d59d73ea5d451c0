"""Model and processor initialisation for the example scripts: a saved / converted folder or a random preset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..configuration_eva02at import EVA02ATConfig
from ..modeling_eva02at import EVA02ATForVideoTextRetrieval
from ..processing_eva02at import EVA02ATProcessor
from ..utils.reliability import load_pretrained_checked


def processor_for(config: EVA02ATConfig) -> EVA02ATProcessor:
    """The default processor at the model's input resolution (resize short side + centre crop) and frame count."""
    size = config.vision_config.image_size
    return EVA02ATProcessor.from_preset(
        "eva02at-b",
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        num_frames=config.vision_config.num_frames,
    )


@contextmanager
def whole_weights() -> Iterator[None]:
    """Build and load models whole even when an accelerate ZeRO-3 launch is active.

    Under ZeRO-3, accelerate registers its DeepSpeed config with transformers (even with ``zero3_init_flag: false``),
    whose `from_pretrained` and weight initialisation then build the model already partitioned through
    ``deepspeed.zero.Init``; DeepSpeed 0.19 cannot partition the 0-d ``logit_scale``. Built whole, the model is
    partitioned by `accelerator.prepare` (after the training loop makes ``logit_scale`` a buffer), and a random
    preset gets the same initial weights as without DeepSpeed.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    registered = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = registered


def load_model_and_processor(
    model: str | None, preset: str = "eva02at-tiny", num_frames: int | None = None, **config_overrides
) -> tuple[EVA02ATForVideoTextRetrieval, EVA02ATProcessor]:
    """Load ``model`` (a `save_pretrained` or conversion folder) or build a randomly initialised ``preset``.

    ``num_frames`` resamples the learnable temporal embedding of a loaded model (or sizes a new one) and becomes
    the processor's default frame count. A folder without processor files gets `processor_for` its config.
    A folder's weights are loaded with the loading report and refused (`CheckpointLoadError`) when keys are missing
    or unexpected, weights are not floating point or not finite (`load_pretrained_checked`).
    ``config_overrides`` (e.g. ``vision_config={"use_temporal_embedding": False}``) apply to presets only.
    """
    if model is None:
        if num_frames is not None:
            vision = {**config_overrides.pop("vision_config", {}), "num_frames": num_frames}
            config_overrides["vision_config"] = vision
        with whole_weights():
            network = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset(preset, **config_overrides))
        return network, processor_for(network.config)
    if not os.path.isdir(model):
        raise FileNotFoundError(f"--model {model!r} is not a folder (save_pretrained or conversion output)")
    if config_overrides:
        raise ValueError(f"config overrides {sorted(config_overrides)} only apply to --preset models")
    with whole_weights():
        network = load_pretrained_checked(EVA02ATForVideoTextRetrieval, model)
    if num_frames is not None:
        network.resize_position_embeddings(num_frames=num_frames)
    has_processor = any(
        os.path.isfile(os.path.join(model, name))
        for name in ("processor_config.json", "preprocessor_config.json")
    )
    processor = EVA02ATProcessor.from_pretrained(model) if has_processor else processor_for(network.config)
    if num_frames is not None:
        processor.video_processor.num_frames = num_frames
    return network, processor
