"""Building TensorRT engines (`engine_from_onnx`, `build_bundle --target tensorrt`, `build_engines`)
on fakes that follow TensorRT's and cuda-python's real return conventions
(tests/runtime/test_trt_fakes.py); the real thing end to end where TensorRT exists."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.variants import build_bundle
from lvt_edge.variants import tensorrt as TR
from lvt_edge.variants.pipeline import build_engines

REPO = Path(__file__).resolve().parents[2]
OWNER_A = ("10.3.0.30", "Orin")


import lvt_edge_tests_trt_fakes as F  # noqa: E402 (registered by tests/conftest.py)
pytestmark = pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")


def machine(monkeypatch, version="10.16.1.11", gpu="Orin", cc=(8, 7), **cuda):
    """Install a fake TensorRT `version` and cuda-python on one GPU; returns both."""
    trt = F.install_tensorrt(monkeypatch, F.make_tensorrt(version, device=gpu))
    cudart = F.FakeCudart(name=gpu.encode(), cc=cc, **cuda)
    F.install_cuda(monkeypatch, cudart)
    return types.SimpleNamespace(trt=trt, cudart=cudart, registry=trt.get_plugin_registry())


@pytest.fixture
def fakes(monkeypatch):
    return machine(monkeypatch)


@pytest.fixture
def lib(tmp_path):
    return F.plugin_library(tmp_path / "pluginlib" / "liblvt_edge_ffla_trt10.so")


def build(work: Path, contract, **kw) -> dict:
    kw.setdefault("batch", (1, 2, 4))
    return TR.engine_from_onnx(work / "model.onnx", work / B.engine_name("fp32"), contract, workdir=work, **kw)


def record(work: Path, rec: dict, precision: str = "fp32") -> None:
    data = B.read_bundle(work)
    data["variants"][precision]["tensorrt"] = rec
    B.write_bundle(work, data)


# --- the engine record and the plugin -------------------------------------------------------------

def test_engine_with_the_plugin_is_recorded(fake_bundle, contract, fakes, lib):
    rec = build(fake_bundle, contract, plugin=lib)
    built = fakes.trt.fake.built[-1]
    assert built["layers"].count("PLUGIN_V3") == 2 and built["flags"] == 1 << 5, "strongly typed, both nodes plugins"
    assert rec["plugin_layers"] == 2 and rec["plugin"]["layers"] == 2 and rec["plugin"]["path"] == f"plugins/{lib.name}"
    assert (rec["tensorrt_version"], rec["gpu"], rec["compute_capability"], rec["batch"]) == (
        "10.16.1.11", "Orin", "8.7", [1, 2, 4])
    assert rec["tf32"] is True and rec["timing_cache"] == "timing-cache/trt10.16.1.11-orin-sm87.cache"
    assert (fake_bundle / rec["timing_cache"]).is_file() and (fake_bundle / rec["plugin"]["path"]).is_file()


def test_the_engine_build_shows_its_phases_as_progress_bars(fake_bundle, contract, fakes, capsys):
    from lvt_edge import console

    with console.verbosity(console.NORMAL):
        build(fake_bundle, contract, use_plugin=False)
    err = capsys.readouterr().err
    assert "engine fp32: Building engine" in err
    assert "engine fp32: Tactic selection:   0%|          | 0/3" in err, "a nested phase gets its own bar"


def test_tf32_is_recorded_and_can_be_turned_off(fake_bundle, contract, fakes):
    rec = build(fake_bundle, contract, use_plugin=False, tf32=False)
    assert rec["tf32"] is False and fakes.trt.fake.built[-1]["tf32"] is False


def test_before_10_7_the_function_is_removed_so_the_plugin_is_used(fake_bundle, contract, monkeypatch, lib):
    fakes = machine(monkeypatch, version="10.3.0.30")
    rec = build(fake_bundle, contract, plugin=lib)
    assert rec["plugin_layers"] == 2 and fakes.trt.fake.built[-1]["layers"].count("PLUGIN_V3") == 2


def test_no_plugin_build_never_takes_a_plugin_loaded_earlier(fake_bundle, contract, fakes, lib):
    """TensorRT >= 10.7 prefers a registered plugin to the op's function, even in a --no-plugin build."""
    build(fake_bundle, contract, plugin=lib)
    rec = build(fake_bundle, contract, use_plugin=False)
    assert rec["plugin"] is None and rec["plugin_layers"] == 0
    assert "PLUGIN_V3" not in fakes.trt.fake.built[-1]["layers"]


