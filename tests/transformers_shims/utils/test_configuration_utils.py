"""Stand-in for transformers' `tests/utils/test_configuration_utils.py`, absent from the sdist: the keyword
arguments every `PreTrainedConfig` accepts, with non-default values, for `ConfigTester.check_config_arguments_init`."""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["EVA02ATVisionModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
