"""Every code block in the README and docs/ runs (the project's rule), and every link resolves.

Each fenced block of ``README.md``, ``CHANGELOG.md`` and ``docs/*.md`` is checked by language:

- ``python``: compiled and its imports resolved (fast), then executed (slow). The blocks of one
  page run in document order in one fresh interpreter (each block in its own namespace), in a
  temporary folder holding the clips the examples name (:data:`SAMPLE_FILES`, cut from the JFK
  recording of the shared data); a page whose blocks talk to ``127.0.0.1:8000`` gets a real
  ``emotivoice serve`` on a free port. A ``DeprecationWarning`` attributed to a block or to
  EmotiVoice's own code is an error: the docs show the current API.
- ``bash``/``sh``/``shell``/``console`` (``$ `` lines): each command line is checked by what it
  runs. ``emotivoice ...`` is parsed by the CLI's own parser (an unknown flag or subcommand
  fails); ``--help``, ``--version``, ``models``, ``languages`` and ``schema`` run in process; the
  cheap commands (``analyze`` of the sample clips, ``export``, ``keys``) run for real in the
  page's interpreter after its earlier blocks (slow). ``make X`` must pass ``make -n X``;
  ``pip install`` may name only extras and packages ``pyproject.toml`` declares; ``curl`` must
  name a route of the FastAPI app with that method; ``export EMOTIVOICE_X=...`` must name a
  setting or a variable the code reads; ``python path/script.py --flag`` a script and flags that
  exist; ``pytest`` test paths and markers that exist; ``bash script.sh`` a script that exists.
  Any other command fails: teach this file to check it.
- ``json`` must parse; ``yaml`` must parse (and in ``docs/service.md`` be valid service
  settings); ``text`` is free. A block without a language fails.

A block may opt out with ``<!-- not-run: reason -->`` on the line(s) right above it; use that
sparingly. Links to files and headings of the repository must exist; inline code spans that
are ``make``, ``pip install`` or ``emotivoice`` commands, repository paths (``tests/...``) or
dotted names (``emotivoice.results.load_analysis``) must name real targets, extras,
subcommands, flags, files, modules and attributes; and the README stays a front page (at most
12 KB).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_BYTES = 12 * 1024
SERVER_ADDRESS = "127.0.0.1:8000"
ITEM_TIMEOUT_S = 240
# name → (seconds of the JFK clip, container, codec); Opus, AAC and MP3 as users record them
SAMPLE_FILES = {
    "call.mp3": (3.0, "mp3", "libmp3lame"),
    "clip.wav": (3.0, "wav", "pcm_s16le"),
    "talk.flac": (3.0, "flac", "flac"),
    "talk.m4a": (3.0, "mp4", "aac"),
    "interviews/interview-1.wav": (2.0, "wav", "pcm_s16le"),
}
# CLI subcommands run for real (in the page's interpreter) when their inputs exist
REAL_RUN = {"analyze", "export", "keys"}
IN_PROCESS = {"models", "languages", "schema"}
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]{2,}")
ENV_OUTSIDE_SETTINGS = ("EMOTIVOICE_DATA_DIR", "EMOTIVOICE_CACHE_DIR", "EMOTIVOICE_CONFIG")


# --- reading the pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    text: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.lang or 'none'}"


@dataclass(frozen=True)
class Command:
    block: Block
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.block.page}:{self.line}"


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their line and opt-out comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and set(closing) == {fence[0]}:
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        else:
            raise AssertionError(f"{_rel(path)}:{i + 1}: code block never closed")
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = _NOT_RUN.match(lines[k]) if k >= 0 else None
        blocks.append(
            Block(
                page=_rel(path),
                line=i + 1,
                lang=opening["lang"].lower(),
                text="\n".join(body) + "\n",
                not_run=marker["reason"] if marker else None,
            )
        )
        i = j + 1
    return blocks


def shell_commands(block: Block) -> list[Command]:
    """The command lines of a shell block (continuations joined; comments and blank lines out)."""
    commands: list[Command] = []
    pending, start = "", 0
    for n, raw in enumerate(block.text.splitlines()):
        line = raw.rstrip()
        if block.lang == "console":
            if not (line.startswith("$ ") or pending):
                continue  # the command's output
            line = line[2:] if line.startswith("$ ") and not pending else line
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if text and not text.startswith("#"):
            commands.append(Command(block, block.line + 1 + start, text))
    return commands


ALL_BLOCKS = [b for page in PAGES for b in read_blocks(page)]
RUN_BLOCKS = [b for b in ALL_BLOCKS if b.not_run is None]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
DATA_LANGS = {"json", "yaml", "yml", "text"}
COMMANDS = [c for b in RUN_BLOCKS if b.lang in SHELL_LANGS for c in shell_commands(b)]


def split_command(text: str) -> list[list[str]]:
    """``text`` as simple commands: split at ``&&``, ``||``, ``;``, ``|``; a final ``&`` dropped;
    leading ``VAR=value`` assignments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in {"&&", "||", ";", "|", "&"}:
            commands.append([])
        else:
            commands[-1].append(token)
    result = []
    for command in commands:
        while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
            command = command[1:]
        if command:
            result.append(command)
    return result


