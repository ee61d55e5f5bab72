"""Read the Dockerfile, .dockerignore, Compose and Kubernetes files, and start the image's
exact command outside Docker.

There is no Docker engine on the machines this suite runs on, so the image is emulated as
closely as plain Python allows:

* the build context is the repository filtered by ``.dockerignore`` (Docker's rules:
  patterns match a path or any of its parents, later rules win, ``!`` re-includes);
* the builder stage's ``COPY`` instructions pick files from that context, and the wheel's
  packages (``[tool.hatch.build.targets.wheel]``) are taken from what was copied;
* the final stage's ``ENV``, ``WORKDIR`` and ``CMD`` give the process its environment,
  working directory and argv; ``PYTHONPATH`` points at the staged packages, so a file the
  image would miss is missed here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT
from xray.cli._supervisor import ServerProcess, ServerStartError, start_server_process

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
CONFIG_EXAMPLE = REPO_ROOT / "xray.config.example.yaml"

# The documented values, which the deployment files must keep.
SEED_DATABASE_URL = "postgresql+asyncpg://postgres:postgres@db:5432/xray"


# ------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    """One ``FROM`` stage: its base image, its name and its instructions in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """The ``ENV`` values, in order (later wins), without ``$VAR`` expansion."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            tokens = shlex.split(args)
            if "=" not in tokens[0]:  # legacy form: ENV KEY value with spaces
                values[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, _, value = token.partition("=")
                values[key] = value
        return values

    def cmd(self) -> list[str]:
        """The exec-form ``CMD`` (a JSON array); shell form is not accepted."""
        args = self.last("CMD")
        assert args is not None, "the final stage has no CMD"
        argv = json.loads(args)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        return argv

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The ``HEALTHCHECK`` options and its exec-form command."""
        args = self.last("HEALTHCHECK")
        assert args is not None, "the final stage has no HEALTHCHECK"
        options: dict[str, str] = {}
        rest = args.strip()
        while rest.startswith("--"):
            option, _, rest = rest.partition(" ")
            key, _, value = option[2:].partition("=")
            options[key] = value
            rest = rest.strip()
        keyword, _, command = rest.partition(" ")
        assert keyword.upper() == "CMD", f"HEALTHCHECK must use CMD, got {keyword!r}"
        argv = json.loads(command)
        assert isinstance(argv, list)
        return options, argv


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """Split a Dockerfile into stages of ``(INSTRUCTION, arguments)``."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comments inside a continuation are dropped
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        args = re.sub(r"\s+", " ", args).strip()
        if instruction == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
            continue
        assert stages, f"{instruction} before the first FROM"
        stages[-1].instructions.append((instruction, args))
    return stages


# ---------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Go's filepath.Match plus Docker's "**": '*' and '?' stop at '/', '**' crosses it.
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    """``(exclude?, regex)`` per line of ``.dockerignore``, in order."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exclude, _pattern_regex(pattern)))
    return rules


def in_build_context(relative: str, rules: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker sends ``relative`` (a POSIX path) to the builder."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exclude, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = exclude
    return not excluded


def build_context_files(root: Path = REPO_ROOT) -> set[str]:
    """Every file of the working tree that ends up in the build context."""
    rules = dockerignore_rules()
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        # Never descend into the big local-only trees; they are excluded anyway or not.
        dirnames[:] = [d for d in dirnames if d not in {".git", ".venv", "node_modules"}]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if in_build_context(rel, rules):
                files.add(rel)
    return files


# ------------------------------------------------------------------- the staged image


@dataclass(frozen=True)
class StagedImage:
    """The image's Python packages, console scripts, environment, workdir and command."""

    site: Path
    bin: Path
    workdir: Path
    env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]

    def process_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The container's environment: the image's ENV, then ``extra`` (Compose/K8s)."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("XRAY_") and k not in {"DATABASE_URL", "PYTHONPATH"}
        }
        env = {**base, **{k: v for k, v in self.env.items() if k != "PATH"}, **extra}
        # The image puts its venv first on PATH; here the staged scripts come first, then
        # this interpreter's venv (for the dependencies the builder installed).
        env["PATH"] = os.pathsep.join(
            [str(self.bin), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        )
        env["PYTHONPATH"] = str(self.site)
        return env


def stage_image(target: Path) -> StagedImage:
    """Lay out what the image holds: the builder's COPYs, the wheel's packages, scripts."""
    builder, final = _stages()
    context = build_context_files()
    src = target / "src"
    for args in builder.all("COPY"):
        if args.startswith("--from"):
            continue
        *sources, dest = shlex.split(args)
        # Relative destinations resolve against the builder's WORKDIR, here `src`.
        into = src / os.path.normpath(dest).lstrip("/") if os.path.normpath(dest) != "." else src
        for source in sources:
            source = os.path.normpath(source)
            if source in context:  # a file: into a directory, or to a new name
                to = into / Path(source).name if dest.endswith(("/", ".")) else into
                to.parent.mkdir(parents=True, exist_ok=True)
                to.write_bytes((REPO_ROOT / source).read_bytes())
                continue
            # A directory: its content is copied into the destination.
            copied = sorted(f for f in context if f.startswith(source + "/"))
            assert copied, f"COPY {source}: nothing of it is in the build context"
            for rel in copied:
                to = into / rel[len(source) + 1 :]
                to.parent.mkdir(parents=True, exist_ok=True)
                to.write_bytes((REPO_ROOT / rel).read_bytes())
    pyproject = tomllib.loads((src / "pyproject.toml").read_text())
    packages: list[str] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    site = target / "site"
    site.mkdir()
    for package in packages:
        assert (src / package / "__init__.py").is_file(), f"the wheel's {package}/ is not copied"
        for file in (src / package).rglob("*"):
            if file.is_file():
                to = site / file.relative_to(src)
                to.parent.mkdir(parents=True, exist_ok=True)
                to.write_bytes(file.read_bytes())
    bin_dir = target / "bin"
    bin_dir.mkdir()
    for script, entry in pyproject["project"].get("scripts", {}).items():
        module, _, attr = entry.partition(":")
        shim = bin_dir / script
        # What pip writes for a console script.
        shim.write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {attr}\nsys.exit({attr}())\n"
        )
        shim.chmod(0o755)
    workdir_arg = final.last("WORKDIR") or "/"
    workdir = target / workdir_arg.strip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    _, health = final.healthcheck()
    return StagedImage(site, bin_dir, workdir, final.env(), final.cmd(), health)


