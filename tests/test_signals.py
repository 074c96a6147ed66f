"""Ctrl-C, SIGTERM and SIGHUP stop a study alike; a second signal while it saves is ignored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alrao_cli.errors import AlraoTerminated
from alrao_cli.study.signals import stop_signals_as_interrupt


@pytest.mark.parametrize(
    ("number", "raised"),
    [(signal.SIGTERM, AlraoTerminated), (signal.SIGHUP, AlraoTerminated), (signal.SIGINT, KeyboardInterrupt)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_the_first_signal_stops_and_later_ones_are_ignored_until_the_block_ends(number, raised):
    saved = []
    with stop_signals_as_interrupt() as first:
        assert first.signum is None and not first.polite
        with pytest.raises(raised):
            os.kill(os.getpid(), number)
            time.sleep(5)  # the signal interrupts this
        os.kill(os.getpid(), number)  # during "the final save": ignored
        os.kill(os.getpid(), signal.SIGTERM)
        saved.append("results")
    assert saved == ["results"]
    assert first.signum == number and first.polite == (raised is AlraoTerminated)  # the first, not the last
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_sighup_stops_a_real_screen_which_saves_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "alrao_cli", "screen", "mlp", "cnn1d", "--epochs", "50", "--subset", "512",
               "--no-plots", "--device", "cpu", "--out", str(out)]
    screen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "results.json").exists():
        assert time.monotonic() < deadline and screen.poll() is None, "the screen never started"
        time.sleep(0.1)
    time.sleep(1.0)
    screen.send_signal(signal.SIGHUP)
    _, stderr = screen.communicate(timeout=120)
    assert screen.returncode == 143, stderr
    assert "--resume" in stderr
    saved = json.loads(Path(out / "results.json").read_text())
    assert saved["interrupted"] is True
