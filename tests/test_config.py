"""Suite validation: every bad file gets one line naming the file, the key and what was expected; exit status 2."""
import pytest

from bench.config import load_suite
from bench.errors import ConfigError

from .conftest import REPO, run_cli

GOOD = """
[suite]
name = "t"
[defaults]
repetitions = 2
[[workloads]]
name = "w"
kind = "llm"
model = "bundled:smollm2"
tests = ["pp16", "tg8"]
"""


def test_quick_suite_validates():
    r = run_cli("validate", REPO / "suites" / "quick.toml")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_good_suite_loads_frozen(write_suite):
    s = load_suite(write_suite(GOOD))
    w = s.workloads[0]
    assert (w.repetitions, w.warmups, w.tests) == (2, 1, ("pp16", "tg8"))
    assert w.params["n_ctx"] == 2048 and w.params["flash_attn"] is True
    with pytest.raises(AttributeError):
        w.repetitions = 5  # frozen
    with pytest.raises(TypeError):
        w.params["n_ctx"] = 1  # read-only mapping


@pytest.mark.parametrize("change, key, expected", [
    # unknown key
    (('tests = ["pp16", "tg8"]', 'tests = ["pp16"]\nbogus = 1'), "workloads[0].bogus", "one of the known keys"),
    # wrong type
    (('repetitions = 2', 'repetitions = "two"'), "defaults.repetitions", "an integer >= 1"),
    # missing model file
    (('"bundled:smollm2"', '"models/nope.gguf"'), "workloads[0].model", "an existing model file"),
    # repetitions < 1
    (('repetitions = 2', 'repetitions = 0'), "defaults.repetitions", "an integer >= 1"),
    # unknown kind
    (('kind = "llm"', 'kind = "llama"'), "workloads[0].kind", "one of"),
    # malformed test
    (('["pp16", "tg8"]', '["pp16", "fast"]'), "workloads[0].tests", 'tests like "pp512"'),
    # missing required key
    (('name = "w"\n', ''), "workloads[0].name", "a workload name"),
    # a boolean is not an integer
    (('repetitions = 2', 'repetitions = true'), "defaults.repetitions", "an integer"),
])
def test_bad_suite_one_line_error_exit_2(write_suite, change, key, expected):
    old, new = change
    assert old in GOOD
    path = write_suite(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_suite(path)
    assert e.value.key == key
    r = run_cli("validate", path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(path) in lines[0] and key in lines[0] and expected in lines[0]
    # `run` refuses the same file the same way, before doing any work
    r = run_cli("run", path, "--results-dir", path.parent / "res")
    assert r.returncode == 2 and key in r.stderr
    assert not (path.parent / "res").exists()


def test_toml_syntax_error_names_file(write_suite):
    path = write_suite("[suite\nname=1")
    r = run_cli("validate", path)
    assert r.returncode == 2 and str(path) in r.stderr and "valid TOML" in r.stderr


def test_missing_suite_file(tmp_path):
    r = run_cli("validate", tmp_path / "absent.toml")
    assert r.returncode == 2 and "absent.toml" in r.stderr
