"""upload-gate: an upload gate for AT Protocol PDS hosts."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed package's version (pyproject.toml is its one home)."""
    try:
        return version("upload-gate")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"
