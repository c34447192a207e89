"""docs/api.md from the OpenAPI document: `python -m posepipe.api.docs` writes it, `--check` compares.

tests/test_api_docs.py runs the check, so the Markdown can never drift from the routes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posepipe.api.app import OPENAPI_URL, create_app
from posepipe.settings import Settings

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")


def openapi() -> dict[str, Any]:
    # Building the app opens nothing (the lifespan does), so any settings will do.
    return create_app(Settings()).openapi()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        kinds = [_type(s) for s in schema["anyOf"]]
        return " \\| ".join(dict.fromkeys(kinds))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"map of {_type(extra) if isinstance(extra, dict) else 'any'}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _anchor(method: str, path: str) -> str:
    return "".join(ch for ch in f"{method}-{path}".lower() if ch.isalnum() or ch in "-_")


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(schema: dict[str, Any]) -> str:
    if "default" not in schema:
        return ""
    value = schema["default"]
    return f"`{json.dumps(value)}`"


def render(doc: dict[str, Any]) -> str:
    out = [
        "# posepipe REST API",
        "",
        "<!-- Generated from the OpenAPI document by `python -m posepipe.api.docs`; do not edit by hand. -->",
        "",
        f"Version {doc['info']['version']}. The machine-readable document is served at `{OPENAPI_URL}`.",
        "",
        doc["info"].get("description", "").strip(),
        "",
        "## Endpoints",
        "",
        "| method | path | token scope | what |",
        "|---|---|---|---|",
    ]
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    for path, method, op in operations:
        anchor = (
            f"{method}-{path}".lower().replace("/", "").replace("{", "").replace("}", "").replace(".", "")
        )
        scope, summary = op.get("x-scope", "none"), _cell(op.get("summary", ""))
        out.append(f"| {method.upper()} | [`{path}`](#{anchor}) | {scope} | {summary} |")
    tags: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, method, op in operations:
        tags.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag, ops in tags.items():
        out += ["", f"## {tag.capitalize()}"]
        for path, method, op in ops:
            out += _operation(path, method, op)
    out += ["", "## Schemas"]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += _schema(name, schema)
    return "\n".join(out).rstrip() + "\n"


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    anchor = _anchor(method, path)
    out = ["", f'<a id="{anchor}"></a>', "", f"### {method.upper()} `{path}`", ""]
    out.append(f"{op.get('summary', '')}. Token scope: **{op.get('x-scope', 'none')}**.")
    if op.get("description"):
        out += ["", " ".join(op["description"].split())]
    params = op.get("parameters", [])
    if params:
        out += [
            "",
            "| parameter | in | type | required | default | description |",
            "|---|---|---|---|---|---|",
        ]
        for p in params:
            schema = p.get("schema", {})
            out.append(
                f"| `{p['name']}` | {p['in']} | {_type(schema)} | {'yes' if p.get('required') else 'no'} | "
                f"{_default(schema)} | {_cell(p.get('description', schema.get('description', '')))} |"
            )
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            if media == "multipart/form-data":
                fields = ", ".join(f"`{k}` ({_type(v)})" for k, v in schema.get("properties", {}).items())
                out += ["", f"Request body: `{media}` with {fields}."]
            else:
                out += ["", f"Request body: `{media}`, {_type(schema)}."]
    out += ["", "| status | meaning | body |", "|---|---|---|"]
    for code, response in op.get("responses", {}).items():
        contents = response.get("content", {})
        bodies = []
        for media, content in contents.items():
            schema = content.get("schema")
            bodies.append(f"`{media}`" + (f" {_type(schema)}" if schema else ""))
        out.append(f"| {code} | {_cell(response.get('description', ''))} | {', '.join(bodies)} |")
    return out


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = ["", f"### {name}", ""]
    if schema.get("description"):
        out += [" ".join(schema["description"].split()), ""]
    if "enum" in schema:
        return [*out, "One of " + ", ".join(f"`{v}`" for v in schema["enum"]) + "."]
    required = set(schema.get("required", []))
    out += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        default = f" Default {_default(spec)}." if _default(spec) else ""
        out.append(
            f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
            f"{_cell(spec.get('description', ''))}{default} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is not current")
    parser.add_argument("--output", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    text = render(openapi())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m posepipe.api.docs", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
