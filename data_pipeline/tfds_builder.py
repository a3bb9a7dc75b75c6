"""The built TFRecords as a TensorFlow Datasets dataset (no copy: TFDS metadata beside the shards).

``tfds.builder_from_directory(OUT/tfrecords)`` (or :func:`builder`) returns a builder with a
``DatasetInfo`` (features, the ``train`` split with its shard lengths, and ``validation`` when the
build held one out, token and padding figures in the description) whose
``as_dataset(split="train")`` (or ``"validation"``) yields the packed rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from semcoder_jax.packed_schema import FEATURES

DATASET_NAME = "semcoder_packed"
FILENAME_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"


def features(seq_len: int):
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict({name: tfds.features.Tensor(shape=(seq_len,), dtype=np.int64) for name in FEATURES})


def write_tfds_metadata(out_dir: str | Path, manifest: dict[str, Any]) -> None:
    import tensorflow_datasets as tfds

    data_dir = Path(out_dir) / "tfrecords"
    for stale in ("dataset_info.json", "features.json"):
        (data_dir / stale).unlink(missing_ok=True)
    split_infos = []
    for name, entry in manifest["splits"].items():  # train first, then validation when present
        template = tfds.core.ShardedFileTemplate(data_dir=data_dir, template=FILENAME_TEMPLATE, dataset_name=DATASET_NAME, split=name, filetype_suffix="tfrecord")
        split_infos.append(tfds.core.SplitInfo(name=name, shard_lengths=list(entry["shard_rows"]),
                                               num_bytes=sum((Path(out_dir) / f).stat().st_size for f in entry["files"]), filename_template=template))
    description = (
        f"SemCoder training rows packed to {manifest['seq_len']} tokens: {manifest['splits']['train']['examples']} examples "
        f"({json.dumps(manifest['counts']['packed_by_kind'])}), {manifest['tokens']['total']} tokens, "
        f"padding fraction {manifest['padding_fraction']}."
    )
    if "validation" in manifest["splits"]:
        val = manifest["splits"]["validation"]
        description += (f" Held out by problem as split validation: {val['examples']} examples of {val['problems']} problems "
                        f"({json.dumps(manifest['counts'].get('validation_by_kind', {}))}), {val['rows']} rows.")
    description += f" Built by semcoder-jax {manifest['code_version']}."
    tfds.folder_dataset.write_metadata(
        data_dir=data_dir,
        features=features(manifest["seq_len"]),
        split_infos=split_infos,
        filename_template=FILENAME_TEMPLATE,
        check_data=False,
        description=description,
        version="1.0.0",
    )


def builder(out_dir: str | Path):
    """A TFDS builder over a built data folder (the one holding ``manifest.json``)."""
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(str(Path(out_dir) / "tfrecords"))
