"""Convert an EVA02-CLIP checkpoint (timm, open_clip or BAAI EVA-CLIP layout) into an EVA02-AT model folder.

    python conversion/convert_eva02_clip.py --checkpoint open_clip_model.safetensors --output_dir eva02at-b \
        --num_frames 16

The output loads with `AutoModel.from_pretrained(output_dir)` and, with the default processor saved beside it
(`--no-processor` skips it), `AutoProcessor.from_pretrained(output_dir)`. Same as `eva02at convert`.
"""

import sys

from eva02at_hf.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["convert", *sys.argv[1:]]))
