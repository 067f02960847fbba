"""A result records the commit it was measured with, and says when the code had uncommitted changes
(benchmark/common.py ``machine_info``; the results README shows it in each machine line)."""

import subprocess

import pytest

from benchmark import common
from benchmark.readme.cells import machine_line


@pytest.fixture
def repo(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "python").mkdir()
    (tmp_path / "benchmark" / "results").mkdir(parents=True)
    (tmp_path / "python" / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmark" / "results" / "r.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(common, "ROOT", tmp_path)
    return tmp_path


def test_a_clean_tree_records_its_commit_and_no_changes(repo):
    info = common.machine_info()
    assert len(info["git_commit"]) == 40 and info["git_uncommitted"] == []
    assert machine_line(info).endswith(f"commit {info['git_commit'][:10]}")


def test_changed_code_is_recorded_but_a_rewritten_result_file_is_not(repo):
    (repo / "benchmark" / "results" / "r.json").write_text('{"more": 1}\n')  # what a running benchmark writes
    assert common.machine_info()["git_uncommitted"] == []
    (repo / "python" / "code.py").write_text("x = 2\n")
    info = common.machine_info()
    assert info["git_uncommitted"] == ["python/code.py"]
    assert machine_line(info).endswith("with uncommitted changes")
