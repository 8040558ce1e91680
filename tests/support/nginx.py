"""How the tests and the benchmarks start Debian's nginx: in the foreground, everything under one root."""

from __future__ import annotations

from pathlib import Path


def command(binary: str, root: Path) -> list[str]:
    """nginx on ``root/nginx.conf``, its prefix and error log in ``root``, not daemonised (the caller
    owns the process)."""
    return [
        binary,
        "-p",
        str(root),
        "-c",
        str(root / "nginx.conf"),
        "-e",
        str(root / "error.log"),
        "-g",
        "daemon off;",
    ]
