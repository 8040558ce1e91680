"""Policy text the test suites and benchmarks share."""

# The answers most test policies give: a test that checks an error name or status reads it here.
RESPONSES = """
[responses.reject]
status = 400
error = "BlobRejected"
message = "rejected by policy"

[responses.quarantine]
status = 400
error = "BlobHeld"
message = "held for review"
"""
