"""Representative samples for int8 calibration: from .npy/.npz files or iterables, shapes checked."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.export.errors import ExportError

CalibrationSource = str | Path | np.ndarray | Mapping[str, np.ndarray] | Iterable[Any]


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _stack(name: str, items: Sequence[np.ndarray], sample_shape: tuple[int, ...]) -> np.ndarray:
    rows = []
    for i, item in enumerate(items):
        arr = _values_checked(name, _as_array(item))
        if arr.shape == (1, *sample_shape):
            arr = arr[0]
        if arr.shape != sample_shape:
            raise _shape_error(name, f"sample {i} has shape {tuple(arr.shape)}", sample_shape)
        rows.append(arr)
    return np.stack(rows).astype(np.float32)


def _shape_error(name: str, got: str, sample_shape: tuple[int, ...]) -> ExportError:
    return ExportError(
        f"calibration data for input '{name}': {got}.",
        expected=f"samples of shape {sample_shape} (the input's shape without the batch dimension), "
        f"stacked as (N, {', '.join(map(str, sample_shape))}), in the PyTorch (NCHW) layout",
        do="save the samples with that shape (np.save / np.savez with one key per input name).",
    )


def load_calibration(source: CalibrationSource, inputs: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Return ``{input name: float32 array (N, *shape[1:])}`` for the model inputs ``{name: full shape}``.

    ``source`` may be a ``.npy`` file or array (one input), a ``.npz`` file or mapping keyed by input
    name (or ``arr_0``, ``arr_1``... in input order), or an iterable of samples, each a tensor/array
    (one input), a sequence of them in input order, or a mapping by input name. Each sample may
    carry a leading batch dimension of 1.
    """
    names = list(inputs)
    sample_shapes = {n: tuple(inputs[n][1:]) for n in names}
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ExportError(f"calibration file {path} does not exist.", do="pass an existing .npy or .npz file.")
        if path.suffix not in (".npy", ".npz"):
            raise ExportError(f"calibration file {path} is neither .npy nor .npz.", do="save samples with numpy.")
        source = _read(path)
    if isinstance(source, np.ndarray) or hasattr(source, "detach"):
        source = {names[0]: _as_array(source)} if len(names) == 1 else _too_few(names)
    if isinstance(source, Mapping):
        data = dict(source)
        if set(data) != set(names) and all(k.startswith("arr_") for k in data) and len(data) == len(names):
            data = {n: data[f"arr_{i}"] for i, n in enumerate(names)}
        missing = [n for n in names if n not in data]
        if missing:
            raise ExportError(
                f"calibration data has no samples for input(s) {missing} (found keys {sorted(data)}).",
                expected=f"one array per model input, keyed {names}",
                do="save the samples with np.savez(path, **{name: array}) using the input names.",
            )
        out = {}
        for n in names:
            arr = _values_checked(n, _as_array(data[n]))
            if arr.ndim == 0 or tuple(arr.shape[1:]) != sample_shapes[n]:
                raise _shape_error(n, f"got an array of shape {tuple(arr.shape)}", sample_shapes[n])
            out[n] = arr.astype(np.float32)
        return _non_empty(out)
    per_input: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for sample in source:
        if isinstance(sample, Mapping):
            parts = [sample[n] for n in names]
        elif isinstance(sample, (list, tuple)):
            parts = list(sample)
        else:
            parts = [sample]
        if len(parts) != len(names):
            raise ExportError(
                f"a calibration sample has {len(parts)} part(s) but the model has {len(names)} input(s).",
                expected=f"one array per input, in the order {names}",
            )
        for n, p in zip(names, parts, strict=True):
            per_input[n].append(p)
    return _non_empty({n: _stack(n, per_input[n], sample_shapes[n]) if per_input[n] else np.empty(0) for n in names})


def _read(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The arrays of a .npy/.npz file (never unpickled objects), or an ExportError saying what is wrong."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ExportError(
            f"cannot read calibration file {path}: {exc}",
            expected="numeric arrays saved with np.save (.npy) or np.savez (.npz); object arrays are refused",
            do="re-save the samples as float arrays (the file may be truncated or hold Python objects).",
        ) from exc


def _too_few(names: list[str]) -> dict[str, np.ndarray]:
    raise ExportError(
        f"a single calibration array was given but the model has {len(names)} inputs {names}.",
        expected="one array per input",
        do="pass a .npz file or a dict keyed by input name.",
    )


def _values_checked(n: str, a: np.ndarray) -> np.ndarray:
    """``a`` if it holds finite numbers only, else an ExportError (checked up front, not by the converter)."""
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ExportError(
            f"calibration data for input '{n}' holds {a.dtype} values, not numbers.",
            expected="numeric arrays (float32 samples in the model's input layout)",
            do="save the representative inputs themselves, e.g. np.save(path, x.astype(np.float32)).",
        )
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ExportError(
            f"calibration data for input '{n}' holds {bad} NaN/Inf value(s).",
            expected="finite values only: int8 quantization ranges come from these samples",
            do="drop or fix the samples with NaN/Inf (np.isfinite(x).all(axis=...)) and save again.",
        )
    return a


def _non_empty(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = {n: (a.shape[0] if a.ndim else 0) for n, a in data.items()}
    if not all(counts.values()) or len(set(counts.values())) != 1:
        raise ExportError(
            f"calibration sample counts per input are {counts}.",
            expected="the same, non-zero number of samples for every input",
        )
    return data


def require_calibration(source: CalibrationSource | None, what: str) -> CalibrationSource:
    """Refuse int8 work without representative samples instead of calibrating on noise."""
    if source is None:
        raise ExportError(
            f"{what} needs representative calibration samples, and none were given.",
            expected="a .npy/.npz file or an iterable of real input samples (a few hundred is typical)",
            do="pass calibration=... (--calib samples.npy); int8 is never calibrated on random noise.",
        )
    return source
