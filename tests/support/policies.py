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


def head(
    *, on_unhashable: str = "quarantine", on_matcher_error: str = "reject", hma_banks: str | None = None
) -> str:
    """The top of most test policies, ``RESPONSES`` included: what happens to bytes no rule could judge
    (unhashable ones quarantined, a failing matcher rejects, low-quality and unscannable ones and a
    decision log that is down forward), and ``hma_banks`` (a TOML list) when HMA is asked."""
    hma = "" if hma_banks is None else f"hma_banks = {hma_banks}\n"
    return (
        f"""
on_unhashable = "{on_unhashable}"
on_low_quality = "forward"
on_unscannable = "forward"
on_matcher_error = "{on_matcher_error}"
on_log_failure = "forward"
{hma}"""
        + RESPONSES
    )


# HMA's HMA_BLOCK bank, within 10 bits of PDQ: rejected.
HMA_CLOSE = """
[[rules]]
name = "hma-close"
source = "hma"
banks = ["HMA_BLOCK"]
signal_types = ["pdq"]
max_distance = 10
action = "reject"
"""
