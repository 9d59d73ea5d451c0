"""Convert a checkpoint into an EVA02-AT model folder: EVA02-CLIP (timm, open_clip, BAAI EVA-CLIP), the EVA02-AT
authors' layout, AVION, OpenAI CLIP, open_clip ViTs or transformers' CLIPModel, from a file, a folder or a Hub id.

    python conversion/convert_eva02_clip.py --checkpoint timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k \
        --output_dir eva02at-b --num_frames 16

The format is detected from the keys (`--format` forces one). The output loads with
`AutoModel.from_pretrained(output_dir)` and, with the default processor saved beside it (`--no-processor` skips
it), `AutoProcessor.from_pretrained(output_dir)`. Same as `eva02at convert`; see docs/cli.md.
"""

import sys

from eva02at_hf.apps.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["convert", *sys.argv[1:]]))
