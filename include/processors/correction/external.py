"""Running an external correction program (Sen2Cor, LaSRC/Fmask): local command or container.

Configuration (``collections.yaml`` ``processors.correction.options``; see docs/processors.md):

- ``command``: the argument list (never a shell string) with placeholders ``{input}``,
  ``{output}``, ``{aux}`` and ``{scene_id}``; for a local program they are host paths, for a
  container the paths inside it (``/mnt/input/<name>``, ``/mnt/output``, ``/mnt/aux``).
- ``image`` (optional): run ``command`` in this container image with ``engine`` (``docker`` or
  ``podman``): ``<engine> run --rm --name <unique> -v <input dir>:/mnt/input:ro
  -v <output>:/mnt/output -v <aux>:/mnt/aux:ro [--memory <memory>] [--user uid:gid] <image>
  <command...>``.
- ``aux_dir``: the auxiliary data folder (ESA CCI/ECMWF for Sen2Cor, LaSRC's LUTs and
  ancillary data), mounted read-only; ``timeout_s`` (hard limit, default 3 h);
  ``memory`` (container memory hint such as ``8g``); ``env`` (extra environment variables for a
  local command).

The program runs in its own process group without a shell; stdout and stderr are streamed line
by line to the task log and the last lines are kept. On expiry the whole group gets SIGTERM,
then SIGKILL after a grace period (and a container is removed with ``<engine> rm -f``); a
timeout or a non-zero exit raises ``ProcessingError`` carrying the last error lines.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess  # noqa: S404 - argument lists only, never a shell
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar, Literal

from pydantic import Field, field_validator

from include.common.errors import FieldProblem, InvalidInputError, ProcessingError
from include.processors.base import Processor
from include.processors.correction.common import ProcessorOptions, reset_dir

log = logging.getLogger(__name__)

CONTAINER_INPUT = "/mnt/input"
CONTAINER_OUTPUT = "/mnt/output"
CONTAINER_AUX = "/mnt/aux"
KILL_GRACE_S = 5.0
TAIL_LINES = 30
PLACEHOLDERS = ("input", "output", "aux", "scene_id")


class ExternalOptions(ProcessorOptions):
    """Options shared by ``sen2cor`` and ``lasrc``."""

    command: list[str] = Field(default_factory=list)
    image: str | None = None
    engine: Literal["docker", "podman"] = "docker"
    aux_dir: str | None = None
    timeout_s: float = Field(default=10800.0, gt=0)
    memory: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    run_as_user: bool = True
    """Run the container as the current uid:gid, so outputs are not owned by root."""
    min_sun_elevation_deg: float | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Accept a string only as a convenience; it is split like a shell would, never run."""
        return shlex.split(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class ProgramResult:
    """How a program ended."""

    returncode: int
    elapsed_s: float
    tail: tuple[str, ...] = ()
    """The last lines it printed (stdout and stderr interleaved)."""
    error_tail: tuple[str, ...] = ()
    """The last lines it printed on stderr."""


@dataclass(slots=True)
class _Capture:
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pump(stream: IO[bytes], name: str, capture: _Capture, prefix: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip()
        if not line:
            continue
        with capture.lock:
            capture.lines.append(line)
            if name == "stderr":
                capture.errors.append(line)
        log.info("%s.%s %s", prefix, name, line)
    stream.close()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_program(
    argv: Sequence[str],
    *,
    timeout_s: float,
    name: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_timeout: Sequence[str] | None = None,
) -> ProgramResult:
    """Run ``argv`` (no shell) with a hard timeout, streaming its output to the log.

    Args:
        argv: the program and its arguments.
        timeout_s: wall-clock limit; on expiry the process group is killed.
        name: a short name for log lines (``sen2cor``).
        env: extra environment variables.
        cwd: working directory.
        on_timeout: a command run (best effort, 60 s) after a kill, e.g. ``docker rm -f``.

    Returns:
        The exit code, elapsed time and last lines (the caller decides what failure means).

    Raises:
        ProcessingError: the program is not found, cannot start, or ran out of time.
    """
    capture = _Capture()
    started = time.monotonic()
    log.info("%s.start argv=%s timeout_s=%.0f", name, shlex.join(argv), timeout_s)
    try:
        process = subprocess.Popen(  # noqa: S603 - argument list from validated config
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **dict(env or {})},
            start_new_session=True,
        )
    except OSError as err:
        raise ProcessingError(
            f"{name}: cannot start {argv[0]!r}: {err}; install it or fix options.command "
            "(or options.image) in collections.yaml"
        ) from err
    assert process.stdout is not None and process.stderr is not None  # noqa: S101 - PIPE
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, "stdout", capture, name), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "stderr", capture, name), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        returncode = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        _kill_group(process)
        for pump in pumps:
            pump.join(timeout=KILL_GRACE_S)
        if on_timeout:
            try:
                subprocess.run(  # noqa: S603 - fixed engine command
                    list(on_timeout), capture_output=True, timeout=60, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as cleanup_err:
                log.warning("%s.cleanup_failed error=%s", name, cleanup_err)
        elapsed = time.monotonic() - started
        log.error("%s.timeout elapsed_s=%.1f timeout_s=%.0f", name, elapsed, timeout_s)
        raise ProcessingError(
            f"{name}: killed after {timeout_s:.0f} s (options.timeout_s); last lines:\n"
            + "\n".join(capture.lines or ["(no output)"])
        ) from err
    for pump in pumps:
        pump.join(timeout=KILL_GRACE_S)
    elapsed = time.monotonic() - started
    log.info("%s.exit returncode=%d elapsed_s=%.1f", name, returncode, elapsed)
    with capture.lock:
        return ProgramResult(
            returncode=returncode,
            elapsed_s=elapsed,
            tail=tuple(capture.lines),
            error_tail=tuple(capture.errors),
        )


def last_error_lines(result: ProgramResult) -> str:
    """Return the most useful last lines: stderr when there is some, else all output."""
    lines = result.error_tail or result.tail
    return "\n".join(lines[-15:]) or "(no output)"


@dataclass(frozen=True, slots=True)
class Invocation:
    """The command to run and the cleanup to run after a timeout."""

    argv: tuple[str, ...]
    on_timeout: tuple[str, ...] | None
    env: dict[str, str]


def _fill(template: Sequence[str], values: Mapping[str, str]) -> tuple[str, ...]:
    filled: list[str] = []
    for part in template:
        try:
            filled.append(part.format_map(dict(values)))
        except (KeyError, IndexError, ValueError) as err:
            raise InvalidInputError(
                FieldProblem(
                    "options.command",
                    f"{part!r} has an unknown or malformed placeholder ({err})",
                    f"use only {{{'}, {'.join(PLACEHOLDERS)}}}",
                )
            ) from err
    return tuple(filled)


def build_invocation(
    options: ExternalOptions,
    *,
    input_path: Path,
    output_dir: Path,
    scene_id: str,
    default_command: Sequence[str],
    name: str,
) -> Invocation:
    """Return the local or container command for one run.

    Raises:
        InvalidInputError: no command and no image, a bad placeholder, or a missing aux folder.
    """
    template = options.command or list(default_command)
    if not template:
        raise InvalidInputError(
            FieldProblem(
                "options.command",
                f"{name} has no command",
                "set processors.correction.options.command (and image for a container)",
            )
        )
    aux = Path(options.aux_dir).resolve() if options.aux_dir else None
    if aux is not None and not aux.is_dir():
        raise InvalidInputError(
            FieldProblem(
                "options.aux_dir",
                f"{aux} is not a folder",
                f"download {name}'s auxiliary data there, or remove aux_dir",
            )
        )
    if options.image is None:
        values = {
            "input": str(input_path),
            "output": str(output_dir),
            "aux": str(aux or ""),
            "scene_id": scene_id,
        }
        return Invocation(_fill(template, values), None, dict(options.env))
    container = f"cb-{name}-{uuid.uuid4().hex[:12]}"
    values = {
        "input": f"{CONTAINER_INPUT}/{input_path.name}",
        "output": CONTAINER_OUTPUT,
        "aux": CONTAINER_AUX if aux else "",
        "scene_id": scene_id,
    }
    argv = [options.engine, "run", "--rm", "--name", container]
    argv += ["-v", f"{input_path.parent.resolve()}:{CONTAINER_INPUT}:ro"]
    argv += ["-v", f"{output_dir.resolve()}:{CONTAINER_OUTPUT}"]
    if aux is not None:
        argv += ["-v", f"{aux}:{CONTAINER_AUX}:ro"]
    if options.memory:
        argv += ["--memory", options.memory]
    if options.run_as_user and hasattr(os, "getuid"):
        argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
    for key, value in sorted(options.env.items()):
        argv += ["-e", f"{key}={value}"]
    argv.append(options.image)
    argv += _fill(template, values)
    return Invocation(tuple(argv), (options.engine, "rm", "-f", container), {})


class ExternalProcessor(Processor):
    """A correction made by an external program (``sen2cor``, ``lasrc``).

    Idempotent: the program writes into a fresh folder each run; outputs have fixed names.
    """

    task_type: ClassVar[str] = "correction"
    default_command: ClassVar[tuple[str, ...]] = ()
    """The command line when the options give none (empty: the options must give one)."""

    def run_external(
        self, options: ExternalOptions, *, input_path: Path, output_dir: Path, scene_id: str
    ) -> ProgramResult:
        """Empty ``output_dir``, run the configured program on ``input_path``, require exit 0.

        Raises:
            InvalidInputError: no command and no image, a bad placeholder, or no aux folder.
            ProcessingError: the program cannot start, ran out of time or exited non-zero
                (with its last error lines).
        """
        reset_dir(output_dir)
        invocation = build_invocation(
            options,
            input_path=input_path,
            output_dir=output_dir,
            scene_id=scene_id,
            default_command=self.default_command,
            name=self.name,
        )
        result = run_program(
            invocation.argv,
            timeout_s=options.timeout_s,
            name=self.name,
            env=invocation.env,
            on_timeout=invocation.on_timeout,
        )
        if result.returncode != 0:
            raise ProcessingError(
                f"{self.name}: exited with status {result.returncode}; last lines:\n"
                + last_error_lines(result)
            )
        return result
