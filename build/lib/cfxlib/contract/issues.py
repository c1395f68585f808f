"""Validation findings: where a rule was broken, which rule, and by what value."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cfxlib.core.errors import UserError

MAX_SHOWN_VALUE = 60


@dataclass(frozen=True, order=True)
class Issue:
    """One broken rule in one place of the input.

    ``line`` is the 1-based line of a CSV file (the header is line 1) or the 1-based row of a
    Parquet file; ``None`` when the rule concerns the whole file.
    """

    file: str
    line: int | None
    column: str | None
    rule: str
    value: object = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.column:
            parts.append(f"column '{self.column}'")
        parts.append(self.rule)
        text = ": ".join(parts)
        if self.value is not None:
            text += f" (value {_show(self.value)})"
        return text


def _show(value: object) -> str:
    text = repr(str(value))
    if len(text) > MAX_SHOWN_VALUE:
        text = text[: MAX_SHOWN_VALUE - 4] + "...'" + f" [{len(str(value)):,} characters]"
    return text


@dataclass
class IssueLog:
    """Collects every issue; keeps the first ``keep`` in detail and counts all of them."""

    keep: int = 20
    shown: list[Issue] = field(default_factory=list)
    total: int = 0
    by_rule: Counter = field(default_factory=Counter)

    def add(self, issue: Issue) -> None:
        self.total += 1
        self.by_rule[(issue.file, issue.column, issue.rule)] += 1
        if len(self.shown) < self.keep:
            self.shown.append(issue)

    def add_unshown(self, file: str, column: str | None, rule: str, count: int) -> None:
        """Count ``count`` further issues of one rule that were not fetched in detail."""
        if count > 0:
            self.total += count
            self.by_rule[(file, column, rule)] += count

    def extend(self, issues) -> None:
        for issue in issues:
            self.add(issue)

    def __bool__(self) -> bool:
        return self.total > 0

    def report(self) -> str:
        """The first issues in full, then how many more there are and of which rules."""
        lines = [str(issue) for issue in self.shown]
        hidden = self.total - len(self.shown)
        if hidden > 0:
            lines.append(f"... and {hidden:,} more issue(s). Counts by file, column and rule:")
            for (file, column, rule), n in self.by_rule.most_common():
                lines.append(f"  {n:>9,}  {file}  {column or '-'}  {rule}")
        return "\n".join(lines)


class InputError(UserError):
    """Raised when input data breaks the contract. Carries the collected issues."""

    def __init__(self, log: IssueLog, context: str = "input data is invalid"):
        self.log = log
        super().__init__(f"{context}: {log.total:,} issue(s)\n{log.report()}")
