"""transformers' own processor and video-processor common suites (`ProcessorTesterMixin`, `VideoProcessingTestMixin`),
fetched from the sdist of the installed transformers (see `transformers_suite.py`), run against EVA02-AT's processors
the way transformers tests X-CLIP's and LLaVA-OneVision's. Every skip names its reason."""

import unittest

from transformers import CLIPTokenizer
from transformers_suite import common_tests

from eva02at_hf import EVA02ATProcessor
from eva02at_hf.processing_eva02at import TOKENIZER_DIR
from eva02at_hf.video_processing_eva02at import EVA02ATVideoProcessor

video_common = common_tests("test_video_processing_common")
ProcessorTesterMixin = common_tests("test_processing_common").ProcessorTesterMixin


class EVA02ATVideoProcessingTester:
    """Batches of 5 RGB videos of 8 frames, 20-40 pixels a side, resized to 20 and cropped to 18."""

    def __init__(self, parent: unittest.TestCase) -> None:
        self.parent = parent
        self.batch_size, self.num_frames, self.num_channels = 5, 8, 3
        self.min_resolution, self.max_resolution = 20, 40
        self.size, self.crop_size = {"shortest_edge": 20}, {"height": 18, "width": 18}

    def prepare_video_processor_dict(self) -> dict:
        return {
            "do_resize": True,
            "size": self.size,
            "do_center_crop": True,
            "crop_size": self.crop_size,
            "do_normalize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "do_convert_rgb": True,
            "do_sample_frames": False,
        }

    def expected_output_video_shape(self, videos: list) -> list[int]:
        return [self.num_frames, self.num_channels, self.crop_size["height"], self.crop_size["width"]]

    def prepare_video_inputs(self, equal_resolution: bool = False, return_tensors: str = "pil") -> list:
        return video_common.prepare_video_inputs(
            batch_size=self.batch_size,
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            min_resolution=self.min_resolution,
            max_resolution=self.max_resolution,
            equal_resolution=equal_resolution,
            return_tensors=return_tensors,
        )


class EVA02ATVideoProcessingTest(video_common.VideoProcessingTestMixin, unittest.TestCase):
    fast_video_processing_class = EVA02ATVideoProcessor
    input_name = "pixel_values"

    def setUp(self) -> None:
        super().setUp()
        self.video_processor_tester = EVA02ATVideoProcessingTester(self)

    @property
    def video_processor_dict(self) -> dict:
        return self.video_processor_tester.prepare_video_processor_dict()


class EVA02ATProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = EVA02ATProcessor
    videos_input_name = "pixel_values"

    @classmethod
    def _setup_tokenizer(cls) -> CLIPTokenizer:
        return CLIPTokenizer.from_pretrained(TOKENIZER_DIR)

    @classmethod
    def _setup_video_processor(cls) -> EVA02ATVideoProcessor:
        return EVA02ATVideoProcessor(size={"shortest_edge": 20}, crop_size={"height": 18, "width": 18})
