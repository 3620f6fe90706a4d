"""Builds ems._ems with the project's CMake, so `pip install .` and `make build` compile the
same code with the same flags. Metadata lives in pyproject.toml.

Environment:
  EMS_CMAKE_BUILD_DIR  reuse a configured build tree (e.g. build/) instead of a fresh one
  EMS_CMAKE_ARGS       extra arguments for the CMake configure step
  EMS_BUILD_JOBS       parallel jobs (default 2)
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = pathlib.Path(
            os.environ.get("EMS_CMAKE_BUILD_DIR") or pathlib.Path(self.build_temp) / "cmake"
        ).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        if not (build_dir / "CMakeCache.txt").exists():
            generator = ["-G", "Ninja"] if shutil.which("ninja") else []
            subprocess.check_call(
                ["cmake", "-S", str(ROOT), "-B", str(build_dir), *generator,
                 "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DEMS_BUILD_BENCHMARKS=OFF",
                 f"-DEMS_PYTHON={sys.executable}",
                 *shlex.split(os.environ.get("EMS_CMAKE_ARGS", ""))]
            )
        jobs = os.environ.get("EMS_BUILD_JOBS", "2")
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_ems", "-j", jobs])
        built = build_dir / "python" / "ems" / pathlib.Path(self.get_ext_filename(ext.name)).name
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, dest)


setup(ext_modules=[CMakeExtension("ems._ems")], cmdclass={"build_ext": CMakeBuild})