# --- the CLI -------------------------------------------------------------------------------


@functools.cache
def _parser() -> Any:
    from emotivoice.cli import build_parser

    return build_parser()


def cli_argv(tokens: list[str]) -> list[str] | None:
    """The arguments of an ``emotivoice`` command (``.venv/bin/emotivoice``, ``python -m
    emotivoice``), or ``None`` when ``tokens`` run something else."""
    program = tokens[0]
    if program == "emotivoice" or program.endswith("/emotivoice"):
        return tokens[1:]
    if _is_python(program) and tokens[1:3] == ["-m", "emotivoice"]:
        return tokens[3:]
    return None


def _is_python(program: str) -> bool:
    return re.fullmatch(r"(.*/)?python(3(\.\d+)?)?", program) is not None


def _subparsers(parser: Any) -> dict[str, Any]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _resolve_subcommand(argv: list[str]) -> tuple[Any, list[str], list[str]]:
    """The innermost (sub)parser ``argv`` names, the subcommand path and the remaining words."""
    parser, path, rest = _parser(), [], list(argv)
    while rest and rest[0] in _subparsers(parser):
        parser = _subparsers(parser)[rest[0]]
        path.append(rest.pop(0))
    return parser, path, rest


def _option_strings(parser: Any) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def run_cli_in_process(argv: list[str]) -> tuple[int, str]:
    """``emotivoice.cli.main(argv)`` here, with its exit code and its output."""
    from emotivoice.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return int(code or 0), out.getvalue()


@dataclass(frozen=True)
class CliPlan:
    how: str  # "parse", "in-process" or "real"
    why: str = ""


def plan_cli(argv: list[str]) -> CliPlan:
    """How far a documented ``emotivoice`` command is checked."""
    if any(a in ("-h", "--help", "--version") for a in argv):
        return CliPlan("in-process")
    if not argv:
        return CliPlan("parse")
    command = argv[0]
    if command in IN_PROCESS:
        return CliPlan("in-process")
    if command not in REAL_RUN:
        return CliPlan("parse", f"{command} is not cheap to run")
    if any(PLACEHOLDER.fullmatch(a) for a in argv):
        return CliPlan("parse", "has a placeholder")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = _parser().parse_args(argv)
    except SystemExit:
        return CliPlan("parse", "does not parse")  # test_shell_command reports why
    if command == "analyze":
        inputs = [Path(p.rstrip("/")) for p in args.inputs]
        if not all(p.as_posix() in SAMPLE_FILES or _sample_dir(p) for p in inputs):
            return CliPlan("parse", "its input is not one of the sample clips")
        costly = args.explain or args.device == "cuda" or args.model not in ("base", "tiny.en")
        if costly or args.emotion_model != "default" or args.taxonomy:
            return CliPlan("parse", "needs a GPU, a network, another model or an explanation")
    return CliPlan("real")


