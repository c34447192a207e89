"""The OpenAPI document is complete (every operation says its token scope and is summarised), and
docs/api.md is exactly what `python -m posepipe.api.docs` makes from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from posepipe.api import docs

REPO = Path(__file__).resolve().parent.parent


def test_every_operation_is_documented_with_its_scope() -> None:
    document = docs.openapi()
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) >= 20
    for op in operations:
        assert op["summary"] and op["x-scope"] in ("none", "read", "admin"), op
        assert ("security" in op) == (op["x-scope"] != "none"), op
        if op["x-scope"] != "none":
            assert "401" in op["responses"]
    open_routes = [
        path for path, item in document["paths"].items() for op in item.values() if op["x-scope"] == "none"
    ]
    assert open_routes == ["/api/health"]


def test_api_md_is_generated_from_the_openapi_document() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "posepipe.api.docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (REPO / "docs" / "api.md").read_text() == docs.render(docs.openapi())
