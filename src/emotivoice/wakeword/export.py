"""ONNX export of a trained student, int8 quantisation, and the metadata that marks a file as
an EmotiVoice wake-word model.

The exported graph takes ``(batch, WINDOW_FRAMES, N_MELS)`` log-mel frames named ``mel`` and
returns ``(batch,)`` probabilities named ``score``. Its ``metadata_props`` hold
``emotivoice.wakeword``: a JSON record of the phrase, the threshold and the front end's
constants, which the detector checks before it trusts the file.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.extras import import_extra
from emotivoice.wakeword.features import N_MELS, WINDOW_FRAMES
from emotivoice.wakeword.files import atomic_file
from emotivoice.wakeword.metadata import FORMAT_VERSION, METADATA_KEY, front_end

__all__ = ["export_onnx", "export_run", "quantize_onnx"]

logger = logging.getLogger(__name__)

_OPSET = 17


def _metadata(phrase: str, threshold: float, extra: dict[str, Any]) -> str:
    record = {"format": FORMAT_VERSION, "phrase": phrase, "threshold": round(float(threshold), 4)}
    return json.dumps(record | {"front_end": front_end()} | extra)


def export_onnx(
    model: Any, path: Path, phrase: str, threshold: float, extra: dict[str, Any] | None = None
) -> Path:
    """Write the torch ``model`` (logits) as an ONNX file of probabilities with our metadata."""
    torch = import_extra("torch", "torch", "Exporting a wake-word model")
    onnx = import_extra("onnx", "wakeword", "Exporting a wake-word model to ONNX")

    class Probabilities(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, mel: Any) -> Any:
            return torch.sigmoid(self.net(mel))

    wrapped = Probabilities().eval()
    example = torch.zeros(1, WINDOW_FRAMES, N_MELS)
    with atomic_file(path) as partial, warnings.catch_warnings():
        # the TorchScript exporter: the newer one needs onnxscript, one more dependency, for a
        # graph of plain convolutions that this one exports exactly (tests compare the scores)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped,
            (example,),
            str(partial),
            input_names=["mel"],
            output_names=["score"],
            dynamic_axes={"mel": {0: "batch"}, "score": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,
        )
        proto = onnx.load(str(partial))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, _metadata(phrase, threshold, extra or {})
        proto.producer_name = "emotivoice"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(partial))
    return path


def quantize_onnx(source: Path, target: Path, calibration: np.ndarray | None = None) -> Path:
    """An int8 copy of ``source`` with the same metadata.

    With ``calibration`` (log-mel windows ``(n, WINDOW_FRAMES, N_MELS)`` like those it will
    see), weights and activations are quantised statically (QDQ): about three times faster than
    the float model on one core. Without, only the weights are (dynamic quantisation), which
    onnxruntime runs slower than float for these convolutions; a warning says so.
    """
    onnx = import_extra("onnx", "wakeword", "Quantising a wake-word model")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Windows(CalibrationDataReader):
        def __init__(self, windows: np.ndarray) -> None:
            self.items = iter([{"mel": w[None].astype(np.float32)} for w in windows])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with atomic_file(target) as partial, tempfile.TemporaryDirectory() as folder:
        if calibration is None:
            warnings.warn(
                "No calibration windows: int8 weights only (slower than float on CPU)",
                stacklevel=2,
            )
            quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
        else:
            prepared = Path(folder) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared))
            quantize_static(
                str(prepared),
                str(partial),
                Windows(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        proto = onnx.load(str(partial))
        original = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
        present = {p.key for p in proto.metadata_props}
        for key, value in original.items():
            if key not in present:
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
        onnx.save(proto, str(partial))
    return target


def export_run(run: Path, output: Path, int8: bool = False) -> Path:
    """Export the trained model of a run folder (``model.pt`` + ``config.json``) to ``output``,
    int8-quantised with ``int8``.

    Raises:
        ModelNotFoundError: ``run`` is not a training run folder.
    """
    from emotivoice.errors import ModelNotFoundError
    from emotivoice.wakeword.model import ModelShape, build_model

    torch = import_extra("torch", "torch", "Exporting a wake-word model")
    config_path, weights = run / "config.json", run / "model.pt"
    if not (config_path.is_file() and weights.is_file()):
        raise ModelNotFoundError(
            f"{run} is not a wake-word training run (it needs config.json and model.pt)."
        )
    config = json.loads(config_path.read_text())
    saved: dict[str, Any] = config["options"]["shape"]
    shape: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    model = build_model(ModelShape(**shape))
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    if not int8:
        return export_onnx(model, output, config["phrase"], config["threshold"])
    calibration_path = run / "calibration.npy"
    calibration = np.load(calibration_path) if calibration_path.is_file() else None
    with tempfile.TemporaryDirectory(prefix="emotivoice-export-") as folder:
        float_path = export_onnx(
            model, Path(folder) / "model.onnx", config["phrase"], config["threshold"]
        )
        return quantize_onnx(float_path, output, calibration)