def _sample_dir(path: Path) -> bool:
    return any(Path(name).parent == path for name in SAMPLE_FILES if "/" in name)


# --- the project's declarations ------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _extras() -> set[str]:
    return set(_pyproject()["project"]["optional-dependencies"])


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _declared_packages() -> set[str]:
    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_requirement_name(r) for r in requirements}


def _markers() -> set[str]:
    declared = _pyproject()["tool"]["pytest"]["ini_options"].get("markers", [])
    return {m.split(":")[0].split("(")[0].strip() for m in declared}


_ROUTES: list[tuple[set[str], re.Pattern[str], str]] = []


def _routes(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[set[str], re.Pattern[str], str]]:
    """(methods, path pattern, path) of every HTTP route of the service app."""
    if not _ROUTES:
        from emotivoice.service.app import create_app
        from emotivoice.service.settings import load_settings

        home = tmp_path_factory.mktemp("routes-home")
        app = create_app(load_settings(home=home), janitor=False)
        paths = {
            path: {m.upper() for m in operations}
            for path, operations in app.openapi()["paths"].items()
        }
        for route in app.routes:  # the pages the OpenAPI schema leaves out
            if getattr(route, "methods", None):
                paths.setdefault(route.path, set()).update(route.methods)
        for path, methods in paths.items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
            _ROUTES.append((methods, re.compile(pattern + "$"), path))
    return _ROUTES


# --- checking one command line ---------------------------------------------------------------


