"""Judging what the PDS already stores: ``upload-gate scan`` (backfill) and, later, retro-hunts."""
