"""Progress of long commands: rewritten in place on a terminal, a line now and then elsewhere, and the
final count said once."""

from __future__ import annotations

import io

from gate.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_now_and_then_and_the_final_count_once() -> None:
    out = io.StringIO()
    progress = Progress("re-wrapping", 1000, stream=out, every=3600)
    for done in range(200, 1001, 200):
        progress(done)
    progress.finish()
    assert out.getvalue() == "re-wrapping: 200/1000 (20%)\nre-wrapping: 1000/1000 (100%)\n"


def test_the_last_line_is_not_repeated() -> None:
    out = io.StringIO()
    progress = Progress("re-wrapping", 3, stream=out)
    progress(3)
    progress.finish()
    assert out.getvalue() == "re-wrapping: 3/3 (100%)\n"


def test_a_terminal_sees_every_step_on_one_line() -> None:
    out = Terminal()
    progress = Progress("re-wrapping", 400, stream=out, every=3600)
    progress(200)
    progress(400)
    progress.finish()
    assert out.getvalue() == "re-wrapping: 200/400 (50%)\rre-wrapping: 400/400 (100%)\r\n"