def check_command(tokens: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fail unless ``tokens`` are a command this project documents correctly."""
    program = tokens[0]
    argv = cli_argv(tokens)
    if argv is not None:
        check_cli(argv)
    elif program == "make":
        check_make(tokens[1:])
    elif program == "pip" or program.endswith("/pip") or tokens[1:3] == ["-m", "pip"]:
        check_pip(tokens[tokens.index("install") + 1 :] if "install" in tokens else [])
    elif program == "curl":
        check_curl(tokens[1:], tmp_path_factory)
    elif program == "export":
        for assignment in tokens[1:]:
            check_env(assignment.split("=", 1)[0])
    elif _is_python(program):
        check_python_script(tokens[1:])
    elif program == "pytest" or program.endswith("/pytest"):
        check_pytest(tokens[1:])
    elif program in ("bash", "sh") and len(tokens) > 1:
        assert (REPO / tokens[1]).is_file(), f"no script {tokens[1]}"
    else:
        raise AssertionError(f"tests/test_docs.py does not know how to check {program!r}")


def check_cli(argv: list[str]) -> None:
    parser = _parser()
    try:
        with (
            contextlib.redirect_stderr(io.StringIO()) as err,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            if not any(a in ("-h", "--help", "--version") for a in argv):
                parser.parse_args(argv)
    except SystemExit as exit_:
        raise AssertionError(f"emotivoice {shlex.join(argv)}: {err.getvalue().strip()}") from exit_
    plan = plan_cli(argv)
    if plan.how == "in-process":
        code, output = run_cli_in_process(argv)
        assert code == 0, f"emotivoice {shlex.join(argv)} exited {code}:\n{output[-2000:]}"
        if "--help" in argv or "-h" in argv:
            assert output.startswith("usage: emotivoice"), output[:500]


def check_make(args: list[str]) -> None:
    targets = [a for a in args if not a.startswith("-") and "=" not in a]
    assert targets, "make without a target: name the target"
    for target in targets:
        done = subprocess.run(
            ["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"make -n {target}: {done.stderr.strip()}"


def check_pip(args: list[str]) -> None:
    extras, declared = _extras(), _declared_packages()
    names = [a for a in args if not a.startswith("-")]
    assert names, "pip install without a package"
    for name in names:
        match = re.fullmatch(r"(?P<what>emotivoice|\.|\./?)(\[(?P<extras>[^\]]*)\])?", name)
        if match:
            wanted = {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
            assert wanted <= extras, f"{name}: no extra {sorted(wanted - extras)} in pyproject"
        else:
            package = _requirement_name(name)
            assert package in declared, f"{name}: not a dependency declared in pyproject.toml"
            pins = [
                r
                for r in _all_requirements()
                if _requirement_name(r) == package and "==" in r and "==" in name
            ]
            assert not pins or any(name.replace(" ", "") in p.replace(" ", "") for p in pins), (
                f"{name}: pyproject pins {pins}"
            )


def _all_requirements() -> list[str]:
    project = _pyproject()["project"]
    return [
        *project["dependencies"],
        *(r for e in project["optional-dependencies"].values() for r in e),
    ]


_CURL_DATA = {"-d", "--data", "--data-binary", "--data-raw", "--json", "-F", "--form"}
_CURL_VALUE = {"-H", "--header", "-o", "--output", "-u", "--user", "-w", "--write-out"}


def check_curl(args: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    method, urls, i = None, [], 0
    data = False
    while i < len(args):
        arg = args[i]
        if arg in ("-X", "--request"):
            method, i = args[i + 1].upper(), i + 2
            continue
        if arg in _CURL_DATA:
            data = True
            value = args[i + 1]
            if arg in {"-d", "--data", "--data-raw", "--json"} and value.lstrip().startswith("{"):
                json.loads(value)  # a JSON body must be JSON
            i += 2
            continue
        if arg in _CURL_VALUE:
            i += 2
            continue
        if re.match(r"https?://", arg):
            urls.append(arg)
        i += 1
    assert len(urls) == 1, f"curl needs exactly one URL, got {urls}"
    method = method or ("POST" if data else "GET")
    path = urlsplit(urls[0]).path
    routes = _routes(tmp_path_factory)
    matching = [(methods, p) for methods, pattern, p in routes if pattern.match(path)]
    assert matching, f"no route serves {path}; the app has {sorted({p for _, _, p in routes})}"
    assert any(method in methods for methods, _ in matching), (
        f"{method} {path}: the route takes {sorted(set().union(*(m for m, _ in matching)))}"
    )


def check_env(name: str) -> None:
    from emotivoice.service.settings import Settings

    settings = {f"EMOTIVOICE_{f.upper()}" for f in Settings.model_fields}
    if name in settings:
        return
    assert name in ENV_OUTSIDE_SETTINGS, f"{name} is neither a service setting nor a known variable"
    sources = (p.read_text(encoding="utf-8") for p in (REPO / "src").rglob("*.py"))
    assert any(name in text for text in sources), f"no code reads {name}"


def check_python_script(args: list[str]) -> None:
    assert args and not args[0].startswith("-"), f"python {shlex.join(args)}: name a script"
    script = REPO / args[0]
    assert script.is_file(), f"no script {args[0]}"
    source = script.read_text(encoding="utf-8")
    known, required = _script_options(source)
    flags = [a.split("=")[0] for a in args[1:] if a.startswith("--")]
    for flag in flags:
        if known:
            assert flag in known, f"{args[0]} has no option {flag}; it has {sorted(known)}"
        else:  # no argparse: the script reads sys.argv itself
            assert f'"{flag}"' in source or f"'{flag}'" in source or flag in source, (
                f"{args[0]} does not read {flag}"
            )
    missing = required - set(flags)
    assert not missing, f"{args[0]} requires {sorted(missing)}"


def _script_options(source: str) -> tuple[set[str], set[str]]:
    """The option strings of a script's ``add_argument`` calls, and the required ones."""
    known: set[str] = set()
    required: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            names = [
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value[:1] == "-"
            ]
            known.update(names)
            if any(
                k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value
                for k in node.keywords
            ):
                required.update(n for n in names if n.startswith("--"))
    return known, required


def check_pytest(args: list[str]) -> None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            words = set(re.findall(r"[A-Za-z_]\w*", args[i + 1])) - {"and", "or", "not"}
            assert words <= _markers(), f"unknown markers {sorted(words - _markers())}"
            i += 2
            continue
        if not arg.startswith("-"):
            assert (REPO / arg.split("::")[0]).exists(), f"no test path {arg}"
        i += 1


# --- python blocks: imports (fast) ------------------------------------------------------------


def check_imports(code: str) -> None:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")


# --- running a page's blocks (slow) ----------------------------------------------------------

_DRIVER = r"""
import contextlib, io, json, os, signal, sys, traceback, warnings

items = json.load(open(sys.argv[1]))
results_path = sys.argv[2]
results = {}

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    raise Timeout("timed out")

signal.signal(signal.SIGALRM, on_alarm)
warnings.filterwarnings("error", category=DeprecationWarning, module="(__doc_block__|emotivoice)")
for item in items:
    out = io.StringIO()
    ok, error = True, ""
    signal.alarm(item["timeout"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if item["kind"] == "python":
                code = compile(item["code"], "<" + item["id"] + ">", "exec")
                exec(code, {"__name__": "__doc_block__"})
            else:
                from emotivoice.cli import main
                try:
                    rc = main(item["argv"])
                except SystemExit as e:
                    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if rc:
                    ok, error = False, "exit code %s" % rc
    except BaseException:
        ok, error = False, traceback.format_exc()
    finally:
        signal.alarm(0)
    results[item["id"]] = {"ok": ok, "error": error, "output": out.getvalue()[-3000:]}
    with open(results_path, "w") as f:
        json.dump(results, f)
"""


@dataclass
class PageRun:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str = ""


_PAGE_RUNS: dict[str, PageRun] = {}


def _real_items(page: str) -> list[dict[str, Any]]:
    """What runs in a page's interpreter, in document order: python blocks, cheap CLI lines."""
    items: list[dict[str, Any]] = []
    for block in RUN_BLOCKS:
        if block.page != page:
            continue
        if block.lang == "python":
            items.append({"id": block.id, "kind": "python", "code": block.text})
        elif block.lang in SHELL_LANGS:
            for command in shell_commands(block):
                for tokens in split_command(command.text):
                    argv = cli_argv(tokens)
                    if argv is not None and plan_cli(argv).how == "real":
                        items.append({"id": command.id, "kind": "cli", "argv": argv})
    return items


def _needs_server(page: str) -> bool:
    return any(
        b.page == page and b.lang == "python" and SERVER_ADDRESS in b.text for b in RUN_BLOCKS
    )


def make_samples(folder: Path) -> None:
    """The clips the examples name, cut from the shared data's JFK recording."""
    import numpy as np

    from emotivoice.audio import encode_audio, load_audio

    data = Path(os.environ.get("EMOTIVOICE_DATA_DIR", REPO.parent / "shared" / "data"))
    samples = load_audio(data / "speech" / "jfk.flac").samples
    for name, (seconds, container, codec) in SAMPLE_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        clip = samples[: int(seconds * 16000)].astype(np.float32)
        rate = 16000 if codec != "aac" else 44100
        encode_audio(clip, container, codec, rate=rate, target=path)


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("doc-samples")
    make_samples(folder)
    return folder


@pytest.fixture(scope="session")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A lazily started ``emotivoice serve`` (embedded queue and worker) on a free port."""
    from emotivoice.evaluation.processes import service_env, start_server, stop

    state: dict[str, Any] = {}

    def start() -> int:
        if "port" not in state:
            home = tmp_path_factory.mktemp("doc-server")
            env = service_env(home / "home")
            state["process"], url = start_server(env, home / "serve.log")
            state["port"] = int(url.rsplit(":", 1)[1])
        return int(state["port"])

    yield start
    if "process" in state:
        stop(state["process"])


def run_page(
    page: str, samples_dir: Path, doc_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> PageRun:
    """Run a page's real items once, in a copy of the samples folder; results by item id."""
    if page in _PAGE_RUNS:
        return _PAGE_RUNS[page]
    run = _PAGE_RUNS[page] = PageRun()
    items = _real_items(page)
    folder = tmp_path_factory.mktemp("doc-" + re.sub(r"\W", "-", page))
    shutil.copytree(samples_dir, folder, dirs_exist_ok=True)
    if _needs_server(page):
        port = doc_server()
        for item in items:
            if item["kind"] == "python":
                item["code"] = item["code"].replace(SERVER_ADDRESS, f"127.0.0.1:{port}")
    for item in items:
        item["timeout"] = ITEM_TIMEOUT_S
    (folder / ".items.json").write_text(json.dumps(items))
    results = folder / ".results.json"
    env = dict(os.environ, EMOTIVOICE_HOME=str(folder / ".emotivoice-home"))
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(folder / ".items.json"), str(results)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=ITEM_TIMEOUT_S * max(len(items), 1) + 60,
    )
    if results.exists():
        run.results = json.loads(results.read_text())
    if done.returncode != 0:
        run.failure = f"the interpreter exited {done.returncode}:\n{done.stderr[-3000:]}"
    return run


