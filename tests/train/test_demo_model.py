"""The bundled demo models (window and causal) still recognise synthetic motion they never saw.

A change to the synthetic clips, the clip contract or the model code that the demo model was not
retrained for shows up here first. The full check (500 held-out clips) is `lvt-edge build`.
"""

from __future__ import annotations

import pytest
import torch

from lvt_edge.data import decode_clips, open_clipset
from lvt_edge.data.synth import LABELS, REVERSED_PAIRS, generate
from lvt_edge.demo import demo_checkpoint
from lvt_edge.model.checkpoint import load_checkpoint
from lvt_edge.training import evaluate
from lvt_edge.training.trainer import partner_index

UNSEEN_SEED = 777  # neither training (train seed 0, val seed 1) nor the build's held-out clips


@pytest.fixture(scope="module")
def unseen_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("unseen")
    generate(root / "clips", split="test", num=2 * len(LABELS) * 10, seed=UNSEEN_SEED, progress=False)
    return root / "clips"


@pytest.mark.parametrize("name", ["demo", "demo-causal"])  # measured: 98.2 / 98.6 %, backwards 99.1 / 98.2 %
def test_demo_model_recognises_unseen_motion(unseen_clips, name):
    ckpt = load_checkpoint(demo_checkpoint(name))
    assert ckpt.contract.labels == LABELS and ckpt.config.causal == (name == "demo-causal")
    data = decode_clips(open_clipset(unseen_clips, labels=ckpt.contract.labels), ckpt.contract, progress=False)
    frames, labels = torch.from_numpy(data.frames), torch.from_numpy(data.labels)
    _, top1 = evaluate(ckpt.model, frames, labels, ckpt.contract)
    assert top1 >= 0.9, f"{name} top-1 on 220 unseen clips is {top1:.3f}"
    # Order matters: every clip played backwards is read as its time-reversed class, not its own.
    partner = partner_index(LABELS, REVERSED_PAIRS)
    reversed_ok = evaluate(ckpt.model, frames.flip(1), partner[labels], ckpt.contract)[1]
    assert reversed_ok >= 0.85, f"{name} top-1 on the same clips played backwards is {reversed_ok:.3f}"