def _stages() -> tuple[Stage, Stage]:
    stages = parse_dockerfile()
    assert len(stages) >= 2, "the Dockerfile must be multi-stage"
    final = stages[-1]
    copies = [a for a in final.all("COPY") if a.startswith("--from=")]
    assert copies, "the final stage copies nothing from a builder stage"
    builder_name = copies[0].split()[0].split("=", 1)[1]
    builder = next(s for s in stages if s.name == builder_name)
    return builder, final


# -------------------------------------------------------------- Compose and Kubernetes


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (list or mapping form) as a dict, uninterpolated."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def interpolate_compose(value: str, environ: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` interpolation."""

    def replace(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return environ.get(name) or default
        if op == "-":
            return environ.get(name, default)
        return environ.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", replace, value)


def kubernetes_documents() -> dict[str, dict[str, Any]]:
    """Every manifest in deploy/kubernetes, by ``Kind/name`` (the kustomization too)."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                name = document.get("metadata", {}).get("name", path.name)
                documents[f"{document['kind']}/{name}"] = document
    return documents


def container_env(
    container: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]
) -> dict[str, str]:
    """A container's ``env`` with ``secretKeyRef`` resolved from ``secrets``."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        key = (ref["name"], ref["key"])
        if key in secrets:
            env[item["name"]] = secrets[key]
        else:
            assert ref.get("optional"), f"secret {key} is required but not given"
    return env


# ---------------------------------------------------------------- running the process


@dataclass
class RunningProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    supervised: ServerProcess

    def log(self) -> str:
        return self.supervised.log()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as Docker and Kubernetes stop a container; the exit code."""
        code = self.supervised.stop(timeout)
        if self.supervised.killed:
            raise AssertionError(f"the server ignored SIGTERM for {timeout}s:\n{self.log()}")
        return code


@contextmanager
def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    port: int,
    log_path: Path,
    timeout: float = 60.0,
    wait_for: str = "/readyz",
) -> Iterator[RunningProcess]:
    """Start ``argv`` and yield once ``wait_for`` answers 200; kill it if still running."""
    try:
        supervised = start_server_process(
            argv,
            base_url=f"http://127.0.0.1:{port}",
            log_path=log_path,
            env=env,
            cwd=cwd,
            ready_path=wait_for,
            timeout=timeout,
        )
    except ServerStartError as exc:
        raise AssertionError(str(exc)) from None
    try:
        yield RunningProcess(supervised.base_url, supervised.process, log_path, supervised)
    finally:
        supervised.kill()


def run_to_completion(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot command (a Job's container, a HEALTHCHECK) and capture its output."""
    return subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class TCPForwarder:
    """A loopback TCP port that refuses connections until ``open()``, then forwards to
    ``target``: a database that "comes up" after the API started, as in a first
    ``docker-compose up``."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.2)
        self._server = server
        thread = threading.Thread(target=self._accept, name="tcp-forwarder", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closing.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                pipe = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                pipe.start()
                self._threads.append(pipe)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        try:
            while not self._closing.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()


def missing_from(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` lacks something of ``expected`` (a deep subset check).

    Mappings: every key of ``expected`` must be in ``actual`` with a matching value.
    Lists of mappings with a ``name``: matched by name; other mappings: some item of
    ``actual`` contains them; anything else: present in ``actual``.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '.'}: expected a mapping, got {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += missing_from(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        problems = []
        for index, item in enumerate(expected):
            if isinstance(item, dict) and "name" in item:
                same = [a for a in actual if isinstance(a, dict) and a.get("name") == item["name"]]
                if not same:
                    problems.append(f"{path}[name={item['name']}]: missing")
                else:
                    problems += missing_from(item, same[0], f"{path}[name={item['name']}]")
            elif isinstance(item, dict):
                if not any(not missing_from(item, a, path) for a in actual):
                    problems.append(f"{path}[{index}]: no item contains {item!r}")
            elif item not in actual:
                problems.append(f"{path}[{index}]: {item!r} missing")
        return problems
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]
