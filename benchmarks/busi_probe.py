"""Frozen pre-trained VGG-16 features on BUSI: how far a linear read-out of them gets.

Benign against malignant on the B-mode images of a BUSI folder, from crops around the manual
masks, without training the backbone: the full-width VGG-16 backbone with the ``hed``
convolutions (the weights that install from the package index,
``tf_bimodal.models.pretrained``; "caffe" input normalization, as the classifier uses with
them), global average and global max pooling of the last convolution of each block in
``--blocks``, averaged over the crop and its left-right mirror (with ``--context-margin``,
the same features of a second, wider crop concatenated, as ``ClassificationConfig.context_margin``
does), then an L2 logistic
regression whose strength is chosen by an inner 4-fold cross-validation of the training part.
The outer five folds are ``StratifiedGroupKFold`` over the reader's pseudo-patients (the
near-duplicate groups of ``iter_busi``; label-conflicting groups left out), so no scan is on
both sides of a split; the cross-validation is repeated for each of ``--seeds`` (other
splits of the same images), so the result is not that of one split. It answers whether these
weights carry what the published AUC of about 0.90 needs; docs/results.md's real-data section
quotes its result.

Usage::

    python benchmarks/busi_probe.py --manual-dir ../shared/data/busi_dev [--size 160]
        [--blocks 3,4,5] [--context-margin 150] [--seeds 0,1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manual-dir", required=True, help="folder with Dataset_BUSI_with_GT")
    parser.add_argument("--size", type=int, default=160, help="crop side in pixels (default 160)")
    parser.add_argument("--blocks", default="3,4,5", help="VGG-16 blocks whose features are read (default 3,4,5)")
    parser.add_argument("--image-size", type=int, default=336, help="images are read at this size (default 336)")
    parser.add_argument("--margin", type=int, default=None,
                        help="crop margin in pixels at 336 px (default: CropConfig.margin, the paper's 50)")
    parser.add_argument("--context-margin", type=int, default=None,
                        help="also read a second crop with this margin (pixels at 336 px), features concatenated")
    parser.add_argument("--seeds", default="0,1,2",
                        help="seeds of the outer five-fold splits, one cross-validation each (default 0,1,2)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    blocks = sorted({int(b) for b in args.blocks.split(",")})
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if not blocks or blocks[0] < 1 or blocks[-1] > 5:
        parser.error(f"--blocks must name blocks 1 to 5, got {args.blocks!r}")

    import dataclasses

    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tf_bimodal.config import CLASSIFICATION_PRESETS, CropConfig
    from tf_bimodal.data.cropping import crop_pair, scaled_margin
    from tf_bimodal.data.readers import iter_busi
    from tf_bimodal.layers.image_normalization import ImageNormalization
    from tf_bimodal.models.classification.backbone_weights import load_backbone_weights
    from tf_bimodal.models.classification.factory import build_backbone

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

    started = time.perf_counter()
    rows = [row for row in iter_busi(args.manual_dir, args.image_size) if row["label"] != "normal"]
    labels = np.array([int(row["label"] == "malignant") for row in rows])
    groups = np.array([row["patient_id"] for row in rows])
    def crops(margin):
        margin = scaled_margin(args.image_size, margin)
        return np.stack([
            crop_pair(row["bmode"], np.repeat(row["bmode"], 3, axis=-1), row["mask"], margin=margin,
                      shape="rectangle", output_size=args.size)[0].numpy()
            for row in rows
        ]).astype(np.float32)

    margins = [CropConfig.margin if args.margin is None else args.margin]
    if args.context_margin is not None:
        margins.append(args.context_margin)
    print(f"{len(rows)} lesion images ({labels.sum()} malignant) in {len(set(groups))} pseudo-patients; "
          f"crops of {args.size} px, margins {margins} px at 336 px", flush=True)

    config = dataclasses.replace(CLASSIFICATION_PRESETS["paper"], input_size=args.size)
    backbone = build_backbone(config)
    record = load_backbone_weights(backbone, "hed", allow_fallback=False, log=print)
    inputs = keras.Input((args.size, args.size, 1))
    normalized = ImageNormalization("caffe")(keras.layers.Concatenate()([inputs, inputs, inputs]))
    conv = keras.Model(backbone.input, [backbone.get_layer(f"block{b}_conv{2 if b < 3 else 3}").output
                                        for b in blocks])
    pooled = [keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(f),
                                          keras.layers.GlobalMaxPooling2D()(f)])
              for f in conv(normalized)]
    features = keras.Model(inputs, keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0])
    parts = []
    for margin in margins:
        images = crops(margin)
        both = features.predict(np.concatenate([images, images[:, :, ::-1]]), batch_size=16, verbose=0)
        parts.append((both[: len(images)] + both[len(images):]) / 2)
    values = np.concatenate(parts, axis=1)
    print(f"features: {values.shape[1]} per image, {time.perf_counter() - started:.0f} s so far", flush=True)

    splits = {}
    for seed in seeds:
        aucs = []
        folds = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
        for train, test in folds.split(values, labels, groups):
            model = make_pipeline(StandardScaler(), LogisticRegressionCV(
                Cs=np.logspace(-4, 0, 9), cv=4, max_iter=3000, scoring="roc_auc"))
            model.fit(values[train], labels[train])
            aucs.append(float(roc_auc_score(labels[test], model.predict_proba(values[test])[:, 1])))
        splits[str(seed)] = {"mean": float(np.mean(aucs)), "sd": float(np.std(aucs, ddof=1)), "per_fold": aucs}
        print(f"split seed {seed}: AUC {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} over 5 folds "
              f"({', '.join(f'{a:.3f}' for a in aucs)})", flush=True)
    elapsed = time.perf_counter() - started
    means = [split["mean"] for split in splits.values()]
    print(f"mean AUC over the {len(seeds)} cross-validations: {np.mean(means):.3f} "
          f"(range {min(means):.3f}-{max(means):.3f}; {elapsed / 60:.1f} min)")
    results = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
        "command": "python benchmarks/busi_probe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "images": len(rows), "malignant": int(labels.sum()), "pseudo_patients": len(set(groups)),
        "size": args.size, "margins": margins, "blocks": blocks, "weights": record.get("source", record),
        "auc": {"mean_over_splits": float(np.mean(means)), "splits": splits},
        "wall_seconds": round(elapsed, 1),
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
