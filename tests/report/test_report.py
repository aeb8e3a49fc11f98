"""`lvt-edge report` and `lvt-edge bench` on a real tiny bundle and a synthetic clip set.

The clip set is relabelled with the fp32 model's own predictions, so fp32 scores 100 % and
the deliberately broken fp16 variant (negated logits) must fail the gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lvt_edge.cli import EXIT_GATE_FAILED, main
from lvt_edge.report import REPORT_FILES, schema_errors
from lvt_edge.report.schema import report_schema


@pytest.fixture(scope="module")
def clipset(tmp_path_factory, tiny, bundle):
    manifest = tiny.synth_clipset(tmp_path_factory.mktemp("clips") / "test", 22)
    return tiny.relabel_as(manifest, tiny.predicted_labels(bundle, manifest))


FAST = ["--runs", "5", "--warmup", "1", "--batch", "4", "--e2e-clips", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def failing(tmp_path_factory, bundle, clipset):
    out = tmp_path_factory.mktemp("report")
    rc = main(["report", str(bundle), "--eval", str(clipset), "--out", str(out), *FAST])
    return rc, out, json.loads((out / "report.json").read_text())


def test_report_writes_three_files_and_the_gate_fails_on_a_broken_variant(failing):
    rc, out, report = failing
    assert rc == EXIT_GATE_FAILED
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    v = {x["precision"]: x for x in report["variants"]}
    assert list(v) == ["fp32", "fp16", "int8"]
    assert v["fp32"]["accuracy"]["top1"] == 100.0
    assert v["fp16"]["accuracy"]["top1"] == 0.0 and v["fp16"]["accuracy"]["agreement_top1"] == 0.0
    assert v["int8"]["accuracy"]["agreement_top1"] >= 90.0
    # int8 is a real (dynamic) quantization: with 22 clips one changed answer is 4.5 points, so
    # whether it passes depends on the clips; the gate must follow its drop either way
    int8_fails = v["int8"]["accuracy"]["top1"] < 100.0 - 1.0
    assert report["gate"] == {"max_drop": 1.0, "passed": False, "failed": ["fp16"] + (["int8"] if int8_fails else [])}
    assert v["fp16"]["recommendation"]["line"] == "do not ship fp16: drops 100.0 pt top-1 > 1.0"
    assert v["fp32"]["latency_ms"]["runs"] == 5 and len(v["fp32"]["latency_ms"]["samples"]) == 5
    assert v["fp32"]["build_time_s"] == 7.5 and v["fp32"]["size_bytes"] > 0
    assert report["eval"]["clips"] == 22 and len(v["int8"]["accuracy"]["confusion"]) == 11


def test_report_json_matches_its_schema(failing):
    _, _, report = failing
    assert schema_errors(report) == []
    broken = json.loads(json.dumps(report))
    del broken["variants"][0]["latency_ms"]["p99"]
    broken["variants"][1]["accuracy"]["top1"] = 101
    broken["gate"]["passed"] = "no"
    errors = schema_errors(broken)
    assert len(errors) == 3 and any("p99" in e for e in errors) and any("maximum" in e for e in errors)
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(report, report_schema())  # the hand-written check agrees with the real thing
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema())


def test_markdown_and_html_carry_the_verdicts_and_plots(failing):
    _, out, report = failing
    md = (out / "report.md").read_text()
    assert "do not ship fp16" in md and "FAILED by fp16" in md and "| fp32" in md
    assert "## Per-class top-1" in md and "Machine: " in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html and "http" not in html.split("<body>")[1]
    assert html.count("recommended: ") == 1 and html.count("class='rec'") == 1
    assert "<table class='per-class'>" in html
    per_class = html.split("<table class='per-class'>")[1].split("</table>")[0]
    assert per_class.count("<tr>") == 1 + len(report["eval"]["labels"])
    assert "Machine: " in html and "CPUExecutionProvider" in html
    low, high = report["variants"][0]["accuracy"]["top1_ci95"]
    assert f"100.0 ({low:.1f}-{high:.1f})" in html  # top-1 with its Wilson interval in the table
    # 22 clips over 11 classes: too few per class, said in all three files
    assert any("fewer than 5 eval clips" in w for w in report["warnings"])
    assert "fewer than 5 eval clips" in md and "fewer than 5 eval clips" in html


def test_report_passes_the_gate_without_the_broken_variant(tmp_path, bundle, clipset, capsys):
    # int8 agrees with fp32 on >= 90 % of the clips (checked above), so it is within 10 points
    rc = main(["report", str(bundle), "--eval", str(clipset), "--precision", "int8", "--max-drop", "10",
               "--out", str(tmp_path), *FAST])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [v["precision"] for v in report["variants"]] == ["fp32", "int8"]
    assert report["settings"]["baseline_added"] is True and report["gate"]["passed"]
    assert "recommended:" in capsys.readouterr().out


def test_report_records_the_machine_and_timing_noise(failing):
    _, _, report = failing
    m = report["machine"]
    assert m["threads"] == 1 and "cpu_model" in m and m["available_providers"]
    v = report["variants"][2]
    assert v["providers"] == ["CPUExecutionProvider"] and len(v["throughput"]["samples_ms"]) == v["throughput"]["runs"]
    low, high = v["speedup_ci95"]
    assert low <= v["speedup_vs_fp32"] <= high and report["summary"]["metric"] == "latency"
    assert report["untrained"] is None and "UNTRAINED" not in (failing[1] / "report.html").read_text()


def test_cpu_model_reads_proc_cpuinfo(tmp_path):
    from lvt_edge.report.evaluate import cpu_model

    (tmp_path / "x86").write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 62.50\nModel\t: NVIDIA Jetson Orin Nano\n")
    assert cpu_model(tmp_path / "x86") == "AMD EPYC 7B13"
    assert cpu_model(tmp_path / "arm") == "NVIDIA Jetson Orin Nano"
    assert cpu_model(tmp_path / "none") is None


def test_an_untrained_bundle_is_said_prominently(failing, tmp_path, capsys):
    from lvt_edge.bundle import untrained_note
    from lvt_edge.report import write_report
    from lvt_edge.report.markdown import render_markdown

    _, _, report = failing
    report = json.loads(json.dumps(report))
    report["bundle"]["source"] = {"model": "lvt-tiny", "random_init": True, "seed": 3}
    report["untrained"] = untrained_note(report["bundle"])
    assert report["untrained"].startswith("untrained: lvt-tiny with random weights")
    write_report(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "class='untrained'>UNTRAINED: LVT-TINY" in html
    assert html.index("UNTRAINED") < html.index("recommended: ")  # above everything else
    assert "> **UNTRAINED: LVT-TINY" in render_markdown(report)


def test_numbers_reproduce_with_the_runtime(failing, bundle, clipset):
    """The README's few lines give the report's top-1 and agreement."""
    from lvt_edge.data import load_clips, open_clipset
    from lvt_edge.runtime import load_bundle

    _, _, report = failing
    with load_bundle(bundle, "fp32") as fp32, load_bundle(bundle, "int8") as int8:
        clips = load_clips(open_clipset(clipset, fp32.labels), fp32.contract, progress=False)
        p32, p8 = fp32.predict(clips.clips), int8.predict(clips.clips)
    top1 = 100 * np.mean(p8.argmax(1) == clips.labels)
    agree = 100 * np.mean(p8.argmax(1) == p32.argmax(1))
    v = report["variants"][2]
    assert v["precision"] == "int8"
    assert v["accuracy"]["top1"] == pytest.approx(top1) and v["accuracy"]["agreement_top1"] == pytest.approx(agree)


def test_bad_arguments_are_user_errors(tmp_path, bundle, clipset, capsys):
    assert main(["report", str(bundle), "--eval", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(bundle), "--eval", str(clipset), "--precision", "fp8"])
    assert main(["report", str(tmp_path), "--eval", str(clipset)]) == 1
    assert "no bundle.json" in capsys.readouterr().err


def test_bench_prints_and_writes_interleaved_numbers(tmp_path, bundle, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(bundle), "--precision", "fp32,int8", "--batch", "1,3", "--runs", "4", "--warmup", "1",
               "--threads", "1", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["batch"]) for r in rows] == [("fp32", 1), ("int8", 1), ("fp32", 3), ("int8", 3)]
    assert all(r["runs"] == 4 and r["p50"] > 0 and r["clips_per_s"] > 0 for r in rows)
    assert "speed-up" in capsys.readouterr().out


def _previous_report(failing, tmp_path):
    import shutil

    _, out, report = failing
    folder = tmp_path / "rep"
    shutil.copytree(out, folder)
    newer = json.loads(json.dumps(report))
    newer["created"] = "2099-01-01T00:00:00+00:00"  # every file would change
    return folder, {p.name: p.read_bytes() for p in folder.iterdir()}, newer


def test_a_failed_rendering_leaves_the_previous_report_whole(failing, tmp_path, monkeypatch):
    import lvt_edge.report.html as html
    from lvt_edge.report import write_report

    folder, before, newer = _previous_report(failing, tmp_path)

    def broken(report):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(html, "render_html", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(newer, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_full_disk_leaves_the_previous_report_whole(failing, tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from lvt_edge.errors import LvtEdgeError
    from lvt_edge.report import write_report

    folder, before, newer = _previous_report(failing, tmp_path)
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".report.html."):
            real(self, data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(LvtEdgeError, match=r"no space left .*report\.html"):
        write_report(newer, folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary files either
    write_report(newer, folder)
    assert json.loads((folder / "report.json").read_text())["created"].startswith("2099")


def test_time_interleaved_rewarm_calls_each_variant_untimed_right_before_its_timed_call():
    from lvt_edge.report.timing import time_interleaved

    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    ms = time_interleaved(fns, 4, warmup=1, rewarm=1, progress=False)
    assert {k: len(v) for k, v in ms.items()} == {"a": 4, "b": 4, "c": 4}
    rounds = calls[3:]  # after one warm-up call each
    assert len(rounds) == 4 * 3 * 2
    # every call comes in a pair: the untimed one, then the timed one of the same variant
    assert all(rounds[i] == rounds[i + 1] for i in range(0, len(rounds), 2))
    assert rounds[:6] == ["a", "a", "b", "b", "c", "c"] and rounds[6:12] == ["b", "b", "c", "c", "a", "a"]
    assert len(time_interleaved(fns, 2, warmup=0, progress=False)["a"]) == 2
