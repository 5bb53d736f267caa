"""The checked-in JSON Schemas: in sync with the models, usable by editors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from tests.engine.conftest import REPO

from planpolicy import schemagen
from planpolicy.cli import main
from planpolicy.loader import discover

SCHEMAS = REPO / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    assert schemagen.check(SCHEMAS) == []


def test_schema_check_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--write", "--dir", str(tmp_path)]) == 0
    assert main(["schema", "--check", "--dir", str(tmp_path)]) == 0
    target = tmp_path / "plan_type.v1.json"
    target.write_text(target.read_text().replace("Allowed steps", "Steps"))
    assert main(["schema", "--check", "--dir", str(tmp_path)]) == 1
    assert "plan_type.v1.json: out of date" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(schemagen.generate()))
def test_schemas_are_valid_draft_2020_12_with_descriptions(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    described = re.findall(r'"description": "', (SCHEMAS / name).read_text())
    assert len(described) >= 3


@pytest.mark.parametrize(
    "path", discover([REPO / "policies", REPO / "plan_types"]), ids=lambda p: p.name
)
def test_bundled_files_declare_a_schema_that_accepts_them(path: Path) -> None:
    import yaml

    first = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, f"{path} lacks the yaml-language-server line"
    schema_path = (path.parent / match.group(1)).resolve()
    schema = json.loads(schema_path.read_text())
    for document in yaml.safe_load_all(path.read_text()):
        assert list(Draft202012Validator(schema).iter_errors(document)) == []
