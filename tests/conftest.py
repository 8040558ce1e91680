"""Shared fixtures. Every server a test starts listens on 127.0.0.1 with an ephemeral port."""