# --- the tests ----------------------------------------------------------------------------


def test_readme_is_a_front_page() -> None:
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move details into docs/"


def test_every_block_has_a_known_language() -> None:
    known = {"python"} | SHELL_LANGS | DATA_LANGS
    unknown = [f"{b.id}" for b in ALL_BLOCKS if b.lang not in known]
    assert not unknown, f"blocks without a known language (python, bash, json, ...): {unknown}"


def test_opt_outs_are_rare() -> None:
    skipped = [b for b in ALL_BLOCKS if b.not_run is not None]
    assert len(skipped) <= max(3, len(ALL_BLOCKS) // 10), [f"{b.id}: {b.not_run}" for b in skipped]


@pytest.mark.parametrize("block", [b for b in RUN_BLOCKS if b.lang == "python"], ids=lambda b: b.id)
def test_python_block_compiles_and_imports(block: Block) -> None:
    compile(block.text, block.id, "exec")
    check_imports(block.text)


@pytest.mark.parametrize(
    "block", [b for b in RUN_BLOCKS if b.lang in DATA_LANGS], ids=lambda b: b.id
)
def test_data_block_parses(block: Block) -> None:
    if block.lang == "json":
        json.loads(block.text)
    elif block.lang in ("yaml", "yml"):
        import yaml

        data = yaml.safe_load(block.text)
        if block.page == "docs/service.md":
            from emotivoice.service.settings import Settings

            Settings(**data)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.id)
