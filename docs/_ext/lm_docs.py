"""Pages generated at build time from the repository's own files, so they cannot drift from it.

Directives (Markdown pages write them as ```` ```{lm-presets} ```` fences):

- ``lm-presets``: the table of :data:`lightly_matrix.presets.PRESETS`, with the authors' file and
  line that ``presets.py`` records beside each value.
- ``lm-results KIND FILE``: a table from a file in ``benchmarks/results/`` (KIND: ``digits``,
  ``transfer``, ``demo-reference``, ``loss-cost``, ``data-startup``, ``markdown``).
- ``lm-api PACKAGE``: the API reference of a package from its docstrings: its ``__all__`` names,
  or, for a package without ``__all__``, each public module.
- ``lm-cli COMMAND``: the sphinx-argparse reference of a ``lightly-matrix`` sub-command of
  :data:`lightly_matrix.cli.SUBCOMMANDS`; each sub-command's module provides ``add_arguments``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import io
import json
import tokenize
from pathlib import Path
from typing import Any

from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

# --- CLI: sphinx-argparse imports ``lm_docs`` and calls ``parser_<command>`` ----------------------


def _subcommands() -> dict[str, tuple[str, str]]:
    from lightly_matrix.cli import SUBCOMMANDS

    return SUBCOMMANDS


def _parser(command: str) -> argparse.ArgumentParser:
    module, help_text = _subcommands()[command]
    parser = argparse.ArgumentParser(prog=f"lightly-matrix {command}", description=help_text)
    importlib.import_module(module).add_arguments(parser)
    return parser


def __getattr__(name: str) -> Any:
    if name.startswith("parser_") and name[len("parser_") :] in _subcommands():
        return lambda: _parser(name[len("parser_") :])
    raise AttributeError(name)


def parser_main() -> argparse.ArgumentParser:
    """The top-level parser with its sub-commands listed (none loaded)."""
    from lightly_matrix.cli import build_parser

    return build_parser([])


class CliDirective(Directive):
    """``lm-cli COMMAND``: the sphinx-argparse reference of one sub-command (``main``: the top)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list:
        command = self.arguments[0]
        if command != "main" and command not in _subcommands():
            raise self.error(f"lm-cli: {command!r} is not a lightly-matrix sub-command")
        prog = "lightly-matrix" + ("" if command == "main" else f" {command}")
        lines = ["```{argparse}", ":module: lm_docs", f":func: parser_{command}", f":prog: {prog}"]
        lines += [":nosubcommands:"] if command == "main" else []
        return _parse(self, [*lines, "```"])


# --- API ------------------------------------------------------------------------------------


