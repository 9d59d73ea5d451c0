"""transformers' own common test suites (`ModelTesterMixin`, `ConfigTester`), fetched from the sdist of the installed
transformers (see `transformers_suite.py`), run against EVA02-AT the way transformers tests X-CLIP and SigLIP.

The processor and video-processor suites are in `test_transformers_common_processing.py`. Every skip names its reason.
`tests/exporters/` is not in the sdist, so the export tests (torch.export / ONNX) do not run here.
"""

import random
import unittest

import torch
from transformers.testing_utils import torch_device
from transformers_suite import common_tests

from eva02at_hf import (
    EVA02ATConfig,
    EVA02ATForVideoTextRetrieval,
    EVA02ATVisionConfig,
    EVA02ATVisionModel,
)
from eva02at_hf.configuration_eva02at import EVA02ATTextConfig

modeling_common = common_tests("test_modeling_common")
ConfigTester = common_tests("test_configuration_common").ConfigTester
ModelTesterMixin = modeling_common.ModelTesterMixin
floats_tensor, ids_tensor = modeling_common.floats_tensor, modeling_common.ids_tensor
# The testers draw their inputs from fixed generators: the suite's own `global_rng` is unseeded, and a rare draw
# puts the fp16 eager-vs-SDPA comparison on CPU past its tolerance (seen once: 3 % mean relative difference).


class EVA02ATVisionModelTester:
    """Tiny video tower: 2 frames of 16 x 16 pixels in 8 x 8 patches, so 1 + 2 * 4 = 9 tokens."""

    sizes = {
        "num_frames": 2,
        "num_channels": 3,
        "image_size": 16,
        "patch_size": 8,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }

    def __init__(self, parent: unittest.TestCase, batch_size: int = 3, is_training: bool = False) -> None:
        self.parent = parent
        self.batch_size = batch_size
        self.is_training = is_training
        for name, value in self.sizes.items():  # the mixin reads these as attributes
            setattr(self, name, value)
        self.seq_length = 1 + self.num_frames * (self.image_size // self.patch_size) ** 2

    def get_config(self) -> EVA02ATVisionConfig:
        return EVA02ATVisionConfig(**self.sizes, intermediate_size=48, rope_reference_grid_size=2)

    def prepare_config_and_inputs_for_common(self) -> tuple[EVA02ATVisionConfig, dict[str, torch.Tensor]]:
        shape = [self.batch_size, self.num_frames, self.num_channels, self.image_size, self.image_size]
        return self.get_config(), {"pixel_values": floats_tensor(shape, rng=random.Random(0))}


class EVA02ATTextModelTester:
    """Tiny CLIP text tower: sequences of 7 tokens over a vocabulary of 99, the end-of-text token (98) last."""

    def __init__(self, parent: unittest.TestCase, batch_size: int = 3) -> None:
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length, self.vocab_size = 7, 99
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = 32, 2, 2

    def get_config(self) -> EVA02ATTextConfig:
        return EVA02ATTextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=37,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            max_position_embeddings=self.seq_length,
            bos_token_id=97,
            eos_token_id=98,
        )

    def prepare_config_and_inputs_for_common(self) -> tuple[EVA02ATTextConfig, dict[str, torch.Tensor]]:
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size - 2, rng=random.Random(1))
        lengths = torch.tensor([self.seq_length, 4, 2][: self.batch_size])
        attention_mask = (torch.arange(self.seq_length)[None] < lengths[:, None]).long()
        input_ids[torch.arange(self.batch_size), lengths - 1] = 98
        input_ids = input_ids * attention_mask
        return self.get_config(), {"input_ids": input_ids, "attention_mask": attention_mask.to(torch_device)}


class EVA02ATForVideoTextRetrievalTester:
    def __init__(self, parent: unittest.TestCase, is_training: bool = True) -> None:
        self.parent = parent
        self.vision_model_tester = EVA02ATVisionModelTester(parent)
        self.video_model_tester = self.vision_model_tester  # what the `get_video_features` tests use
        self.text_model_tester = EVA02ATTextModelTester(parent)
        self.batch_size = self.vision_model_tester.batch_size
        self.is_training = is_training

    def get_config(self) -> EVA02ATConfig:
        return EVA02ATConfig(
            vision_config=self.vision_model_tester.get_config().to_dict(),
            text_config=self.text_model_tester.get_config().to_dict(),
            projection_dim=16,
        )

    def prepare_config_and_inputs_for_common(self) -> tuple[EVA02ATConfig, dict[str, torch.Tensor]]:
        _, vision_inputs = self.vision_model_tester.prepare_config_and_inputs_for_common()
        _, text_inputs = self.text_model_tester.prepare_config_and_inputs_for_common()
        return self.get_config(), {**text_inputs, **vision_inputs, "return_loss": True}


class EVA02ATVisionModelTest(ModelTesterMixin, unittest.TestCase):
    """The tower alone. Its tester has `is_training=False`: a bare encoder has no loss, which transformers' training
    tests skip for base models too (the retrieval model's training tests run through it)."""

    all_model_classes = (EVA02ATVisionModel,)
    test_resize_embeddings = False  # no token embeddings

    def setUp(self) -> None:
        self.model_tester = EVA02ATVisionModelTester(self)
        self.config_tester = ConfigTester(
            self,
            config_class=EVA02ATVisionConfig,
            has_text_modality=False,
            hidden_size=48,
            num_attention_heads=4,
            num_hidden_layers=3,
        )

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    def test_model_get_set_embeddings(self) -> None:
        """The input embedding is the tube patch embedding (a Conv3d), not a token `nn.Embedding`."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = EVA02ATVisionModel(config)
        self.assertIsInstance(model.get_input_embeddings(), torch.nn.Conv3d)
        self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(reason="video input: the tower has no inputs_embeds")
    def test_inputs_embeds(self) -> None: ...

    @unittest.skip(reason="video input: the tower has no inputs_embeds")
    def test_inputs_embeds_matches_input_ids(self) -> None: ...


class EVA02ATForVideoTextRetrievalTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (EVA02ATForVideoTextRetrieval,)
    additional_model_inputs = ["pixel_values"]  # the main input is input_ids; the SDPA tests need both
    test_resize_embeddings = False  # the retrieval head has no output embeddings to tie, as CLIPModel
    _is_composite = True

    def setUp(self) -> None:
        self.model_tester = EVA02ATForVideoTextRetrievalTester(self)
        self.config_tester = ConfigTester(
            self, config_class=EVA02ATConfig, has_text_modality=False, common_properties=["projection_dim"]
        )

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    @unittest.skip(reason="two towers: hidden states are in vision_model_output / text_model_output")
    def test_hidden_states_output(self) -> None: ...

    @unittest.skip(reason="two towers: attentions are in vision_model_output / text_model_output")
    def test_attention_outputs(self) -> None: ...

    @unittest.skip(reason="video + text input: no single inputs_embeds")
    def test_inputs_embeds(self) -> None: ...

    @unittest.skip(reason="video + text input: no single inputs_embeds")
    def test_inputs_embeds_matches_input_ids(self) -> None: ...

    @unittest.skip(reason="two towers: the retained hidden states are in the towers' outputs")
    def test_retain_grad_hidden_states_attentions(self) -> None: ...


class EVA02ATConfigTest(unittest.TestCase):
    def test_text_config(self) -> None:
        ConfigTester(self, config_class=EVA02ATTextConfig, hidden_size=48).run_common_tests()
