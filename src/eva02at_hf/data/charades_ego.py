"""Charades-Ego (first-person videos) action recognition, evaluated as video-to-text retrieval.

Annotation files (``data_dir``, from the Charades-Ego release):

* ``CharadesEgo_v1_train_only1st.csv`` / ``CharadesEgo_v1_test_only1st.csv``: one row per first-person video,
  columns ``id, subject, scene, quality, relevance, verified, script, objects, descriptions, actions, length``;
  ``actions`` is ``"c092 11.90 21.20;c147 0.00 12.60"`` (class code, start and end seconds; may be empty) and
  ``length`` the video duration in seconds.
* ``Charades_v1_classes.txt``: the 157 class names, ``"c000 Holding some clothes"`` per line; class index =
  line order (the prompts for retrieval-style classification, `charades_ego_class_names`).

Examples follow the LaViLa / EgoVLP protocol: by default the train split is trimmed (one example per action
segment, ``narration`` = its class name, for fine-tuning) and the test split is untrimmed (one example per video
over ``[0, length]`` with all its classes, for video-level mAP). Videos: ``<root>/<id>.mp4``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import datasets

from ._common import (
    CLIP_FEATURES,
    BadRow,
    LocalVideoBuilder,
    LocalVideoConfig,
    check_choice,
    check_columns,
    check_window,
    load_local_split,
    parse_float,
    read_table,
)

CLASSES_FILE = "Charades_v1_classes.txt"
SPLIT_FILES = {"train": "CharadesEgo_v1_train_only1st.csv", "test": "CharadesEgo_v1_test_only1st.csv"}
_REQUIRED = ("id", "actions", "length")


def charades_ego_class_names(data_dir: str | os.PathLike) -> list[str]:
    """The class names of ``Charades_v1_classes.txt`` in class-index order (``"Holding some clothes"``, ...)."""
    path = os.path.join(os.fspath(data_dir), CLASSES_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class list not found: {path}")
    names = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(line for line in handle if line.strip()):
            code, _, name = line.strip().partition(" ")
            if code != f"c{number:03d}" or not name.strip():
                raise ValueError(
                    f"{path}: line {number + 1} should read 'c{number:03d} <class name>', got {line!r}"
                )
            names.append(name.strip())
    return names


def parse_actions(text: str | None, num_classes: int) -> list[tuple[int, float, float]]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> ``[(92, 11.9, 21.2), (147, 0.0, 12.6)]`` (empty -> [])."""
    actions = []
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 3 or not parts[0].startswith("c") or not parts[0][1:].isdigit():
            raise BadRow(f"unparsable actions: {item!r}")
        label = int(parts[0][1:])
        if label >= num_classes:
            raise BadRow(f"unparsable actions: class {parts[0]} not in the {num_classes} classes")
        start, stop = parse_float(parts[1], "action start"), parse_float(parts[2], "action end")
        actions.append((label, start, stop))
    return actions


SEGMENT_LABELS = ("overlapping", "own")


@dataclass
class CharadesEgoConfig(LocalVideoConfig):
    """`LocalVideoConfig` plus:

    Args:
        trimmed: ``True`` one example per action segment, ``False`` one per video, ``None`` (default) trimmed
            train and untrimmed test.
        segment_labels: ``class_ids`` of a trimmed segment. ``"overlapping"`` (default): its own class first,
            then the classes of the video's other actions that overlap it in time, so that a clip can hold the
            "multiple different hard labels" SMS-hard (EVA02-AT Eq. 17) is designed for, and a co-occurring
            action's prompt is not treated as a negative; ``"own"``: its own class only (one label per clip).
    """

    trimmed: bool | None = None
    segment_labels: str = "overlapping"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("segment_labels", self.segment_labels, SEGMENT_LABELS)


