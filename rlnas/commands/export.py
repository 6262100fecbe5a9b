"""``rlnas export RUN_ID --tflite [--quantize int8|float16] [--io-type int8]``: a final model
as TFLite.

``RUN_ID`` is a final (or ensemble) run of ``rlnas final``, a registered model
(``models:/NAME@champion``, ``models:/NAME/VERSION``), or a search: then its rank-1 final
model of the latest ``rlnas final`` session. The final run's logged model is downloaded
from MLflow, converted (:mod:`rlnas.export`), and the TFLite file's size and test accuracy
(test MAE for a regression) are reported next to the Keras model's; both figures are also
logged on the final run (``export/<kind>/...``) with the file as an artifact. An int8
model is calibrated on 500 training examples; ``--io-type int8`` (or ``uint8``) makes it
full-integer, with integer input and output tensors (:mod:`rlnas.export` says what each
option produces). Every check happens before the conversion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlnas.commands import add_command
from rlnas.config import Config
from rlnas.errors import ConfigError
from rlnas.export import IO_TYPES, representative, tflite_predict, to_tflite
from rlnas.final import accuracy, predict, score_regression
from rlnas.tasks import load_splits
from rlnas.tracking.final_recorder import record_export
from rlnas.tracking.models import download_model, final_model_run, search_config
from rlnas.tracking.store import open_store

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run


def register(subparsers) -> None:
    p = add_command(
        subparsers, "export", "write a final model as a TFLite file (optionally quantized)", run
    )
    p.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="a search's or a final model's run id, or models:/NAME@champion "
        "(models:/NAME/VERSION)",
    )
    p.add_argument("--tflite", action="store_true", help="write a TFLite flat buffer")
    p.add_argument(
        "--quantize", choices=("int8", "float16"), help="post-training quantization (default: none)"
    )
    p.add_argument(
        "--io-type",
        choices=IO_TYPES,
        default="float32",
        help="input and output tensors' type; int8/uint8 (full-integer) need --quantize int8 "
        "(default: %(default)s)",
    )
    p.add_argument("--output", "-o", metavar="PATH", help="the .tflite file to write")
    p.add_argument("--uri", help="tracking store URI (default: as rlnas search uses)")
    p.add_argument("--summary", metavar="PATH", help="write a JSON summary here")


def run(args: argparse.Namespace) -> int:
    """Convert the final model of a search (or a given final run) to TFLite and compare its
    size and test accuracy with the Keras model."""
    if not args.tflite:
        raise ConfigError("export: choose a format; expected --tflite.")
    if args.output and not args.output.endswith(".tflite"):
        raise ConfigError(f"--output: expected a path ending in .tflite, got {args.output!r}.")
    if args.io_type != "float32" and args.quantize != "int8":
        raise ConfigError(
            f"--io-type: {args.io_type} input and output need --quantize int8, got "
            f"--quantize {args.quantize or 'none'}."
        )
    uri, client = open_store(args.uri)
    run, search = final_model_run(client, args.run_id, uri)
    cfg = search_config(search, [])
    kind = (args.quantize or "float32") + (
        "" if args.io_type == "float32" else f"-{args.io_type}io"
    )
    output = Path(args.output or f"{run.info.run_name}-{run.info.run_id[:8]}-{kind}.tflite")
    if output.is_dir():
        raise ConfigError(f"--output: {str(output)!r} is a folder; expected a file path.")
    summary = export(client, run, cfg, args.quantize, output, io_type=args.io_type)
    summary["search_run_id"] = search.run_id
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=1) + "\n")
    _report(summary)
    return 0


def export(
    client: MlflowClient,
    run: Run,
    cfg: Config,
    quantize: str | None,
    output: Path,
    *,
    io_type: str = "float32",
) -> dict:
    """Convert the final run's model, measure both models on the test split, log, write."""
    # lazy: keras loads TensorFlow, which the CLI's --help must not
    import keras

    data = load_splits(dataclasses.replace(cfg.task, train_subset=None))
    kind = (quantize or "float32") + ("" if io_type == "float32" else f"-{io_type}io")
    with tempfile.TemporaryDirectory() as tmp:
        path = download_model(client, run.info.run_id, tmp)
        keras_bytes = path.stat().st_size
        model = keras.saving.load_model(path, safe_mode=True)
        metric = "mae" if data.y_test.dtype.kind == "f" else "accuracy"  # float targets regress
        keras_score = _test_score(metric, predict(model, data.x_test), data.y_test)
        start = time.time()
        blob = to_tflite(model, quantize, representative(data.x_train, cfg.seed), io_type=io_type)
        seconds = time.time() - start
        float_bytes = len(blob) if quantize is None else len(to_tflite(model))
        tflite_score = _test_score(metric, tflite_predict(blob, data.x_test), data.y_test)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(blob)
        weights = int(sum(np.prod(w.shape) for w in model.weights)) * 4
    summary = {
        "run_id": run.info.run_id,
        "quantize": quantize or "float32",
        "io_type": io_type,
        "output": str(output),
        "tflite_bytes": len(blob),
        "float32_tflite_bytes": float_bytes,
        "keras_file_bytes": keras_bytes,
        "float32_weight_bytes": weights,
        "test_metric": metric,
        "smaller_than_float32_tflite": float_bytes / len(blob),
        "smaller_than_keras_file": keras_bytes / len(blob),
        "convert_seconds": seconds,
        "test_examples": int(len(data.y_test)),
    }
    if metric == "mae":  # in the targets' units; lower is better
        summary.update(keras_test_mae=keras_score, tflite_test_mae=tflite_score)
        summary["mae_change"] = tflite_score - keras_score
    else:
        summary.update(keras_test_accuracy=keras_score, tflite_test_accuracy=tflite_score)
        summary["accuracy_change_points"] = 100 * (tflite_score - keras_score)
    metrics = {
        f"export/{kind}/tflite_bytes": float(len(blob)),
        f"export/{kind}/test_{metric}": tflite_score,
        f"export/{kind}/smaller_than_float32": summary["smaller_than_float32_tflite"],
    }
    record_export(client, run.info.run_id, metrics, output)
    return summary


