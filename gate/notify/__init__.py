"""Outgoing notifications: signed webhooks on quarantine, reject and review decisions."""
