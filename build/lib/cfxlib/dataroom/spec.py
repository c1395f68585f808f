"""``dataroom/manifest.yml``: what the data room holds, by section (validated, line and field in
errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cfxlib.contract.yamlfile import load_model
from cfxlib.core.repo import REPO

SPEC = REPO / "dataroom" / "manifest.yml"

Source = Literal["publication", "table", "deck", "weekly", "model_card", "repository", "run_log"]
NEEDS_PATH = {"publication", "table", "deck", "repository"}


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="File name in the data room (as published where it is a published file).",
    )
    source: Source = Field(alias="from", description="Where the file comes from.")
    path: str | None = Field(None, description="Path for publication, table, deck and repository files.")

    @model_validator(mode="after")
    def _path(self):
        if (self.source in NEEDS_PATH) != (self.path is not None):
            need = "needs" if self.source in NEEDS_PATH else "takes no"
            raise ValueError(f"a '{self.source}' file {need} a path")
        if self.path and (Path(self.path).is_absolute() or ".." in Path(self.path).parts):
            raise ValueError(f"path {self.path!r} must be relative and stay inside its folder")
        return self


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[0-9]{2}-[a-z0-9-]+$", description="Folder name, e.g. 02-reports.")
    title: str
    files: list[FileSpec]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    title: str
    sections: list[Section]

    @model_validator(mode="after")
    def _unique(self):
        paths = [f"{s.id}/{f.name}" for s in self.sections for f in s.files]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"files listed twice: {', '.join(dupes)}")
        return self


def load(path: Path = SPEC) -> Spec:
    return load_model(path, Spec, "schema_version, title, sections")