def test_a_library_that_does_not_load_is_reported_as_such(fake_bundle, contract, fakes, tmp_path):
    """load_library returns None (it never raises); the build says so instead of failing later."""
    bad = tmp_path / "liblvt_edge_ffla_trt10.so"
    bad.write_bytes(b"\x7fELF truncated")
    with pytest.raises(LvtEdgeError, match=r"could not load the plugin library .*dynamic loader says.*lvt-edge plugin build"):
        build(fake_bundle, contract, plugin=bad)
    assert fakes.trt.fake.built == []


def test_a_library_without_the_fused_op_is_refused(fake_bundle, contract, fakes, tmp_path):
    other = F.plugin_library(tmp_path / "liblvt_edge_ffla_trt10.so", creators=(("FFLinearAttention", "2", "lvt_edge"),))
    with pytest.raises(LvtEdgeError, match=r"registers no plugin FFLinearAttention version 1 in namespace 'lvt_edge'"):
        build(fake_bundle, contract, plugin=other)


def test_a_relative_plugin_path_is_loaded_from_that_folder(fake_bundle, contract, fakes, lib, monkeypatch):
    monkeypatch.chdir(lib.parent)
    rec = build(fake_bundle, contract, plugin=Path(lib.name))
    assert fakes.registry.calls == [str(lib)] and rec["plugin_layers"] == 2


def test_one_library_is_loaded_once_and_another_is_refused(fake_bundle, contract, fakes, lib, tmp_path):
    rec = build(fake_bundle, contract, plugin=lib)
    build(fake_bundle, contract, plugin=lib)
    record(fake_bundle, rec)
    from lvt_edge.runtime import load_bundle

    with load_bundle(fake_bundle, "fp32", "tensorrt") as clf:  # the bundle's copy: same bytes, not loaded again
        assert clf.predict(np.zeros(contract.input_shape, np.float32)).shape == (contract.num_classes,)
    assert fakes.registry.calls == [str(lib)]
    other = F.plugin_library(tmp_path / "other" / lib.name, creators=(("FFLinearAttention", "1", "lvt_edge"),
                                                                       ("Extra", "1", "x")))
    with pytest.raises(LvtEdgeError, match="already registered in this process by .*a different library.*fresh process"):
        build(fake_bundle, contract, plugin=other)


def test_a_plugin_registered_by_someone_else_is_refused(fake_bundle, contract, fakes, lib, tmp_path):
    fakes.registry.load_library(str(F.plugin_library(tmp_path / "theirs" / "libtheirs.so")))
    with pytest.raises(LvtEdgeError, match="already registered in this process by a library lvt_edge did not load"):
        build(fake_bundle, contract, plugin=lib)


# --- the timing cache -------------------------------------------------------------------------------

def test_rebuilding_on_another_gpu_and_tensorrt_keeps_both_caches(fake_bundle, contract, monkeypatch):
    """The rebuild our own error messages ask for: it must not crash after writing the engine."""
    machine(monkeypatch, *OWNER_A)
    first = build(fake_bundle, contract, use_plugin=False)
    machine(monkeypatch, "10.16.1.11", "NVIDIA H200", cc=(9, 0))
    second = build(fake_bundle, contract, use_plugin=False)
    assert first["timing_cache"] != second["timing_cache"]
    assert second["timing_cache"] == "timing-cache/trt10.16.1.11-nvidia-h200-sm90.cache"
    for rec in (first, second):
        assert (fake_bundle / rec["timing_cache"]).read_bytes().startswith(F.CACHE_MAGIC)
    assert (fake_bundle / second["engine"]).is_file()


