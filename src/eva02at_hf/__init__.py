"""EVA02-AT: an egocentric video-language model, native to Hugging Face transformers."""

from transformers import AutoConfig, AutoModel

from .configuration_eva02at import (
    EVA02ATConfig,
    EVA02ATTextConfig,
    EVA02ATVisionConfig,
    EVA02ATViTVisionConfig,
)
from .modeling_eva02at import (
    EVA02ATForVideoTextRetrieval,
    EVA02ATPreTrainedModel,
    EVA02ATRetrievalOutput,
    EVA02ATVisionModel,
    EVA02ATViTVisionModel,
)
from .objectives import (
    AdaptiveMIMMLoss,
    EgoNCELoss,
    HardMiningSampler,
    InfoNCELoss,
    MIMMLoss,
    SMSHardLoss,
    SMSLoss,
    batch_relevancy,
    egonce_positive_mask,
    gather_with_grad,
    pos_iou_relevancy,
)
from .pipelines_eva02at import (
    VideoTextRetrievalPipeline,
    ZeroShotVideoClassificationPipeline,
    register_pipelines,
)
from .processing_eva02at import EVA02ATProcessor
from .utils.memory import estimate_activation_memory
from .video_processing_eva02at import EVA02ATVideoProcessor

AutoConfig.register(EVA02ATConfig.model_type, EVA02ATConfig, exist_ok=True)
AutoConfig.register(EVA02ATVisionConfig.model_type, EVA02ATVisionConfig, exist_ok=True)
AutoConfig.register(EVA02ATTextConfig.model_type, EVA02ATTextConfig, exist_ok=True)
AutoModel.register(EVA02ATConfig, EVA02ATForVideoTextRetrieval, exist_ok=True)
AutoConfig.register(EVA02ATViTVisionConfig.model_type, EVA02ATViTVisionConfig, exist_ok=True)
AutoModel.register(EVA02ATVisionConfig, EVA02ATVisionModel, exist_ok=True)
AutoModel.register(EVA02ATViTVisionConfig, EVA02ATViTVisionModel, exist_ok=True)
EVA02ATConfig.register_for_auto_class()
EVA02ATForVideoTextRetrieval.register_for_auto_class("AutoModel")
EVA02ATProcessor.register_for_auto_class("AutoProcessor")
EVA02ATVideoProcessor.register_for_auto_class("AutoVideoProcessor")
register_pipelines()

__all__ = [
    "AdaptiveMIMMLoss",
    "EgoNCELoss",
    "HardMiningSampler",
    "InfoNCELoss",
    "MIMMLoss",
    "SMSHardLoss",
    "SMSLoss",
    "batch_relevancy",
    "egonce_positive_mask",
    "estimate_activation_memory",
    "gather_with_grad",
    "pos_iou_relevancy",
    "EVA02ATConfig",
    "EVA02ATForVideoTextRetrieval",
    "EVA02ATPreTrainedModel",
    "EVA02ATProcessor",
    "EVA02ATRetrievalOutput",
    "EVA02ATTextConfig",
    "EVA02ATViTVisionConfig",
    "EVA02ATViTVisionModel",
    "EVA02ATVisionConfig",
    "EVA02ATVideoProcessor",
    "EVA02ATVisionModel",
    "VideoTextRetrievalPipeline",
    "ZeroShotVideoClassificationPipeline",
]
