"""Build hook: compile the SDK's optional C fast path (``xray/sdk/_speedups.c``).

Hatchling has no compiler support of its own; setuptools' ``build_ext`` does the
compiling (the right flags for this interpreter and platform). The extension is
optional: without a C compiler (a slim Docker image, a locked-down machine), or with
``XRAY_SDK_PURE_PYTHON=1`` at install time, the build warns and the package stays pure
Python, and ``@step`` takes its Python path (same behaviour, a higher caller cost).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "xray/sdk/_speedups.c"
MODULE = "xray.sdk._speedups"


class SpeedupsBuildHook(BuildHookInterface):
    """Compiles the extension in place and ships it in the wheel (tagged for the platform)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if os.environ.get("XRAY_SDK_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes"):
            self._say("XRAY_SDK_PURE_PYTHON is set: not building the C fast path")
            return
        try:
            built = self._compile()
        except BaseException as exc:  # SystemExit is how distutils reports a compiler error
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._say(
                f"could not build the C fast path ({exc!r}); the SDK will use its "
                "pure-Python path, which behaves the same and costs more per step"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(built)] = f"xray/sdk/{built.name}"

    def _compile(self) -> Path:
        from setuptools import Distribution, Extension

        root = Path(self.root)
        extension = Extension(MODULE, [SOURCE], optional=False)
        dist = Distribution({"name": "xray-speedups", "ext_modules": [extension]})
        dist.script_name = "hatch_build.py"
        command = dist.get_command_obj("build_ext")
        command.inplace = True
        with tempfile.TemporaryDirectory(prefix="xray-build-") as scratch:
            command.build_temp = scratch
            previous = Path.cwd()
            os.chdir(root)  # build_ext resolves the source and the in-place target from here
            try:
                command.ensure_finalized()
                command.run()
            finally:
                os.chdir(previous)
        built = root / command.get_ext_filename(MODULE)
        if not built.is_file():
            raise FileNotFoundError(built)
        return built

    def _say(self, message: str) -> None:
        print(f"xray build: {message}", file=sys.stderr)