@pytest.mark.parametrize("content", [b"not a timing cache", F.CACHE_MAGIC + json.dumps([["9.9.9", "Other"], 5]).encode()])
def test_an_unreadable_or_refused_cache_starts_afresh(fake_bundle, contract, monkeypatch, content):
    machine(monkeypatch, *OWNER_A)
    path = TR.timing_cache_path(fake_bundle, OWNER_A[0], "Orin", (8, 7))
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    lines: list[str] = []
    rec = build(fake_bundle, contract, use_plugin=False, log=lines.append)
    assert any("refused the timing cache" in line for line in lines)
    assert json.loads(path.read_bytes()[len(F.CACHE_MAGIC):])[0] == list(OWNER_A) and rec["timing_cache"]


def test_no_cache_after_the_build_never_loses_the_engine(fake_bundle, contract, fakes):
    real = fakes.trt.Builder.create_builder_config

    def config_without_cache(self):
        config = real(self)
        config.get_timing_cache = lambda: None
        return config

    fakes.trt.Builder.create_builder_config = config_without_cache
    lines: list[str] = []
    rec = build(fake_bundle, contract, use_plugin=False, log=lines.append)
    assert rec["timing_cache"] is None and (fake_bundle / rec["engine"]).is_file()
    assert any("no timing cache" in line for line in lines)


# --- versions, the CUDA binding, the parser ----------------------------------------------------------

def test_tensorrt_older_than_10_is_refused_before_anything(fake_bundle, contract, monkeypatch):
    fakes = machine(monkeypatch, version="8.6.2.3")
    with pytest.raises(LvtEdgeError, match=r"TensorRT 8.6.2.3 is too old"):
        build(fake_bundle, contract, use_plugin=False)
    assert fakes.trt.fake.built == []


def test_the_cuda_binding_is_resolved_before_the_long_build(fake_bundle, contract, monkeypatch):
    fakes = machine(monkeypatch, driver=12060, runtime=13000)
    with pytest.raises(LvtEdgeError, match=r"built for CUDA 13.0 but the driver supports CUDA 12.6"):
        build(fake_bundle, contract, use_plugin=False)
    assert fakes.trt.fake.built == [] and not (fake_bundle / "model.fp32.engine").exists()


