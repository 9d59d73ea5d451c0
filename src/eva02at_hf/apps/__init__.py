"""Applications built on the model: the `eva02at` CLI, feature extraction, search, contact sheets, the demo,
checkpoint conversion and Hub publishing. Nothing in the model files imports from here."""