class CharadesEgoBuilder(LocalVideoBuilder):
    """Charades-Ego first-person clips (splits ``train`` / ``test``, those whose csv is present).

    Example fields: ``id`` (video id, plus ``_<k>`` for the k-th action segment when trimmed), ``video_id``,
    ``class_ids`` (list of class indices: a whole video's classes, or a trimmed segment's own class first, see
    ``segment_labels``), ``narration`` (class name of a trimmed segment, ``""`` for a whole video),
    ``start, stop, video_paths, chunk_starts``.
    """

    VERSION = datasets.Version("1.1.0")
    BUILDER_CONFIG_CLASS = CharadesEgoConfig
    config: CharadesEgoConfig

    def _info(self) -> datasets.DatasetInfo:
        features = datasets.Features(
            {
                "id": datasets.Value("string"),
                "video_id": datasets.Value("string"),
                "class_ids": datasets.Sequence(datasets.Value("int64")),
                "narration": datasets.Value("string"),
                **CLIP_FEATURES,
            }
        )
        return datasets.DatasetInfo(
            description="Charades-Ego first-person action recognition", features=features
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        class_names = charades_ego_class_names(self.config.data_dir)
        generators = []
        for split, name in SPLIT_FILES.items():
            path = self.annotation_path(name)
            if os.path.isfile(path):
                check_columns(path, _REQUIRED)
                trimmed = split == "train" if self.config.trimmed is None else self.config.trimmed
                kwargs = {"path": path, "split": split, "class_names": class_names, "trimmed": trimmed}
                generators.append(datasets.SplitGenerator(name=split, gen_kwargs=kwargs))
        if not generators:
            raise FileNotFoundError(
                f"none of {list(SPLIT_FILES.values())} found in data_dir {self.config.data_dir}"
            )
        return generators

    def _generate_examples(self, path: str, split: str, class_names: list[str], trimmed: bool):
        layout = self.video_layout()
        report = self.new_report(path)
        for index, row in enumerate(read_table(path, _REQUIRED)):
            video_id = (row.get("id") or "").strip()
            try:
                if not video_id:
                    raise BadRow("missing id")
                actions = parse_actions(row.get("actions"), len(class_names))
                if trimmed:
                    examples = [
                        (f"{video_id}_{k}", self._segment_labels(actions, k), class_names[label], start, stop)
                        for k, (label, start, stop) in enumerate(actions)
                    ]
                else:
                    length = parse_float(row.get("length"), "length")
                    labels = sorted({label for label, _, _ in actions})
                    examples = [(video_id, labels, "", 0.0, length)]
                sources = []
                for _, _, _, start, stop in examples:
                    check_window(start, stop)
                    sources.append(self.locate(layout, [video_id], start, stop))
            except BadRow as bad:
                self.handle_bad_row(report, video_id or f"line {index + 2}", str(bad))
                continue
            for k, ((clip_id, labels, narration, start, stop), source) in enumerate(
                zip(examples, sources, strict=True)
            ):
                yield (
                    f"{index}_{k}",
                    {
                        "id": clip_id,
                        "video_id": video_id,
                        "class_ids": labels,
                        "narration": narration,
                        "start": start,
                        "stop": stop,
                        "video_paths": source.paths,
                        "chunk_starts": source.chunk_starts,
                    },
                )
        self.finish_report(split, report)

    def _segment_labels(self, actions: list[tuple[int, float, float]], k: int) -> list[int]:
        """Action k's class, then (``segment_labels="overlapping"``) the other classes overlapping it in time."""
        label, start, stop = actions[k]
        if self.config.segment_labels == "own":
            return [label]
        overlapping = {other for other, s, e in actions if other != label and min(e, stop) > max(s, start)}
        return [label, *sorted(overlapping)]


def load_charades_ego(
    data_dir: str | os.PathLike,
    video_root: str | os.PathLike,
    split: str,
    cache_dir: str | None = None,
    **config_kwargs,
) -> datasets.Dataset:
    """Charades-Ego ``split`` ("train" / "test") built by `CharadesEgoBuilder`.

    ``config_kwargs``: ``trimmed``, ``segment_labels`` (see `CharadesEgoConfig`) and those of `LocalVideoConfig`
    (``chunk_len``, ``ext``, ``on_bad_row``).
    """
    return load_local_split(CharadesEgoBuilder, data_dir, video_root, split, cache_dir, **config_kwargs)
