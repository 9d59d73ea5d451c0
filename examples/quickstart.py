"""Placeholder quickstart: build a tiny EVA02-AT, save it, reload it with AutoModel and score random clips."""

import argparse
from pathlib import Path

import torch
from transformers import AutoModel

from eva02at_hf import EVA02ATConfig, EVA02ATForVideoTextRetrieval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="outputs/quickstart")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = EVA02ATForVideoTextRetrieval(EVA02ATConfig.from_preset("eva02at-tiny"))
    model.save_pretrained(args.output_dir)
    reloaded = AutoModel.from_pretrained(Path(args.output_dir)).eval()
    pixel_values = torch.randn(2, 8, 3, 32, 32)
    input_ids = torch.tensor([[49406, 320, 49407] + [0] * 74, [49406, 321, 49407] + [0] * 74])
    with torch.no_grad():
        print(reloaded(input_ids=input_ids, pixel_values=pixel_values).logits_per_video)


if __name__ == "__main__":
    main()
