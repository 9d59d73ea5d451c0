"""Publish an EVA02-AT model folder (model + processor + model card) to the Hugging Face Hub in one commit.

    python conversion/publish_to_hub.py --model_dir eva02at-b --repo_id me/eva02at-b \
        --results model_cards/eva02at-b.json

The card is rendered from `model_cards/template.md`; the upload carries the remote code and `auto_map` entries,
so `AutoModel` / `AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)` work without this package.
Add `--dry_run` to list the files without uploading. Same as `eva02at publish ...`.
"""

import sys

from eva02at_hf.apps.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["publish", *sys.argv[1:]]))
