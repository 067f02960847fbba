"""dynasor.datasets: loaders over ../shared/data, the seeded arithmetic generator, the 3-shot prompt."""

import json
import re

import pytest

from dynasor.certaindex import extract_answer
from dynasor.datasets import arithmetic, loaders
from dynasor.datasets.arithmetic import LEVELS, generate, make_prompt, parse_levels
from dynasor.datasets.labelled import read_labelled_jsonl
from dynasor.datasets.loaders import Problem, default_data_dir, load_dataset, write_problems_jsonl

SIZES = {"gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40}
STEP = re.compile(r"(\d+) ([-+*]) (\d+) = (\d+)\.")


def test_default_data_dir_is_relative_to_the_repo(monkeypatch):
    monkeypatch.delenv("DYNASOR_DATA", raising=False)
    assert default_data_dir() == loaders.REPO_ROOT.parent / "shared" / "data"
    assert default_data_dir().is_dir()


@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_dataset_parses(name, monkeypatch):
    monkeypatch.delenv("DYNASOR_DATA", raising=False)
    problems = load_dataset(name)
    assert len(problems) == SIZES[name]
    assert len({p.id for p in problems}) == len(problems)
    assert all(p.source == name and p.question.strip() and p.answer.strip() for p in problems)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_relative_data_dir_and_env_var(name, monkeypatch):
    monkeypatch.chdir(loaders.REPO_ROOT)
    assert len(load_dataset(name, "../shared/data", limit=3)) == 3
    monkeypatch.setenv("DYNASOR_DATA", "../shared/data")
    assert load_dataset(name, limit=2) == load_dataset(name, loaders.REPO_ROOT.parent / "shared" / "data", limit=2)


def test_answers_are_normalised():
    gsm = load_dataset("gsm8k")
    assert gsm[0].answer == "18" and gsm[0].solution.endswith("#### 18")
    assert all(re.fullmatch(r"-?\d+", p.answer) for p in gsm)  # "1,600" -> "1600"
    amc = load_dataset("amc23")
    assert amc[0].answer == "27" and all("." not in p.answer for p in amc)
    aime = load_dataset("aime24")
    assert "25" in {p.answer for p in aime} and not any(p.answer.startswith("0") and p.answer != "0" for p in aime)
    math = load_dataset("math500")
    assert math[0].id == "test/precalculus/807.json" and math[0].level == 2 and "\\frac{\\pi}{2}" in math[0].answer
    assert {p.level for p in math} == {1, 2, 3, 4, 5}


def test_env_var_points_at_another_copy(tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": "q?", "answer": "x\n#### 1,234"}) + "\n")
    monkeypatch.setenv("DYNASOR_DATA", str(tmp_path))
    assert load_dataset("gsm8k") == [Problem("gsm8k-0", "q?", "1234", "gsm8k", None, "x\n#### 1,234")]


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope")


def test_generator_is_deterministic_by_seed():
    mix = {1: 0.5, 2: 0.3, 3: 0.1, 4: 0.1}
    assert generate(30, seed=3, levels=mix) == generate(30, seed=3, levels=mix)
    assert generate(30, seed=3, levels=mix).problems != generate(30, seed=4, levels=mix).problems
    assert generate(5).problems == generate(5, seed=0, levels={1: 1.0}).problems


def test_level_mix_is_exact_and_recorded():
    made = generate(20, seed=1, levels={1: 0.5, 2: 0.5})
    assert [p.level for p in made.problems].count(1) == 10
    assert made.metadata["levels"] == {"1": 0.5, "2": 0.5}
    assert made.metadata["level_counts"] == {"1": 10, "2": 10}
    assert made.metadata["seed"] == 1 and made.metadata["n"] == 20
    assert made.metadata["level_descriptions"]["2"] == LEVELS[2]
    assert generate(7, levels={1: 2, 3: 1}).metadata["level_counts"] == {"1": 5, "3": 2}
    assert parse_levels("1:0.5, 2:0.5") == {1: 0.5, 2: 0.5} and parse_levels("3") == {3: 1.0}
    with pytest.raises(ValueError, match="level mix"):
        generate(3, levels={9: 1.0})


def _steps(problem: Problem) -> list[tuple[int, str, int, int]]:
    return [(int(a), op, int(b), int(r)) for a, op, b, r in STEP.findall(problem.solution)]


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_level_semantics_and_answers(level):
    for problem in generate(200, seed=level, levels={level: 1.0}).problems:
        steps = _steps(problem)
        for a, op, b, r in steps:
            assert r == {"+": a + b, "-": a - b, "*": a * b}[op] and r >= 0
        assert problem.answer == str(steps[-1][3]) == extract_answer(problem.solution)
        ops = [op for _, op, _, _ in steps]
        question_numbers = [int(x) for x in re.findall(r"\d+", problem.question)]
        if level in (0, 1):
            top = 9 if level == 0 else 99
            assert len(steps) == 1 and ops[0] in "+-" and all(1 <= x <= top for x in question_numbers)
        elif level == 2:
            assert len(steps) == 2 and set(ops) <= set("+-") and steps[1][0] == steps[0][3]
            assert all(1 <= x <= 99 for x in question_numbers)
        elif level == 3:
            assert ops[0] == "*" and ops[1] in "+-" and steps[1][0] == steps[0][3]
        else:
            assert ops == ["*", "*", "+", "-"] and steps[3][0] == steps[2][3]
        operands = [a for a, _, _, _ in steps] + [b for _, _, b, _ in steps]
        intermediate = {r for _, _, _, r in steps}
        assert all(x in question_numbers or x in intermediate for x in operands)


def test_prompt_is_three_shot_and_ends_in_a():
    for problem in generate(10, seed=0, levels={0: 1, 1: 1, 2: 1, 3: 1, 4: 1}).problems:
        prompt = make_prompt(problem)
        assert prompt.startswith("Q: ") and prompt.endswith(f"Q: {problem.question}\nA:")
        shots = re.findall(r"Q: (.*)\nA: (.*)\n\n", prompt)
        assert len(shots) == 3
        for question, solution in shots:
            worked = Problem("shot", question, extract_answer(solution), "arithmetic", problem.level, solution)
            assert solution.endswith(f"The answer is \\boxed{{{worked.answer}}}.")
            assert str(_steps(worked)[-1][3]) == worked.answer
            assert len(_steps(worked)) == len(_steps(problem))  # shots of the problem's level
    gsm = load_dataset("gsm8k", limit=1)[0]
    assert make_prompt(gsm).count("\\boxed{") == 3 and make_prompt(gsm).endswith(gsm.question + "\nA:")


def test_jsonl_for_calibrate(tmp_path):
    problems = generate(4, seed=2).problems
    path = tmp_path / "set.jsonl"
    write_problems_jsonl(problems, path, make_prompt)
    items = read_labelled_jsonl(path)
    expected = [(p.id, p.answer, p.level, make_prompt(p)) for p in problems]
    assert [(i.id, i.gold, i.level, i.prompt) for i in items] == expected


def test_module_main_writes_generated_and_dataset_sets(tmp_path):
    arithmetic.main(["--n", "6", "--levels", "1:1,2:1", "--seed", "5", "--out", str(tmp_path / "a.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prompt"].endswith("\nA:") for r in rows)
    arithmetic.main(["--dataset", "amc23", "--limit", "3", "--out", str(tmp_path / "b.jsonl")])
    assert [i.gold for i in read_labelled_jsonl(tmp_path / "b.jsonl")] == ["27", "36", "45"]