def test_external_weights_are_found_through_the_model_path(fake_bundle, contract, fakes, lib):
    model = onnx.load(str(fake_bundle / "model.onnx"))
    onnx.save(model, str(fake_bundle / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
              size_threshold=0)
    rec = build(fake_bundle, contract, plugin=lib)
    assert rec["plugin_layers"] == 2


def test_profile_batch_range_reaches_the_engine(fake_bundle, contract, fakes):
    record(fake_bundle, build(fake_bundle, contract, use_plugin=False, batch=(2, 4, 8)))
    from lvt_edge.runtime import load_bundle

    with load_bundle(fake_bundle, "fp32", "tensorrt") as clf:
        assert (clf.min_batch, clf.max_batch) == (2, 8)


# --- the build verifies its engines against ONNX Runtime ------------------------------------------------

def test_build_verifies_each_engine_against_onnxruntime(fake_bundle, synth_clips, fakes, lib):
    lines: list[str] = []
    data = build_bundle(fake_bundle, "fp32", calib=synth_clips, target="tensorrt", plugin=lib, eval_size=5,
                        latency_rounds=0, progress=False, log=lines.append)
    check = data["variants"]["fp32"]["tensorrt"]["verification"]
    assert check["backend"] == "tensorrt" and check["reference"] == "onnxruntime-cpu" and check["clips"] == 5
    assert check["agreement_pct"] == 100.0 and check["within_tolerance"] and check["max_abs_logit_diff"] < 1e-4
    assert check["top1"] == check["top1_onnxruntime"] and check["clipset"]["clips"] == 5
    assert any("agrees with ONNX Runtime on 100.0% of 5" in line for line in lines)
    assert "step" not in data and not list(fake_bundle.glob("model.step.*")), "a window model gets no step engine"
    assert len(fakes.trt.fake.built) == 1


def test_an_engine_that_disagrees_is_flagged(fake_bundle, synth_clips, fakes, lib):
    fakes.trt.fake.perturb = lambda logits: -logits
    lines: list[str] = []
    data = build_bundle(fake_bundle, "fp32", calib=synth_clips, target="tensorrt", plugin=lib, eval_size=5,
                        latency_rounds=0, progress=False, log=lines.append)
    check = data["variants"]["fp32"]["tensorrt"]["verification"]
    assert not check["within_tolerance"] and check["agreement_pct"] < check["min_agreement_pct"]
    assert any(line.startswith("WARNING: the fp32 TensorRT engine agrees") for line in lines)


def test_build_engines_for_onnx_built_elsewhere(fake_bundle, synth_clips, fakes, lib):
    """What a Jetson without torch or modelopt runs on a bundle calibrated on another machine."""
    data = build_engines(fake_bundle, "fp32", plugin=lib, eval_clips=synth_clips, eval_size=4, batch="1:2:4",
                         progress=False, log=lambda m: None)
    rec = data["variants"]["fp32"]["tensorrt"]
    assert rec["batch"] == [1, 2, 4] and rec["plugin_layers"] == 2 and rec["verification"]["clips"] == 4
    assert "step" not in data and len(fakes.trt.fake.built) == 1
    with pytest.raises(LvtEdgeError, match=r"no int8 variant.*--precision int8"):
        build_engines(fake_bundle, "int8", plugin=lib, eval_size=0, log=lambda m: None)


# --- the real thing ---------------------------------------------------------------------------------

@pytest.mark.tensorrt
def test_real_engines_with_the_plugin_agree_with_onnxruntime(tmp_path):
    """fp32, fp16 and int8 engines of the demo model with the fused-op plugin, run on held-out
    clips and compared with ONNX Runtime (what benchmarks/trt_check.py prints as a table)."""
    from lvt_edge.variants import plugin as P

    try:
        plugin = P.plugin_from_sources(log=lambda m: None).library
    except LvtEdgeError as e:
        pytest.skip(f"cannot build the plugin here: {e}")
    data = build_bundle(tmp_path / "demo", "all", target="tensorrt", plugin=plugin, calib_size=32, eval_size=64,
                        latency_rounds=0, progress=False, log=lambda m: None)
    for p in B.PRECISIONS:
        rec = data["variants"][p]["tensorrt"]
        assert rec["plugin_layers"] > 0 and rec["plugin"]["layers"] == rec["plugin_layers"], p
        check = rec["verification"]
        assert check["clips"] == 64 and check["within_tolerance"], (p, check)


def test_the_jetson_check_prints_one_row_per_engine(fake_bundle, synth_clips, fakes, lib, capsys):
    spec = importlib.util.spec_from_file_location("trt_check", REPO / "benchmarks" / "trt_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    argv = ["--bundle", str(fake_bundle), "--precision", "fp32", "--plugin", str(lib), "--eval", str(synth_clips),
            "--eval-size", "4", "--rounds", "2"]
    assert check.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "TensorRT 10.16.1.11" and out[1].startswith("GPU Orin (sm 87) via cuda-python")
    assert out[2].split()[:2] == ["precision", "plugin"] and out[3].split()[:3] == ["fp32", "2", "100.0"]
    assert out[3].split()[-1] == "yes" and "4 held-out clips" in out[4]
    fakes.trt.fake.perturb = lambda logits: -logits
    assert check.main(argv) == 1 and "NO (< 99.0%)" in capsys.readouterr().out
