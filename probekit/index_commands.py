"""``probekit index …``: build and inspect on-disk feature indexes (:mod:`probekit.index`).

``probekit index build --train DATA --features EXTRACTOR --out INDEX_DIR [--mode approximate]
[--shards N] …`` extracts the training features chunk by chunk (run it again after a kill: it
goes on at the next chunk), collapses duplicates and writes the shards; ``probekit index info
INDEX_DIR`` prints what an index holds. A probe searches it with ``--set index=INDEX_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from probekit.cli import Handler, _Parser, command, load_input


def _load_train(path: str):
    """A ``.npy`` is memory-mapped (read chunk by chunk); other formats are read whole."""
    from probekit.validation import check_compatible_sets, check_input_path

    p = check_input_path(path, who="index build", name="--train")  # a pipe would never end
    train = None
    if p.suffix.lower() == ".npy" and p.is_file():
        import contextlib

        import numpy as np

        # an object array, an empty file...: the common reader below gives its error
        with contextlib.suppress(ValueError, EOFError, OSError):
            train = np.load(p, mmap_mode="r", allow_pickle=False)
    if train is None:
        train = load_input(path, what="train")
    # numbers, 2 to 4 dimensions, no empty axis: or one line saying what is wrong
    check_compatible_sets({"--train": train}, who="index build")
    _check_finite(train)
    return train


def _check_finite(train, rows: int = 1 << 16) -> None:
    """Refuse NaN or inf before anything is written, reading a memory-mapped set in chunks."""
    import numpy as np

    from probekit.errors import ValidationError

    if train.dtype.kind != "f":
        return
    for start in range(0, len(train), rows):
        chunk = np.asarray(train[start:start + rows])
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if bad.any():
            raise ValidationError(
                f"index build: --train must be finite; row {start + int(np.argmax(bad))} holds "
                "NaN or inf. Drop or repair those rows."
            )


@command("index", help="build or inspect an on-disk feature index for neighbour search")
def _index_cmd(p: argparse.ArgumentParser) -> Handler:
    from probekit.cliargs import add_settings_arguments
    from probekit.index import IndexBuildSettings

    sub = p.add_subparsers(dest="index_command", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    text = ("extract training features in resumable chunks into float32 shards on disk, with "
            "an IVF index per shard in approximate mode")
    b = sub.add_parser("build", help=text, description=text)
    b.add_argument("--train", required=True,
                   help="training set: .npy (memory-mapped), .npz, .pt, .csv or image folder")
    b.add_argument("--out", required=True, help="index directory (resumed when partial)")
    add_settings_arguments(b, IndexBuildSettings)
    b.add_argument("--overwrite", action="store_true",
                   help="delete an existing index in --out and build again")
    b.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    b.set_defaults(index_handler=_build)
    i = sub.add_parser("info", help="print an index's manifest (feature space, rows, shards)",
                       description="print an index's manifest (feature space, rows, shards)")
    i.add_argument("path", metavar="INDEX_DIR", help="index directory")
    i.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    i.set_defaults(index_handler=_info)

    def run(args: argparse.Namespace) -> int:
        return args.index_handler(args)

    return run


def _build(args: argparse.Namespace) -> int:
    from probekit.base import build_settings
    from probekit.cliargs import settings_from_args
    from probekit.index import IndexBuildSettings, build_index
    from probekit.progress import quiet_progress
    from probekit.validation import check_output_dir

    check_output_dir(args.out, who="index build", name="--out")  # before any work
    settings = build_settings(IndexBuildSettings, "index build",
                              settings_from_args(IndexBuildSettings, args))
    train = _load_train(args.train)
    with quiet_progress(args.quiet):
        out = build_index(train, args.out, settings, source=args.train,
                          overwrite=args.overwrite, quiet=args.quiet)
    if not args.quiet:
        _print_summary(out)
    return 0


def _print_summary(path: Path) -> None:
    from probekit.index import FeatureIndex

    index = FeatureIndex.open(path, mode="exact")
    m = index.manifest
    dup = m["duplicates"]
    ivf = m.get("ivf")
    print(f"probekit index: {index.n_reference} rows ({m['n_rows_given']} given; "
          f"{dup.get('n_exact', 0)} exact and {dup.get('n_near', 0)} near duplicates "
          f"collapsed) of {index.dim} features {index.feature_space.describe()} in "
          f"{len(m['shards'])} shard(s) at {path}"
          + (f"; IVF-{ivf['kind']} with {ivf['nlist']} lists" if ivf else "; exact mode"))


def _info(args: argparse.Namespace) -> int:
    from probekit.index import FeatureIndex

    index = FeatureIndex.open(args.path, mode="exact")
    if args.json:
        print(json.dumps(index.manifest, indent=2))
    else:
        _print_summary(Path(args.path))
    return 0
