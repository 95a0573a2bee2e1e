"""UCR/UEA archive datasets read from the ``.ts`` files that ship inside sktime's wheel.

sktime is *not* imported (nor a hard dependency): the files are located through
``importlib.util.find_spec("sktime")`` and parsed here, so nothing is downloaded and sktime's
own dependency tree is not needed. Install the optional extra ``probekit[timeseries]`` (or
``pip install sktime``) to make them available. Checked in sktime 1.2.0's wheel, which ships
(equal-length, no missing values, no timestamps):

============================  ==========  ========  ==========  ========
registry name                 train+test  length    channels    source
============================  ==========  ========  ==========  ========
``ucr-gunpoint``              50+150      150       1           GunPoint
``ucr-arrowhead``             36+175      251       1           ArrowHead
``ucr-italy-power-demand``    67+1029     24        1           ItalyPowerDemand
``ucr-osuleaf``               200+242     427       1           OSULeaf
``ucr-acsf1``                 100+100     1460      1           ACSF1
``ucr-basic-motions``         40+40       100       6           BasicMotions
============================  ==========  ========  ==========  ========
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from probekit import hookimpl
from probekit.errors import InputFileError, MissingResourceError
from probekit.timeseries import ArchiveDataset

INSTALL_HINT = "Install it with `pip install 'probekit[timeseries]'` (or `pip install sktime`)."


def sktime_data_dir() -> Path | None:
    """Folder of the data files in the installed sktime package, or ``None`` (not imported)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def read_ts_file(path: Path) -> np.ndarray:
    """Series of a ``.ts`` file (sktime/UEA format) as ``(n, n_timesteps, n_channels)`` float64.

    Supports what the archive's equal-length sets use: ``@`` header lines (``#`` comments), then
    one case per line with channels separated by ``:`` and values by ``,``, the class label
    last (when ``@classLabel true``). Timestamps, missing values (``?``) and unequal lengths are
    rejected with a clear error rather than guessed.
    """
    header: dict[str, str] = {}
    cases: list[list[list[float]]] = []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if line.lower() == "@data":
                    in_data = True
                elif line.startswith("@"):
                    key, _, value = line[1:].partition(" ")
                    header[key.lower()] = value.strip().lower()
                continue
            if "?" in line or "(" in line:
                raise InputFileError(
                    f"{path}: line {number} has missing values or timestamps, which this reader "
                    "does not support. Use an equal-length archive set."
                )
            fields = line.split(":")
            if header.get("classlabel", "false").startswith("true"):
                fields = fields[:-1]
            cases.append([[float(v) for v in field.split(",")] for field in fields])
    if not cases:
        raise InputFileError(f"{path}: no @data section with series found.")
    lengths = {len(channel) for case in cases for channel in case}
    widths = {len(case) for case in cases}
    if len(lengths) != 1 or len(widths) != 1:
        raise InputFileError(
            f"{path}: series must have one length and one channel count; got lengths "
            f"{sorted(lengths)[:5]} and channel counts {sorted(widths)}."
        )
    return np.asarray(cases, dtype=np.float64).transpose(0, 2, 1)


class UCRDataset(ArchiveDataset):
    """Base of the archive sets read from sktime's package data."""

    #: Folder and file stem in sktime's ``datasets/data``.
    archive_name: str

    def read_archive(self) -> tuple[np.ndarray, np.ndarray]:
        folder = sktime_data_dir()
        if folder is None:
            raise MissingResourceError(
                f"{self.name}: the {self.archive_name} files ship inside the sktime package, "
                f"which is not installed. {INSTALL_HINT}"
            )
        paths = [folder / self.archive_name / f"{self.archive_name}_{part}.ts"
                 for part in ("TRAIN", "TEST")]
        for path in paths:
            if not path.is_file():
                raise MissingResourceError(
                    f"{self.name}: {path} is missing from the installed sktime; this sktime "
                    f"version does not ship {self.archive_name}. Install sktime>=0.24."
                )
        train, test = (read_ts_file(p) for p in paths)
        return train, test


class GunPoint(UCRDataset):
    """UCR/UEA ``GunPoint``: 200 series x 150 steps, 1 channel."""

    name = "ucr-gunpoint"
    archive_name = "GunPoint"
    description = "UCR/UEA GunPoint (200 series x 150 steps, 1 channel); from sktime"


class ArrowHead(UCRDataset):
    """UCR/UEA ``ArrowHead``: 211 series x 251 steps, 1 channel."""

    name = "ucr-arrowhead"
    archive_name = "ArrowHead"
    description = "UCR/UEA ArrowHead (211 series x 251 steps, 1 channel); from sktime"


class ItalyPowerDemand(UCRDataset):
    """UCR/UEA ``ItalyPowerDemand``: 1096 series x 24 steps, 1 channel."""

    name = "ucr-italy-power-demand"
    archive_name = "ItalyPowerDemand"
    description = "UCR/UEA ItalyPowerDemand (1096 series x 24 steps, 1 channel); from sktime"


class OSULeaf(UCRDataset):
    """UCR/UEA ``OSULeaf``: 442 series x 427 steps, 1 channel."""

    name = "ucr-osuleaf"
    archive_name = "OSULeaf"
    description = "UCR/UEA OSULeaf (442 series x 427 steps, 1 channel); from sktime"


class ACSF1(UCRDataset):
    """UCR/UEA ``ACSF1``: 200 series x 1460 steps, 1 channel."""

    name = "ucr-acsf1"
    archive_name = "ACSF1"
    description = "UCR/UEA ACSF1 (200 series x 1460 steps, 1 channel); from sktime"


class BasicMotions(UCRDataset):
    """UCR/UEA ``BasicMotions``: 80 series x 100 steps, 6 channels."""

    name = "ucr-basic-motions"
    archive_name = "BasicMotions"
    description = "UCR/UEA BasicMotions (80 series x 100 steps, 6 channels); from sktime"


UCR_DATASETS = (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, ACSF1, BasicMotions)


@hookimpl
def register_datasets():
    return list(UCR_DATASETS)
