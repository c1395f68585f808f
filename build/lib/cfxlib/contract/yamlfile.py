"""Hand-edited YAML files validated by a pydantic model, with errors that name line and field.

Used by every file people edit by hand (``fundraising.yaml``, ``alerts.yaml``,
``scheduler/jobs.yml``): a mistake is reported as ``FILE:LINE: column 'FIELD': RULE``, never as
a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cfxlib.contract.issues import InputError, Issue, IssueLog

M = TypeVar("M", bound=BaseModel)


def line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc`` (the deepest one that exists)."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def load_model(path: Path, model: type[M], expected: str) -> M:
    """Read ``path`` and validate it as ``model``.

    ``expected`` describes the top-level keys for the message when the file is not a mapping.
    Raises :class:`InputError` naming the line and field of each problem.
    """
    log = IssueLog()
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        log.add(Issue(name, None, None, f"does not exist (looked for {path})"))
        raise InputError(log, f"cannot read {path}") from None
    except UnicodeDecodeError:
        log.add(Issue(name, None, None, "is not UTF-8 text"))
        raise InputError(log, f"cannot read {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        log.add(
            Issue(name, mark.line + 1 if mark else None, None, f"is not valid YAML: {getattr(exc, 'problem', exc)}")
        )
        raise InputError(log, f"cannot read {path}") from None
    if not isinstance(data, dict):
        log.add(Issue(name, None, None, f"must be a YAML mapping ({expected})"))
        raise InputError(log, f"cannot read {path}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"])
            field = ".".join(str(p) for p in loc) or None
            log.add(Issue(name, line_of(root, loc), field, err["msg"], err.get("input") if loc else None))
        raise InputError(log, f"{path} is invalid") from None