def api_lines(package: str) -> list[str]:
    """A package with ``__all__``: its public names; one without: each public module."""
    import pkgutil

    module = importlib.import_module(package)
    # Docstrings are reStructuredText: autodoc runs inside eval-rst, not as a MyST directive.
    if hasattr(module, "__all__"):
        # The package's docstring, a summary table of its public names (autosummary), then each
        # name in full (autodoc), in the order of ``__all__``.
        lines = ["```{eval-rst}", f".. automodule:: {package}", "", ".. autosummary::", ""]
        lines += [f"   {name}" for name in module.__all__]
        for name in module.__all__:
            obj = getattr(module, name)
            kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "data"
            lines += ["", f".. auto{kind}:: {name}"]
            lines += ["   :members:", "   :show-inheritance:"] if kind == "class" else []
        return [*lines, "```"]
    if not hasattr(module, "__path__"):
        return ["```{eval-rst}", f".. automodule:: {package}", "   :members:", "```"]
    lines = ["```{eval-rst}", f".. automodule:: {package}", "```", ""]
    for info in pkgutil.iter_modules(module.__path__, prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        lines += [f"## `{info.name}`", "", "```{eval-rst}", f".. automodule:: {info.name}"]
        lines += ["   :members:", "```", ""]
    return lines


class ApiDirective(Directive):
    required_arguments = 1
    has_content = False

    def run(self) -> list:
        return _parse(self, api_lines(self.arguments[0]))


# --- presets ----------------------------------------------------------------------------------


def _comments(path: Path) -> dict[int, str]:
    """Line number -> text of the comment on that line."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("# ").strip()
    return out


def _key_lines(node: ast.AST) -> dict[str, int]:
    """Key -> line of each string-keyed entry of the dict literals directly under ``node``."""
    lines: dict[str, int] = {}
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                lines[key.value] = value.end_lineno or key.lineno
    return lines


def _preset_sources(path: Path) -> dict[tuple[str, str | None], dict[str, int]]:
    """(preset, method or None for ``common``) -> key -> line, and module-level dicts by name."""
    tree = ast.parse(path.read_text())
    found: dict[tuple[str, str | None], dict[str, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[(target.id, None)] = _key_lines(node.value)
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Preset"):
            continue
        first = node.args[0] if node.args else None
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        name = first.value
        keywords = {kw.arg: kw.value for kw in node.keywords}
        found[(name, None)] = _key_lines(keywords.get("common", ast.Dict(keys=[], values=[])))
        methods = keywords.get("methods")
        if isinstance(methods, ast.Dict):
            for key, value in zip(methods.keys, methods.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    found[(name, key.value)] = _key_lines(value)
    return found


def _method_defaults(method: str) -> dict[str, Any]:
    """The method class's own defaults (its paper run), where the class declares them."""
    from lightly_matrix.methods import METHOD_CLASSES

    return dict(getattr(METHOD_CLASSES.get(method), "recipe", None) or {})


def _lr(settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    merged = {**defaults, **settings}
    if "lr" not in merged:
        return "method default"
    lr, batch = merged["lr"], merged.get("batch_size")
    text = f"{lr:g}"
    if merged.get("lr_scaling") == "none":
        text += " (absolute)"
    elif merged.get("lr_scaling", "linear" if defaults else None) == "linear":
        text += " per 256" + (f" = {lr * batch / 256:g}" if batch else "")
    return text + ("" if "lr" in settings else " (method default)")


def _schedule(settings: dict[str, Any]) -> str:
    parts = []
    if "epochs" in settings:
        parts.append(f"{settings['epochs']} epochs")
    if "warmup_epochs" in settings:
        parts.append(f"warm-up {settings['warmup_epochs']:g}")
    if "final_lr" in settings:
        parts.append(f"final lr {settings['final_lr']:g}")
    if "lr_interval" in settings:
        parts.append(f"per {settings['lr_interval']}")
    return ", ".join(parts) or "method default"


def presets_table() -> list[str]:
    """Per preset: a table of each method's run, then every setting with the authors' source."""
    from lightly_matrix import presets

    path = Path(presets.__file__)
    comments, sources = _comments(path), _preset_sources(path)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    module_dicts = {name: lines for (name, method), lines in sources.items() if method is None}
    out = [f"Generated from `{rel}` when these pages were built.", ""]
    for preset in presets.PRESETS.values():
        out += [f"### `{preset.name}`", "", preset.description + ".", ""]
        rows = [["method", "backbone", "global batch", "lr", "schedule", "views"]]
        details = []
        for method in preset.methods:
            settings = preset.settings(method)
            rows.append(
                [
                    f"`{method}`",
                    f"`{settings['backbone']}`" if "backbone" in settings else "method default",
                    str(settings.get("batch_size", "method default")),
                    _lr(settings, _method_defaults(method)),
                    _schedule(settings),
                    f"`{settings['transform']}`" if "transform" in settings else "method default",
                ]
            )
            # A key's line: the method's own dict, then the preset's common dict, then a
            # module-level dict that holds the key (the shared M-MAE and digits settings).
            lookups = [sources.get((preset.name, method), {}), module_dicts.get(preset.name, {})]
            lookups += [lines for name, lines in module_dicts.items() if name.startswith("_")]
            table = [["setting", "value", "source (presets.py line)"]]
            for key, value in settings.items():
                line = next((lk[key] for lk in lookups if key in lk), None)
                note = f"{comments[line]} (:{line})" if line in comments else "no source recorded"
                table.append([f"`{key}`", f"`{value!r}`", note.replace("|", "\\|")])
            details += [f":::{{dropdown}} `{method}`: every setting and its source", ""]
            details += [*_markdown_table(table), ":::", ""]
        out += [*_markdown_table(rows), "", *details]
    return out


class PresetsDirective(Directive):
    has_content = False

    def run(self) -> list:
        return _parse(self, presets_table())


# --- results ----------------------------------------------------------------------------------


def _first_paragraph(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text().strip().split("\n\n")[0]
    return "" if text.startswith("|") else text


def digits_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    probes = [("knn_top1", "kNN"), ("linear_top1", "linear"), ("few_label_top1", "10 labels/class")]
    head = ["method", "backbone", "seeds"]
    for _, label in probes:
        head += [f"{label} (%)", "vs random"]
    rows = [[*head, "train (s)"]]
    for row in data["summary"]:
        cells = [row["method"], row.get("backbone", ""), str(row.get("seeds", ""))]
        for key, _ in probes:
            cells += [row.get(key, ""), row.get(f"{key}_gain", "")]
        rows.append([*cells, str(row.get("train_wall_s", ""))])
    return _markdown_table(rows)


def transfer_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    keys = [("AP_bb", "AP_bb"), ("AP50_bb", "AP50_bb"), ("AP_mk", "AP_mk")]
    head = ["backbone init", "seeds"]
    for _, label in keys:
        head += [label, "vs random"]
    rows = [[*head, "train (min)", "wall (min)"]]
    for row in data["rows"]:
        cells = [row["row"], str(row["seeds"])]
        for key, _ in keys:
            cells += [row.get(key, ""), row.get(f"{key}_gain", "")]
        rows.append([*cells, row.get("train_min", ""), row.get("wall_min", "")])
    return _markdown_table(rows)


def demo_reference_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    names = {"knn_top1": "kNN", "linear_top1": "linear", "few_label_top1": "10 labels/class"}
    rows = [["measure", "random init", f"{data['label']}, {data['epochs']} epochs", "change"]]
    for key, probe in data["probes"].items():
        name = f"{names.get(key, key)} top-1 (%)"
        rows.append([name, probe["before"], probe["after"], probe["change"]])
    random_row, *ours = data.get("transfer", [])
    for row in ours:
        for key, label in (("AP_bb", "box AP"), ("AP_mk", "mask AP")):
            rows.append([f"shapes {label}", random_row[key], row[key], ""])
    seeds = ", ".join(map(str, data["seeds"]))
    return [f"Seeds {seeds}, mean ± std ({data['source']}).", "", *_markdown_table(rows)]


def loss_cost_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    shapes = sorted({(r["m"], r["d"]) for r in data}, key=lambda s: (s[1], s[0]))
    dense = {"matrix_ssl": "matrix_ssl_dense", "matrix_ssl_exact": "matrix_ssl_dense"}
    dense["matrix_entropy"] = "matrix_entropy_dense"
    by = {(r["loss"], r["m"], r["d"]): r for r in data}
    losses = list(dict.fromkeys(r["loss"] for r in data))
    rows = [["loss", *[f"m={m}, d={d}" for m, d in shapes]]]
    for loss in losses:
        cells = [loss]
        for m, d in shapes:
            r = by.get((loss, m, d))
            if r is None or r.get("seconds") is None:
                cells.append("not run")
                continue
            text = f"{r['seconds']:.4f} s, {r['peak_mb']:.0f} MB"
            ref = by.get((dense.get(loss, ""), m, d))
            if ref and ref.get("seconds"):
                text += f" (**{ref['seconds'] / r['seconds']:.0f}x**)"
            cells.append(text)
        rows.append(cells)
    header = _first_paragraph(path.with_suffix(".md"))
    note = "(Nx): speed-up over the straightforward d x d form in the same run."
    return [header, "", *_markdown_table(rows), "", note]


def data_startup_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    seconds, files = data["startup"]["seconds"], data["startup"]["files"]
    rows = [["measure", "seconds"]] + [[k, f"{v:.2f}"] for k, v in seconds.items()]
    tp = data["throughput"]
    rows2 = [["workers", *tp["images_per_s"]]]
    for workers in next(iter(tp["images_per_s"].values())):
        rows2.append([workers, *[f"{v[workers]:.1f}" for v in tp["images_per_s"].values()]])
    load = ", ".join(f"{x:.1f}" for x in data.get("load_average_at_start", []))
    return [
        f"{data['cpu']}, {data['cores']} cores, load average at start {load}; "
        f"{files['large']:,} files (large) and {files['small']:,} (small).",
        "",
        *_markdown_table(rows),
        "",
        f"Images/s of one epoch ({tp['images']} images, batch {tp['batch']}, two 224-px views):",
        "",
        *_markdown_table(rows2),
    ]


def references_table(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    metrics = data["metrics"]
    out = [data["description"], ""]
    for protocol, info in data["protocols"].items():
        rows = [["method", "pretrain epochs", *metrics, "source"]]
        for ref in data["references"]:
            if ref["protocol"] != protocol:
                continue
            values = ["-" if ref[m] is None else f"{ref[m]:g}" for m in metrics]
            source = f"[{ref['source']['title']}]({ref['source']['url']})"
            if ref["source"].get("kind"):
                source += f" ({ref['source']['kind']})"
            rows.append([ref["method"], str(ref["pretrain_epochs"]), *values, source])
        out += [f"**`--protocol {protocol}`** (`{info['config']}`): {info['detector']}.", ""]
        out += [*_markdown_table(rows), ""] if len(rows) > 1 else []
        if info.get("missing"):
            out += [info["missing"], ""]
    return out


def _markdown_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows[1:]]
    return out


KINDS = {
    "digits": digits_table,
    "transfer": transfer_table,
    "demo-reference": demo_reference_table,
    "loss-cost": loss_cost_table,
    "data-startup": data_startup_table,
    "markdown": lambda path: path.read_text().splitlines(),
    "references": references_table,
}


class ResultsDirective(Directive):
    required_arguments = 2
    has_content = False

    def run(self) -> list:
        kind, name = self.arguments
        # Results live in benchmarks/results/; other files are named from the repository root.
        path = RESULTS / name if (RESULTS / name).exists() else ROOT / name
        if kind not in KINDS or not path.exists():
            raise self.error(f"lm-results: unknown kind {kind!r} or missing file {path}")
        self.state.document.settings.record_dependencies.add(str(path))
        lines = KINDS[kind](path)
        source = f"Source: `{path.relative_to(ROOT)}`."
        if kind in ("digits",):
            lines = [_first_paragraph(path.with_name("results.md")), "", *lines]
        return _parse(self, [*lines, "", source])


def _parse(directive: Directive, lines: list[str]) -> list:
    from docutils import nodes

    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source="lm_docs"), 0, container)
    return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("lm-presets", PresetsDirective)
    app.add_directive("lm-results", ResultsDirective)
    app.add_directive("lm-cli", CliDirective)
    app.add_directive("lm-api", ApiDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
