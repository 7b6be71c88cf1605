"""The README's first screen gives exactly two set-up commands, and CI runs the test one."""

import re

from conftest import REPO


def first_screen_commands() -> list[str]:
    first_screen = (REPO / "README.md").read_text().split("\n---\n")[0]
    return re.findall(r"```bash\n(.*?)\n```", first_screen, flags=re.S)


def test_exactly_two_setup_commands():
    commands = first_screen_commands()
    assert len(commands) == 2
    assert "dlx train --config experiments/mnist1d_mlp.py" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text()
    for part in first_screen_commands()[1].split(" && "):
        assert part in ci, f"{part!r} is in the README but not in .ci/run"
