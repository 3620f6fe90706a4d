"""The Python example in README.md runs as printed (against a node on a free port)."""

import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_readme_example_runs(node):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using it from Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    assert '"127.0.0.1:50051"' in code
    code = code.replace('"127.0.0.1:50051"', repr(node.address))
    for _ in range(2):  # blocks are immutable: a second run reads the same bytes back
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        size = 2 * 16 * 8 * 128 * 2
        assert out.stdout.splitlines() == ["[None, None, None, None]", "4", str([size] * 4)]
