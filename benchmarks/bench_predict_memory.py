"""Peak memory of ``tf-bimodal predict`` on one huge B/SE pair against an ordinary one.

Each measurement is one fresh process that loads an exported CAD pipeline and predicts one
case (:func:`tf_bimodal.export.predict.predict`: read, serve, mask, overlay, tables, pages);
its peak resident memory (``ru_maxrss``) is read by the parent. The pipeline is a tiny
untrained one (the ``quick`` W-MM-U-Net and MFF, one fold each), so what grows with the image
is the reading, the preprocessing and the pictures, not the models. The difference between the
huge case and the ordinary one is the memory the image's size costs.

Usage::

    python benchmarks/bench_predict_memory.py                       # 6000 x 6000 against 336 x 336
    python benchmarks/bench_predict_memory.py --side 4000 --json results/predict_memory.json
    python benchmarks/bench_predict_memory.py --code /path/to/another/checkout   # another version

This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import sys
from tf_bimodal.export import predict as predict_lib
case = predict_lib.pair_case(sys.argv[2], sys.argv[3])
result = predict_lib.predict(sys.argv[1], [case], sys.argv[4], progress=False)
print("ROW", result["rows"][0]["status"], result["rows"][0]["error"])
"""


def _export(folder: str) -> None:
    """A tiny untrained pipeline, saved as ``tf-bimodal export`` lays it out."""
    import keras
    import tensorflow as tf

    from tf_bimodal.config import CLASSIFICATION_PRESETS, SEGMENTATION_PRESETS
    from tf_bimodal.export import CADPipeline, ClassifierEnsemble, SegmenterEnsemble
    from tf_bimodal.models.classification.factory import build_classifier, model_input_keys
    from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter

    keras.utils.set_random_seed(3)
    seg_config, cls_config = SEGMENTATION_PRESETS["quick"], CLASSIFICATION_PRESETS["quick"]
    segmenter = SegmenterEnsemble([build_segmenter("w_mm_unet", seg_config)], MODEL_INPUTS["w_mm_unet"],
                                  seg_config.image_size, 0.5)
    classifier = ClassifierEnsemble([build_classifier("mff", cls_config, "standardize")], model_input_keys("mff"),
                                    cls_config.input_size, (0.5,))
    pipeline = CADPipeline(segmenter, classifier)
    tf.saved_model.save(pipeline, os.path.join(folder, "cad_pipeline"), signatures=pipeline.serving_signatures())
    with open(os.path.join(folder, "export.json"), "w") as handle:
        json.dump({"parts": ["cad_pipeline"], "synthetic": True, "notice": "SYNTHETIC",
                   "segmenter": {"run": "w_mm_unet", "folds": [0]},
                   "classifier": {"run": "mff", "folds": [0], "embracement": "expected", "threshold": 0.5}}, handle)


def _pair(folder: str, side: int) -> tuple[str, str]:
    """A B-mode PNG (grey stored as RGB, as BUSI's) and an SE PNG of ``side x side``."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:side, :side]
    disc = ((rows - side * 0.4) ** 2 + (cols - side * 0.6) ** 2) < (side / 5) ** 2
    grey = np.clip(rng.normal(70, 25, (side, side)) + 120 * disc, 0, 255).astype(np.uint8)
    colour = np.stack([grey, 255 - grey, np.roll(grey, side // 7, axis=1)], axis=-1)
    bmode, semode = os.path.join(folder, f"b{side}.png"), os.path.join(folder, f"se{side}.png")
    cv2.imwrite(bmode, np.repeat(grey[..., None], 3, axis=-1))
    cv2.imwrite(semode, colour)
    return bmode, semode


def _measure(code: str, export: str, bmode: str, semode: str, output: str) -> dict:
    """Peak resident memory (MiB) and seconds of one child process predicting one case."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, export, bmode, semode, output], capture_output=True,
                            text=True, cwd=code, env={**os.environ, "PYTHONPATH": code})
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    row = [line for line in result.stdout.splitlines() if line.startswith("ROW")]
    # ru_maxrss of the children is the largest child so far: measure the small case first.
    return {"peak_mib": round(max(peak, before) / 1024, 1), "seconds": round(seconds, 1),
            "row": row[-1] if row else result.stdout[-300:]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6000, help="side of the huge square pair (default 6000)")
    parser.add_argument("--code", default=REPO_ROOT, help="the checkout whose tf_bimodal is measured")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    with tempfile.TemporaryDirectory() as workdir:
        export = os.path.join(workdir, "export")
        _export(export)
        results = {"code": os.path.abspath(args.code)}
        for side in (336, args.side):  # the smaller first: ru_maxrss of children only grows
            bmode, semode = _pair(workdir, side)
            results[f"{side}px"] = _measure(args.code, export, bmode, semode, os.path.join(workdir, f"out{side}"))
            print(f"{side} x {side} pair: {results[f'{side}px']}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
