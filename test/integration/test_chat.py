"""``dynasor chat`` on the live server through piped stdin: an answer and its tokens line per prompt."""

import subprocess
import sys

from dynasor.chat import SUMMARY_PREFIX


def chat(url: str, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynasor.cli", "chat", "--url", url, "--max-tokens", "64", *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_chat_cot_mode_through_a_pipe(url):
    done = chat(url, "What is 2 + 3? Put the answer in \\boxed{}.\n\nWhat is 10 - 4?\n", "--effort", "high")
    print(f"\n[chat cot]\n{done.stdout}")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    summaries = [i for i, line in enumerate(lines) if line.startswith(SUMMARY_PREFIX)]
    assert len(summaries) == 2  # one per non-blank prompt line
    assert "\n".join(lines[:summaries[0]]).strip()  # an answer came before the first tokens line
    for i in summaries:
        assert "completion " in lines[i] and "completion unknown" not in lines[i]


def test_chat_plain_mode_through_a_pipe(url):
    done = chat(url, "Name a color.\n", "--mode", "plain")
    print(f"\n[chat plain]\n{done.stdout}")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(f"{SUMMARY_PREFIX} completion ") and "saved" not in lines[-1]
    assert "\n".join(lines[:-1]).strip()
