"""Convert an EVA02-CLIP checkpoint (timm, open_clip or BAAI EVA-CLIP layout) into an EVA02-AT model folder.

    python conversion/convert_eva02_clip.py --checkpoint open_clip_model.safetensors --output_dir eva02at-b \
        --num_frames 16

The output loads with `AutoModel.from_pretrained(output_dir)`; add `--processor` to also save the default
processor so `AutoProcessor.from_pretrained(output_dir)` works.
"""

from eva02at_hf.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["convert", *__import__("sys").argv[1:]]))
