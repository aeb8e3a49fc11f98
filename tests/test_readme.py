"""The README's commands: every `lvt-edge` line of its code blocks parses with the real CLI parser,
and (slow) the "What it is" walk-through runs end to end in a fresh folder."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lvt_edge.cli import COMMANDS, EXIT_GATE_FAILED, EXIT_USAGE, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
APP = "apps/live_camera.py"  # the same options as `lvt-edge live`


def code_lines(text: str) -> list[str]:
    """Lines of the README's fenced and indented (4-space) code blocks, outside ```python blocks."""
    out, fence = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is not None:
            if fence in ("bash", "sh", ""):
                out.append(line)
        elif line.startswith("    ") and line.strip():
            out.append(line.strip())
    return out


def cli_commands(lines: list[str]) -> list[list[str]]:
    """Each `lvt-edge ...` or `python apps/live_camera.py ...` command as argv after the program
    name (`live ...` for the app); comments dropped, `&&` chains split."""
    commands = []
    for line in lines:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # printed output (`lvt-edge checks`), not a shell line
            assert not line.startswith(("lvt-edge", "python")), f"README: unbalanced quotes in: {line}"
            continue
        parts: list[list[str]] = [[]]
        for word in words:
            if word in ("&&", ";", "||", "|"):
                parts.append([])
            else:
                parts[-1].append(word)
        for words in parts:
            if words[:1] == ["lvt-edge"]:
                commands.append(words[1:])
            elif len(words) > 1 and words[0] in ("python", "python3") and words[1] == APP:
                commands.append(["live", *words[2:]])
    return commands


def what_it_is_block(text: str) -> list[str]:
    """The indented command block of the "## What it is" section, one command per line."""
    section = text.split("\n## What it is", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n((?: {4}\S.*\n)+)", section)
    assert block, "README: no indented command block under '## What it is'"
    return [line.strip() for line in block.group(1).splitlines()]


def test_every_readme_command_parses_with_the_real_cli():
    commands = cli_commands(code_lines(README.read_text()))
    verbs = {argv[0] for argv in commands if argv}
    assert {"clips", "export", "build", "report", "bench", "predict", "live", "train"} <= verbs, verbs
    bad = []
    for argv in commands:
        if not argv or argv[0] not in COMMANDS:
            bad.append(f"lvt-edge {shlex.join(argv)}: no such verb")
            continue
        try:
            build_parser(argv[0]).parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):  # argparse prints the reason on stderr
                bad.append(f"lvt-edge {shlex.join(argv)}: exit {e.code}")
    assert not bad, "README commands the CLI rejects:\n" + "\n".join(bad)


def test_the_parse_check_catches_a_wrong_flag():
    (argv,) = cli_commands(["lvt-edge bench work/ --precisions fp32  # a typo"])
    with pytest.raises(SystemExit) as e:
        build_parser(argv[0]).parse_args(argv)
    assert e.value.code == EXIT_USAGE


# What the walk-through's placeholders become in a fresh folder: the clips it made, the demo
# model (no CKPT), the synthetic camera; and the few flags that keep it short on 2 cores.
PLACEHOLDERS = {"CLIPS": "clips/val", "videos/": "clips/val"}
SMALL = {"clips": ["--num", "44"], "report": ["--runs", "10", "--warmup", "2"],
         "bench": ["--runs", "10", "--warmup", "2"], "live": ["--headless", "--max-frames", "45"]}


def walkthrough(lines: list[str]) -> list[list[str]]:
    runs = []
    for argv in cli_commands(lines):
        argv = [PLACEHOLDERS.get(a, a) for a in argv if a != "[CKPT]"]
        if argv[0] == "clips" and "--num" in argv:  # keep the README's seed and split, fewer clips
            i = argv.index("--num")
            del argv[i:i + 2]
        if argv[0] == "live" and "--source" in argv:
            argv[argv.index("--source") + 1] = "synth:"
        runs.append(argv + SMALL.get(argv[0], []))
    return runs


@pytest.mark.slow
def test_the_what_it_is_walkthrough_runs_in_order(tmp_path):
    runs = walkthrough(what_it_is_block(README.read_text()))
    assert [argv[0] for argv in runs] == ["clips", "export", "build", "report", "bench", "predict", "live"]
    runs.append(["checks"])  # "`lvt-edge checks` says what this machine can run"
    for argv in runs:
        r = subprocess.run([sys.executable, "-m", "lvt_edge.cli", *argv], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        ok = (0, EXIT_GATE_FAILED) if argv[0] == "report" else (0,)  # report: its accuracy gate, on 44 clips
        assert r.returncode in ok, f"lvt-edge {shlex.join(argv)} -> {r.returncode}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
    bundle = json.loads((tmp_path / "work" / "bundle.json").read_text())
    assert (tmp_path / "work" / "model.int8.onnx").is_file() and bundle
    assert (tmp_path / "rep" / "report.json").is_file() and (tmp_path / "rep" / "report.html").is_file()