def _report(s: dict) -> None:
    io = "" if s["io_type"] == "float32" else f", {s['io_type']} input and output"
    print(f"Wrote {s['output']} ({s['quantize']} TFLite{io}) from final run {s['run_id']}.")
    kb = {k: s[k] / 1e3 for k in ("tflite_bytes", "float32_tflite_bytes", "keras_file_bytes")}
    print(
        f"  size: {kb['tflite_bytes']:.1f} kB; float32 TFLite {kb['float32_tflite_bytes']:.1f} kB "
        f"({s['smaller_than_float32_tflite']:.2f}x smaller), .keras file "
        f"{kb['keras_file_bytes']:.1f} kB ({s['smaller_than_keras_file']:.2f}x)"
    )
    if s["test_metric"] == "mae":
        print(
            f"  test MAE on {s['test_examples']} examples: TFLite {s['tflite_test_mae']:.4g},"
            f" Keras {s['keras_test_mae']:.4g} ({s['mae_change']:+.3g})",
            file=sys.stdout,
        )
        return
    print(
        f"  test accuracy on {s['test_examples']} examples: TFLite {s['tflite_test_accuracy']:.4f},"
        f" Keras {s['keras_test_accuracy']:.4f} ({s['accuracy_change_points']:+.2f} points)",
        file=sys.stdout,
    )


def _test_score(metric: str, pred: np.ndarray, y: np.ndarray) -> float:
    """``metric`` of predictions ``pred`` for the test targets ``y``: the accuracy of class
    probabilities, or the mean absolute error in the targets' units (``"mae"``)."""
    return score_regression(pred, y).mae if metric == "mae" else accuracy(pred, y)
