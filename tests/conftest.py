"""Shared fixtures: tiny random EVA02-AT configurations and models."""

import pytest
import torch

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval

# Stand-ins for parts of transformers' test tree (see tests/transformers_suite.py), imported, not collected.
collect_ignore = ["transformers_shims"]


@pytest.fixture
def tiny_config() -> EVA02ATConfig:
    return EVA02ATConfig.from_preset("eva02at-tiny")


@pytest.fixture
def tiny_model(tiny_config: EVA02ATConfig) -> EVA02ATForVideoTextRetrieval:
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(tiny_config).eval()
    with torch.no_grad():
        model.vision_model.embeddings.temporal_embedding.normal_(std=0.02)
    return model


@pytest.fixture
def tiny_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.zeros(3, 77, dtype=torch.long)
    for row, length in enumerate((5, 9, 3)):
        input_ids[row, 0] = 49406
        input_ids[row, 1 : length - 1] = torch.randint(1, 49000, (length - 2,), generator=generator)
        input_ids[row, length - 1] = 49407
    attention_mask = (torch.arange(77)[None] < torch.tensor([5, 9, 3])[:, None]).long()
    pixel_values = torch.randn(2, 8, 3, 32, 32, generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values}