def test_shell_command(command: Command, tmp_path_factory: pytest.TempPathFactory) -> None:
    assignment = re.fullmatch(r"export\s+([A-Za-z_]\w*)=(.*)", command.text)
    if assignment:  # the value may be a command substitution: check the variable's name
        check_env(assignment[1])
        return
    simple = split_command(command.text)
    assert simple, f"{command.id}: nothing to run in {command.text!r}"
    for tokens in simple:
        check_command(tokens, tmp_path_factory)


def test_console_script_runs() -> None:
    script = Path(sys.executable).parent / "emotivoice"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "emotivoice"]
    done = subprocess.run([*program, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("emotivoice "), done.stderr


_REAL = [
    pytest.param(page, item["id"], id=item["id"] + (":emotivoice" if item["kind"] == "cli" else ""))
    for page in dict.fromkeys(b.page for b in RUN_BLOCKS)
    for item in _real_items(page)
]


@pytest.mark.slow
@pytest.mark.parametrize(("page", "item_id"), _REAL)
def test_block_runs(
    page: str,
    item_id: str,
    samples_dir: Path,
    doc_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = run_page(page, samples_dir, doc_server, tmp_path_factory)
    result = run.results.get(item_id)
    assert result is not None, f"{item_id} did not run: {run.failure or 'an earlier item hung'}"
    assert result["ok"], f"{item_id} failed:\n{result['error']}\noutput:\n{result['output']}"


# --- links and inline code ---------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_INLINE = re.compile(r"(?<!`)`(?P<code>[^`]+)`(?!`)")  # may wrap onto the next line


def _prose(path: Path) -> str:
    """The page without its fenced blocks (links and spans in code are not prose)."""
    out, fence = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening["fence"]
        elif (
            fence is not None and line.strip().startswith(fence) and set(line.strip()) == {fence[0]}
        ):
            fence = None
        elif fence is None:
            out.append(line)
    return "\n".join(out)


def _slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.strip().lower().replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(path).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = _slug(match.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_links_resolve(page: Path) -> None:
    broken = []
    for match in _LINK.finditer(_prose(page)):
        target = match["target"]
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {_rel(linked)}")
    assert not broken, broken


_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<md>[^)\s]+)\)|<img\s[^>]*src=\"(?P<html>[^\"]+)\"")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_images_exist(page: Path) -> None:
    """Every picture a page shows (Markdown or ``<img>``) is a PNG in the repository."""
    missing = []
    for match in _IMAGE.finditer(_prose(page)):
        source = match["md"] or match["html"]
        image = (page.parent / source).resolve()
        if re.match(r"[a-z]+:", source) or not image.is_file() or image.suffix != ".png":
            missing.append(source)
        elif not image.read_bytes().startswith(b"\x89PNG"):
            missing.append(f"{source}: not a PNG")
    assert not missing, missing
    if page.name == "README.md":  # the front page shows the UI and the report
        shown = [m["md"] or m["html"] for m in _IMAGE.finditer(_prose(page))]
        assert "docs/img/web-ui-result.png" in shown and "docs/img/report-cover.png" in shown


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_inline_code_names_real_things(page: Path) -> None:
    wrong = []
    for match in _INLINE.finditer(_prose(page)):
        code = " ".join(match["code"].split())
        try:
            if code.startswith("make ") and not code.split()[1].startswith("-"):
                check_make(code.split()[1:])
            elif code.startswith("pip install "):
                check_pip(shlex.split(code)[2:])
            elif code.startswith("emotivoice "):
                _check_inline_cli(shlex.split(code)[1:])
            elif page.name == "CHANGELOG.md":
                continue  # history names files and modules as they were
            elif _REPO_PATH.fullmatch(code):
                if not (REPO / code).exists():
                    raise AssertionError("no such file or folder")
            elif _DOTTED.fullmatch(code.removesuffix("()")):
                _resolve_dotted(code.removesuffix("()"))
        except (AssertionError, ValueError, ImportError) as error:
            wrong.append(f"`{code}`: {error}")
    assert not wrong, wrong


_REPO_PATH = re.compile(r"(src|tests|scripts|research|benchmarks|docs)/[\w./-]*")
_DOTTED = re.compile(r"emotivoice(\.[A-Za-z_]\w*)+")


def _resolve_dotted(name: str) -> None:
    """``emotivoice.x.y.z`` names a module, or an attribute of one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                raise AssertionError(f"{getattr(target, '__name__', target)} has no {attribute!r}")
            target = getattr(target, attribute)
        return


def _check_inline_cli(argv: list[str]) -> None:
    """A subcommand mentioned in prose exists, with every flag it is shown with."""
    parser, path, rest = _resolve_subcommand(argv)
    assert path or (rest and rest[0].startswith("-")), f"no subcommand {argv[:1]}"
    unknown = [a.split("=")[0] for a in rest if a.startswith("-")]
    unknown = [a for a in unknown if a not in _option_strings(parser)]
    assert not unknown, f"emotivoice {' '.join(path)} has no option {unknown}"
