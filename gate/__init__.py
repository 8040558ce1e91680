"""upload-gate: an upload gate for AT Protocol PDS hosts."""
