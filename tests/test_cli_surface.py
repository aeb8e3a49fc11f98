"""The command line as a stranger meets it: one spelling per option, defaults in --help, "did you
mean", -q/-v, warnings that never land on a progress bar, a closing line after each verb, and
distinct exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import re
import warnings

import pytest

from lvt_edge import console
from lvt_edge.cli import (COMMANDS, EXIT_ERROR, EXIT_GATE_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                          HelpFormatter, build_parser, main)
from lvt_edge.errors import LvtEdgeWarning


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser (and sub-verb's, as "plugin build"), with every verb registered."""
    parser = build_parser()
    out = {}
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        out[name] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                out.update({f"{name} {child}": cp for child, cp in a.choices.items()})
    return out


def _visible(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and a.help is not argparse.SUPPRESS]


def test_every_verb_is_registered_and_documented():
    assert set(COMMANDS) <= set(_verb_parsers())


def test_one_spelling_per_option():
    spellings = {o for p in _verb_parsers().values() for a in _visible(p) for o in a.option_strings}
    for old in ("--precisions", "--batch-size", "--no-progress", "--output", "--workdir"):
        assert old not in spellings, f"{old} is still shown; its one spelling is the new one"
    # --batch means one thing everywhere: clips per model call (or training step)
    for verb, p in _verb_parsers().items():
        for a in _visible(p):
            if "--batch" in a.option_strings:
                assert "clips per" in a.help, f"{verb} --batch: {a.help}"
    assert any("--batch-profile" in a.option_strings for a in _visible(_verb_parsers()["build"]))
    # --json [FILE] is the same option wherever it appears
    for verb, p in _verb_parsers().items():
        for a in _visible(p):
            if "--json" in a.option_strings:
                assert (a.nargs, a.const) == ("?", "-"), verb


def test_old_spellings_still_work_and_say_the_new_one(tmp_path, capsys):
    rc = main(["report", str(tmp_path / "none"), "--eval", str(tmp_path), "--precisions", "int8"])
    err = capsys.readouterr().err
    assert rc == EXIT_ERROR and "no bundle.json" in err  # parsed: the run got as far as the bundle
    assert "--precisions is now spelled --precision" in err
    args = build_parser("build").parse_args(["build", "w", "--batch", "2:4:8"])
    assert args.batch_profile == "2:4:8"


def test_every_option_with_a_default_shows_it():
    missing = []
    for verb, p in _verb_parsers().items():
        fmt = HelpFormatter(prog="x")
        for a in _visible(p):
            if a.nargs == 0 or a.default in (None, argparse.SUPPRESS) or a.default == []:
                continue
            text = fmt._get_help_string(a) % {"default": a.default, "prog": "x", "dest": a.dest}
            if "default" not in text.lower():
                missing.append(f"{verb} {a.option_strings[0]}")
    assert not missing, missing
    assert "(default: 1:1:8)" in _verb_parsers()["build"].format_help().replace("\n", " ").replace("  ", "")


@pytest.mark.parametrize("argv, hint", [
    (["buidl"], "did you mean 'build'?"),
    (["report", "--eval", "x", "--presicion", "fp32"], "did you mean --precision?"),
    (["predict", "a.mp4", "--precision", "fp33"], "did you mean 'fp32'?"),
    (["live", "--smooth", "emma"], "did you mean 'ema'?"),
    (["plugin", "locte"], "did you mean 'locate'?"),
])
def test_did_you_mean(argv, hint, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == EXIT_USAGE
    assert hint in capsys.readouterr().err


def test_exit_codes_are_distinct_and_in_the_help():
    codes = [EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_FAILED, EXIT_INTERRUPTED]
    assert len(set(codes)) == len(codes)
    text = build_parser().format_help()
    for code in codes:
        assert re.search(rf"^  {code} ", text, re.M), code


def test_no_verb_prints_help_and_is_a_usage_error(capsys):
    assert main([]) == EXIT_USAGE
    assert "The usual path" in capsys.readouterr().out


@pytest.mark.parametrize("level, shown, hidden", [
    (console.NORMAL, ["warning: ours"], ["theirs", "their log line"]),
    (console.QUIET, ["warning: ours"], ["theirs", "their log line"]),
    (console.VERBOSE, ["warning: ours", "theirs", "their log line"], []),
])
def test_third_party_warnings_only_when_verbose(level, shown, hidden, capsys):
    with console.verbosity(level):
        warnings.warn("ours", LvtEdgeWarning)
        warnings.warn("theirs", FutureWarning)
        if logging.getLogger("some.library").isEnabledFor(logging.WARNING):  # torch.onnx, modelopt
            console.write("their log line")
    err = capsys.readouterr().err
    for s in shown:
        assert s in err
    for s in hidden:
        assert s not in err


def test_verbosity_is_put_back_afterwards():
    before = (os.environ.get("TQDM_DISABLE"), logging.root.manager.disable, console.level())
    with console.verbosity(console.QUIET):
        assert os.environ.get("TQDM_DISABLE") == "1" and not console.progress()
    assert (os.environ.get("TQDM_DISABLE"), logging.root.manager.disable, console.level()) == before


def test_a_warning_during_a_progress_bar_gets_its_own_line(capsys):
    with console.verbosity(console.NORMAL):
        for i in console.bar(range(6), "working", "step", mininterval=0):
            if i == 3:
                warnings.warn("halfway there", LvtEdgeWarning)
    err = capsys.readouterr().err
    assert "working" in err, "the bar was drawn"
    segments = re.split(r"[\r\n]", err)
    assert "warning: halfway there" in segments, "the warning shares a line with the bar"


def test_quiet_draws_no_bar(capsys):
    with console.verbosity(console.QUIET):
        for _ in console.bar(range(3), "working", mininterval=0):
            pass
    assert "working" not in capsys.readouterr().err


def test_each_verb_ends_with_where_and_what_next(tmp_path, capsys):
    out = tmp_path / "calib"
    assert main(["clips", "synth", "--out", str(out), "--split", "calib", "--num", "11"]) == 0
    err = capsys.readouterr().err
    assert f"done: 11 calib clips in {out}" in err and f"next: lvt-edge build --calib {out}" in err
    assert main(["-q", "clips", "info", str(out)]) == 0
    assert "done:" not in capsys.readouterr().err
    assert main(["clips", "info", str(out), "-q"]) == 0, "-q works after the verb too"
    assert "done:" not in capsys.readouterr().err
