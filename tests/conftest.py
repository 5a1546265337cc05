import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The tests' own result rows: a frozen copy of the runs this repository committed first (tests/data/results), never
# the repository's results/ folder, which holds whatever runs a user chose to commit; a test that needs rows copies
# these into a temporary folder; the golden report (tests/data/REPORT.md) is what `shadowbench report` makes of them.
FIXTURE_ROWS = REPO / "tests" / "data" / "results"
GOLDEN_REPORT = REPO / "tests" / "data" / "REPORT.md"
FIXTURE_MACHINE = "cpu-amd-epyc-2c-24g"  # the machine of the fixture rows (the CI VM; build ci-cpu-vm)


# llama.cpp's tools are build output keyed by version and flags (like the wheel cache): the tests reuse the box's,
# building a missing one there once, instead of a few minutes per test session
_TOOLS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shadowbench" / "llama.cpp"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # the sha256 cache and any other shadowbench cache go to a temporary folder, never the user's
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("SHADOWBENCH_LLAMA_CPP_TOOLS", str(_TOOLS))


@pytest.fixture
def llama_src(monkeypatch):
    """llama.cpp's sources (the vocab files synthetic LLM weights take their tokenizers from), fetched into the box's
    own cache once, like the tools, not once per test session's temporary cache."""
    from bench import buildflags

    shared = _TOOLS.parent / "llama.cpp-src" / buildflags.LLAMA_CPP_PYTHON_VERSION
    if not (shared / "models" / "ggml-vocab-llama-bpe.gguf").is_file():
        from bench import llamacpp

        with monkeypatch.context() as m:
            m.setenv("XDG_CACHE_HOME", str(_TOOLS.parent.parent))
            assert llamacpp.source_dir() == shared
    monkeypatch.setenv("SHADOWBENCH_LLAMA_CPP_SRC", str(shared))
    return shared


def copy_fixture_rows(dest: Path) -> Path:
    shutil.copytree(FIXTURE_ROWS, dest, dirs_exist_ok=True)
    return dest


@pytest.fixture
def committed_results(tmp_path) -> Path:
    """A results folder holding the fixture rows, in a temporary folder the test may change."""
    return copy_fixture_rows(tmp_path / "results")


# `shadowbench ...` from the tests runs in a folder of its own whose results/ holds the fixture rows, so a command
# without --results-dir reads them and never the repository's results/ (nor writes there)
_CLI_CWD: Path | None = None


@pytest.fixture(autouse=True, scope="session")
def _cli_cwd(tmp_path_factory):
    global _CLI_CWD
    _CLI_CWD = tmp_path_factory.mktemp("cli-cwd")
    copy_fixture_rows(_CLI_CWD / "results")
    yield


@pytest.fixture
def write_suite(tmp_path):
    def write(text: str, name: str = "suite.toml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text))
        return p
    return write


# the code under test: where this process imported it from (the repository, or mutmut's mutants/ copy), so a
# `shadowbench` child runs the same code as the test that starts it
CODE = Path(__import__("bench").__file__).resolve().parent.parent


def run_cli(*args, timeout=600, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **kw.pop("env", {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE), env.get("PYTHONPATH", "")) if p)
    if env.get("MUTANT_UNDER_TEST") == "stats":  # mutmut's coverage pass: a child records nothing it could report
        env["MUTANT_UNDER_TEST"] = ""
    return subprocess.run([sys.executable, "-m", "shadowbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.pop("cwd", _CLI_CWD or REPO), env=env, **kw)


def cost_json(results_dir, args: list[str]) -> dict:
    """`shadowbench cost --json` run in this process (no interpreter start per question)."""
    import contextlib
    import io
    import json

    from shadowbench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["cost", "--json", "--results-dir", str(results_dir), *args])
    assert status == 0, out.getvalue()
    return json.loads(out.getvalue())


TINY_LLM_SUITE = """
[suite]
name = "tiny"

[defaults]
warmups = 1
repetitions = {reps}
threads = 2

[[workloads]]
name = "smol"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 512
tests = {tests}
"""
