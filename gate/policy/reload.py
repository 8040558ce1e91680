"""``PolicyHolder``: the policy in force (and its compiled plan), and the only way it changes.

At start-up an invalid policy stops the gate (``load_initial`` raises). Afterwards a change (file edit
seen by ``watch``, or SIGHUP) is parsed and validated in full — including validator hooks such as the
HMA matcher's bank check — before it replaces anything; on any problem the last good policy stays in
force, the problems are logged and ``upload_gate_policy_reloads_total{result="error"}`` counts it. A bad
edit never turns into defaults.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from gate import metrics
from gate.hashing.options import MAX_IMAGE_PIXELS
from gate.policy.load import PolicyError, parse_policy
from gate.policy.model import Policy
from gate.policy.plan import Plan, compile_plan
from gate.watch import FileWatch, every

log = logging.getLogger(__name__)

Validator = Callable[[Policy], Awaitable[list[str]]]


class PolicyHolder:
    def __init__(
        self,
        path: str | Path,
        known_banks: Callable[[], Mapping[str, frozenset[str]]],
        validators: Sequence[Validator] = (),
        *,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.path = Path(path)
        self._known_banks = known_banks
        self._validators = tuple(validators)
        self._file = FileWatch(self.path)
        self._missing = False
        # A process setting the plan's hash options carry (GATE_MAX_IMAGE_PIXELS).
        self._max_image_pixels = max_image_pixels
        self._plan: Plan | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()

    @property
    def plan(self) -> Plan:
        """The policy in force, compiled (one object: a reload swaps both at once)."""
        if self._plan is None:
            raise RuntimeError("PolicyHolder.load_initial() has not run")
        return self._plan

    @property
    def current(self) -> Policy:
        return self.plan.policy

    def add_validator(self, validator: Validator) -> None:
        """Matchers set up after the holder (HMA) register their check here."""
        self._validators += (validator,)

    async def _parse(self) -> Policy:
        stamp = await asyncio.to_thread(self._file.look)
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except OSError as exc:
            raise PolicyError(str(self.path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
        self._file.seen(stamp)
        policy = parse_policy(data, source=str(self.path), known_banks=self._known_banks())
        problems: list[str] = []
        for validator in self._validators:
            problems.extend(await validator(policy))
        if problems:
            raise PolicyError(str(self.path), problems)
        return policy

    def _install(self, policy: Policy) -> None:
        old = self._plan.policy if self._plan is not None else None
        self._plan = compile_plan(policy, max_image_pixels=self._max_image_pixels)
        metrics.policy_in_force(policy.version, old.version if old is not None else None)

    async def load_initial(self) -> Policy:
        """Load the policy once at start-up; raises ``PolicyError`` (the gate stops with its message)."""
        async with self._lock:
            policy = await self._parse()
            self._install(policy)
            log.info("policy %s loaded from %s: %d rules", policy.version, self.path, len(policy.rules))
            return policy

    async def reload(self) -> bool:
        """Re-read the file; True when a new valid policy is in force. Never raises for a bad file."""
        async with self._lock:
            try:
                policy = await self._parse()
            except PolicyError as exc:
                metrics.POLICY_RELOADS.labels(result="error").inc()
                metrics.POLICY_RELOAD_OK.set(0)
                kept = self._plan.version if self._plan else "none"
                log.error("policy reload refused, keeping version %s:\n%s", kept, exc)
                return False
            except Exception:  # a validator hook failing must not kill the reloader either
                metrics.POLICY_RELOADS.labels(result="error").inc()
                metrics.POLICY_RELOAD_OK.set(0)
                log.exception("policy reload failed, keeping the last good policy")
                return False
            changed = self._plan is None or policy.version != self._plan.version
            self._install(policy)
            metrics.POLICY_RELOADS.labels(result="ok").inc()
            metrics.POLICY_RELOAD_OK.set(1)
            if changed:
                log.info("policy %s in force: %d rules", policy.version, len(policy.rules))
            return True

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP → reload (Unix only)."""
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading policy %s", self.path)
        task = asyncio.get_running_loop().create_task(self.reload())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def watch(self, interval: float = 2.0) -> None:
        """Check the file every ``interval`` seconds until cancelled; reload when it changed.

        A moment where the file is missing (an editor between writing and renaming) is skipped rather
        than treated as an (invalid) empty policy."""
        await every(interval, self.reload_if_changed, what=f"policy watch of {self.path}")

    async def reload_if_changed(self) -> bool:
        if await asyncio.to_thread(self._file.look) is None:
            if not self._missing:
                log.warning("policy file %s is missing; the last good policy stays in force", self.path)
            self._missing = True
            return False
        self._missing = False
        if await asyncio.to_thread(self._file.changed) is None:
            return False
        return await self.reload()
