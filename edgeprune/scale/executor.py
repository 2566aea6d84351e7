"""Running the steps of a sweep: on Ray (tasks with resources, retries, results as they finish) or serially
in this process. One interface, so the sweep's driver loop is the same either way."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.extras import require


@dataclass(frozen=True)
class Refused:
    """A step refused by edgeprune (bad input, not a flaky failure): returned as a value, so it is not retried."""

    type: str
    message: str


class StepRefused(EdgepruneError):
    """A step of a point was refused (its ``EdgepruneError``, raised again on the driver)."""


def guarded(fn: Callable) -> Callable:
    """``fn`` returning :class:`Refused` instead of raising an ``EdgepruneError`` (retrying would not help)."""

    def step(*args: Any) -> Any:
        refused = next((a for a in args if isinstance(a, Refused)), None)
        if refused is not None:  # a step it depends on was refused
            return refused
        try:
            return fn(*args)
        except EdgepruneError as exc:
            return Refused(type(exc).__name__, str(exc))

    step.__name__ = step.__qualname__ = fn.__name__
    return step


def unwrap(value: Any) -> Any:
    if isinstance(value, Refused):
        raise StepRefused(f"{value.type}: {value.message}")
    return value


@dataclass(eq=False)  # a handle: hashed by identity
class Lazy:
    """A call of the serial executor, run when first waited for (so points are recorded one by one) and once."""

    fn: Callable
    args: tuple[Any, ...]
    retries: int
    ran: bool = False
    value: Any = None
    error: BaseException | None = None

    def run(self) -> Lazy:
        if self.ran:
            return self
        self.ran = True
        args = []
        for a in self.args:
            if isinstance(a, Lazy):
                if a.run().error is not None:  # a step it depends on failed
                    self.error = a.error
                    return self
                a = a.value
            args.append(a)
        for attempt in range(self.retries + 1):
            try:
                self.value = unwrap(guarded(self.fn)(*args))
                return self
            except Exception as exc:  # reported per point by the driver, after the retries
                if attempt == self.retries or isinstance(exc, StepRefused):
                    self.error = exc
        return self


@dataclass
class Serial:
    """Each call runs in this process, up to ``1 + retries`` times, the latest submitted first (depth first:
    a point's measurement right after its model is prepared)."""

    retries: int = 1
    name: str = "serially in this process"

    def call(self, fn: Callable, *args: Any, resource: str | None = None) -> Lazy:
        return Lazy(fn, args, self.retries)

    def wait(self, pending: Sequence[Lazy]) -> list[Lazy]:
        return [pending[-1].run()]

    def get(self, handle: Lazy) -> Any:
        if handle.run().error is not None:
            raise handle.error
        return handle.value

    def share(self, value: Any) -> Any:
        """``value`` as an argument for many calls (here: itself)."""
        return value

    def cancel(self, pending: Sequence[Lazy]) -> None:
        """Nothing to stop: a call not waited for never runs."""


@dataclass
class RayExecutor:
    """Calls are Ray tasks: one CPU each, plus one unit of ``resource`` (a board, an emulator slot) when given;
    an exception is retried ``retries`` times (on any node), then reported."""

    ray: Any
    retries: int = 1
    name: str = "on Ray"
    _remote: dict[Callable, Any] = field(default_factory=dict)

    def call(self, fn: Callable, *args: Any, resource: str | None = None) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(guarded(fn))
        options: dict[str, Any] = {"max_retries": self.retries, "retry_exceptions": True}
        if resource is not None:
            options["resources"] = {resource: 1}
        return self._remote[fn].options(**options).remote(*args)

    def wait(self, pending: Sequence[Any]) -> list[Any]:
        done, _ = self.ray.wait(list(pending), num_returns=1)
        return done

    def get(self, ref: Any) -> Any:
        try:
            return unwrap(self.ray.get(ref))
        except self.ray.exceptions.RayTaskError as exc:
            raise (getattr(exc, "cause", None) or exc.as_instanceof_cause()) from None

    def share(self, value: Any) -> Any:
        """``value`` put in the object store once, for many calls (each would otherwise send its own copy)."""
        return self.ray.put(value)

    def cancel(self, pending: Sequence[Any]) -> None:
        """Stop tasks whose results are no longer wanted (queued ones never start)."""
        for ref in pending:
            self.ray.cancel(ref)


@contextlib.contextmanager
def ray_executor(
    address: str | None, resources: dict[str, float], retries: int, num_cpus: int | None = None
) -> Iterator[RayExecutor]:
    """Ray connected to ``address`` (or ``RAY_ADDRESS``), else started here with ``resources`` and stopped
    after; a Ray already initialised in this process (a test, a notebook) is used as it is."""
    ray = require("ray", "scale", "running a sweep on Ray")
    address = address or os.environ.get("RAY_ADDRESS") or None
    started = False
    if not ray.is_initialized():
        if address:
            _reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, resources=resources, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EdgepruneError(
                f"cannot {'reach the Ray cluster at ' + address if address else 'start Ray here'}: {exc}",
                expected="a running cluster (`ray start --head`) at --address / RAY_ADDRESS, or none for a local Ray",
                fix="check the address (HOST:6379 or ray://HOST:10001), or run with --serial",
            ) from exc
        started = True
    where = f"on the Ray cluster at {address}" if address else "on Ray (local)"
    try:
        yield RayExecutor(ray, retries, where)
    finally:
        if started:
            ray.shutdown()


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on (Ray itself would keep retrying for minutes)."""
    hostport = address.split("://", 1)[-1]
    if hostport == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise EdgepruneError(
            f"nothing answers at the Ray address {address}: {exc}",
            expected="the head node's HOST:6379 (`ray start --head`) or ray://HOST:10001",
            fix="start the cluster or correct --address / RAY_ADDRESS; without an address Ray starts here",
        ) from exc
