"""Root error classes shared by every package (STYLE 2.5).

Errors are grouped by outcome, not by module: the Airflow layer maps them to
"fail now", "retry" or "wait". Messages read ``<where>: <what is wrong>; <how to fix>``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one input field: where, what, and how to fix it."""

    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}; {self.fix}"

    def to_dict(self) -> dict[str, str]:
        """Return the REST error body entry ``{"field", "message", "fix"}``."""
        return {"field": self.field, "message": self.message, "fix": self.fix}


class CollectionBuilderError(Exception):
    """Root of every error raised by the collection builder."""


class InvalidInputError(CollectionBuilderError):
    """Input that can never succeed as given (never retried, HTTP 400, activity INVALID)."""

    def __init__(self, problems: list[FieldProblem] | FieldProblem) -> None:
        self.problems = [problems] if isinstance(problems, FieldProblem) else list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        """Return the REST error body ``{"errors": [...]}``."""
        return {"errors": [problem.to_dict() for problem in self.problems]}


class ConfigError(CollectionBuilderError):
    """A configuration file is wrong; names the file and the field."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        super().__init__(f"{file}: {field}: {message}")


class TransientError(CollectionBuilderError):
    """A failure that may go away on its own: retry later."""


class ProviderUnavailableError(TransientError):
    """The provider answered 5xx, timed out or dropped the connection."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class RateLimitedError(TransientError):
    """The provider asked us to slow down (HTTP 429 or its own rate-limit code)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ProviderError(CollectionBuilderError):
    """The provider refused the request permanently (4xx other than 429); keeps status and body."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message)


class SceneOfflineError(CollectionBuilderError):
    """The scene is in a long-term archive and must be ordered or waited for."""

    def __init__(self, scene_id: str, catalog: str, message: str = "") -> None:
        self.scene_id = scene_id
        self.catalog = catalog
        super().__init__(
            message or f"{scene_id}: offline at catalog {catalog!r}; order it and wait until online"
        )


class IntegrityError(CollectionBuilderError):
    """A file is damaged or incomplete; it must be fetched again and never published."""


class ChecksumMismatchError(IntegrityError):
    """A downloaded file does not match the checksum the catalog gave."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{path}: checksum {actual} does not match the catalog's {expected}; "
            "the partial file was removed, download it again"
        )


class ProcessingError(CollectionBuilderError):
    """A processor could not produce valid outputs from valid inputs."""
