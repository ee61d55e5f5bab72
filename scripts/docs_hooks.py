"""MkDocs hooks: pages made from the repository's own sources at build time.

* ``api-reference.md``: the HTTP API's reference, from the OpenAPI schema of
  ``xray.api.create_app()`` (the same one ``/openapi.json`` serves), as tables;
* ``index.md``, ``architecture.md``, ``benchmarks.md`` and ``examples.md``: README.md,
  ARCHITECTURE.md, bench/README.md and examples/README.md, with
  their links rewritten for the site (pages in the site stay links; links to source files
  become the file's path).

Nothing is fetched: everything comes from this checkout and the installed package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent

# Repository files shown as site pages, and the page each becomes.
INCLUDED = {
    "README.md": "index.md",
    "ARCHITECTURE.md": "architecture.md",
    "bench/README.md": "benchmarks.md",
    "examples/README.md": "examples.md",
}
# Repository paths that have a page of their own in the site.
PAGE_FOR = INCLUDED


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for source, page in INCLUDED.items():
        text = _rewrite_links((ROOT / source).read_text(), Path(source).parent)
        files.append(File.generated(config, page, content=text))
    files.append(File.generated(config, "api-reference.md", content=api_reference()))
    return files


def _rewrite_links(text: str, base: Path) -> str:
    """Relative links of a repository file, resolved from its folder, for the site."""

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (base / path).as_posix() if path else ""
        resolved = str(Path(resolved)) if resolved else ""
        if resolved in PAGE_FOR:
            return f"[{label}]({PAGE_FOR[resolved]}{'#' + anchor if anchor else ''})"
        if resolved.startswith("docs/"):
            return f"[{label}]({resolved[len('docs/') :]})"
        return f"{label} (`{resolved}`)" if label.strip("`") != resolved else f"`{resolved}`"

    text = re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", replace, text)
    # Images: those under docs/ are in the site.
    return re.sub(r"!\[([^\]]*)\]\(docs/([^)\s]+)\)", r"![\1](\2)", text)


# --- the HTTP API reference -------------------------------------------------------------


def api_reference() -> str:
    from xray.api import create_app

    schema: dict[str, Any] = create_app().openapi()
    lines = [
        "# HTTP API reference",
        "",
        "Generated from the server's OpenAPI schema when the site is built; a running server",
        "serves the same schema at `/openapi.json`, and Swagger UI at `/docs` and ReDoc at",
        "`/redoc` render it interactively. Conventions (authentication, errors, pagination)",
        "are in [HTTP API](http-api.md).",
        "",
    ]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            lines += _operation(method.upper(), path, operation)
    lines += ["## Schemas", ""]
    for name, definition in sorted(schema.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, definition)
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"## `{method} {path}`", ""]
    if operation.get("summary"):
        lines += [f"**{operation['summary']}**", ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {_type(parameter.get('schema', {}))} "
                f"| {'yes' if parameter.get('required') else ''} "
                f"| {_cell(parameter.get('description') or parameter.get('schema', {}).get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Request body (`{media}`): {_type(content.get('schema', {}))}", ""]
    responses = operation.get("responses", {})
    if responses:
        lines += ["| status | meaning | body |", "|---|---|---|"]
        for status, response in responses.items():
            content = response.get("content", {}).get("application/json", {})
            shape = _type(content["schema"]) if "schema" in content else ""
            lines.append(f"| {status} | {_cell(response.get('description', ''))} | {shape} |")
        lines.append("")
    return lines


def _schema(name: str, definition: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if definition.get("description"):
        lines += [_cell(definition["description"]), ""]
    if "enum" in definition:
        lines += ["One of: " + ", ".join(f"`{json.dumps(v)}`" for v in definition["enum"]), ""]
    properties = definition.get("properties", {})
    if properties:
        required = set(definition.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in properties.items():
            lines.append(
                f"| `{field}` | {_type(spec)} | {'yes' if field in required else ''} "
                f"| {_cell(spec.get('description', ''))} |"
            )
        lines.append("")
    return lines


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in spec:
            return " or ".join(_type(s) for s in spec[key])
    kind = spec.get("type")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec:
        extra = spec["additionalProperties"]
        return f"map of {_type(extra) if isinstance(extra, dict) else 'any'}"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    fmt = spec.get("format")
    return f"{kind} ({fmt})" if kind and fmt else str(kind or "any")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
