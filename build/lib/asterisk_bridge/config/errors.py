"""What a failed load reports: every issue, each with file, line, column and key path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    path: str  # dotted key path, e.g. numbers.paris.routing.queue; "" for the document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised with ALL the issues found, so an operator fixes a file in one pass."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues
