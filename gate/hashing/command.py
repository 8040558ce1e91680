"""``upload-gate hash FILE…``: print every hash the gate computes for files, to build and check banks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gate.hashing.hasher import hash_bytes
from gate.hashing.options import HashOptions
from gate.types import Hashes, PdqHash, Variant


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "hash",
        help="print the hashes of files (SHA-256, MD5, SHA-1, CID, media type, PDQ with quality)",
        description="Print every hash the gate computes for each FILE, as the gate computes it: the "
        "exact digests, the CID the PDS would store it under, its media type and each PDQ hash with its "
        "quality. Use it to build local bank rows and to see why a file matched or did not.",
        epilog="""\
examples:
  upload-gate hash photo.jpg
  upload-gate hash --dihedral --json *.png > hashes.json
  upload-gate hash --full-resolution photo.jpg     as HMA hashes it""",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON document (a list) on stdout")
    parser.add_argument("--dihedral", action="store_true", help="all 8 PDQ rotations / flips")
    parser.add_argument("--phash", action="store_true", help="also pHash (needs the imagehash extra)")
    parser.add_argument("--dhash", action="store_true", help="also dHash (needs the imagehash extra)")
    parser.add_argument(
        "--full-resolution",
        action="store_true",
        help="hash every pixel as HMA does (slower) instead of the gate's reduced fast path",
    )
    parser.add_argument(
        "--min-quality",
        type=int,
        default=HashOptions().min_pdq_quality,
        metavar="N",
        help="PDQ quality below which an image is reported unhashable (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = HashOptions(
        dihedral=args.dihedral, phash=args.phash, dhash=args.dhash, min_pdq_quality=args.min_quality
    )
    documents: list[dict[str, object]] = []
    failed = 0
    for path in args.files:
        try:
            body = path.read_bytes()
        except OSError as exc:
            failed += 1
            reason = exc.strerror or type(exc).__name__
            print(f"upload-gate hash: {path}: {reason}", file=sys.stderr)
            documents.append({"file": str(path), "error": reason})
            continue
        hashes = hash_bytes(body, options, full_resolution=args.full_resolution)
        if args.json:
            documents.append(to_json(path, hashes))
        else:
            print(to_text(path, hashes, first=len(documents) == 0))
            documents.append({})
    if args.json:
        json.dump(documents, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failed else 0


def to_json(path: Path, hashes: Hashes) -> dict[str, object]:
    return {"file": str(path), **hashes.to_json()}


def to_text(path: Path, hashes: Hashes, *, first: bool) -> str:
    rows: list[tuple[str, str]] = [
        ("media_type", " + ".join(hashes.media_types) or hashes.media_type),
        ("size", str(hashes.size)),
        ("sha256", hashes.sha256),
        ("md5", hashes.md5),
        ("sha1", hashes.sha1),
        ("cid", hashes.cid),
    ]
    if hashes.width is not None:
        rows.append(("dimensions", f"{hashes.width}x{hashes.height}"))
    if hashes.frames is not None and hashes.frames > 1:
        rows.append(("frames", str(hashes.frames)))
    for pdq in hashes.pdq:
        rows.append((_pdq_label(pdq), f"{pdq.hex}  quality {pdq.quality}"))
    if hashes.phash is not None:
        rows.append(("phash", hashes.phash))
    if hashes.dhash is not None:
        rows.append(("dhash", hashes.dhash))
    if hashes.unhashable is not None:
        rows.append(("unhashable", f"{hashes.unhashable.value}: {hashes.unhashable_detail}"))
    elif hashes.is_image is False:
        rows.append(("pdq", "none (not an image the gate can decode)"))
    width = max(len(label) for label, _ in rows)
    lines = [("" if first else "\n") + str(path)]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)


def _pdq_label(pdq: PdqHash) -> str:
    """``pdq``, ``pdq frame 3``, ``pdq displayed rotate270``, ``pdq rotate90`` (a dihedral variant),
    ``pdq as_hma`` (HMA's own hash of a CMYK or palette picture)..."""
    words = ["pdq"]
    if pdq.frame:
        words.append(f"frame {pdq.frame}")
    if pdq.variant in (Variant.DISPLAYED, Variant.AS_HMA):
        words.append(pdq.variant.value)
    if pdq.transform != "original":
        words.append(pdq.transform)
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    """The ``hash`` command on its own (``python -m gate.hashing.command FILE…``)."""
    parser = argparse.ArgumentParser(prog="upload-gate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["hash", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
