"""``lightly-matrix report`` on hostile inputs: one line or a noted problem, never a traceback."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from messages import assert_names
from report_runs import make_pretrain_run, make_transfer_run

from lightly_matrix.cli import main as cli_main
from lightly_matrix.report import write_report
from lightly_matrix.report.pretrain import _reference_series


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` pixels (decoding it would take gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_out_that_is_not_a_regular_file_is_refused(tmp_path, capsys, kind):
    run = make_pretrain_run(tmp_path / "run")
    if kind == "fifo":
        out = tmp_path / "pipe.html"
        os.mkfifo(out)  # opening it to read the head would wait for a writer forever
    else:
        out = Path("/dev/zero")  # reading it "whole" never ends
    assert cli_main(["report", str(run), "--out", str(out)]) == 2
    assert_names(capsys.readouterr().err, str(out), "regular file")
    assert kind == "device" or not out.is_file()


def test_a_large_foreign_out_is_refused_after_reading_its_head_only(tmp_path, capsys, monkeypatch):
    run = make_pretrain_run(tmp_path / "run")
    out = tmp_path / "big.html"
    with open(out, "wb") as f:
        f.truncate(3 << 30)  # sparse 3 GB
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the whole file"))
    assert cli_main(["report", str(run), "--out", str(out)]) == 2
    assert_names(capsys.readouterr().err, str(out), "not written by lightly-matrix report")
    assert out.stat().st_size == 3 << 30


@pytest.mark.parametrize(
    "reference",
    [
        {"probes": {"knn_top1": "92 ± 1"}},
        {"probes": ["knn_top1"]},
        {"transfer": {"row": "random init"}},
        {"transfer": ["random init"]},
        {"epochs": "twenty"},
        [1, 2],
        {"foo": 1},  # p43: accepted, nothing drawn
        {"epochs": 20, "seeds": [0]},
    ],
)
def test_malformed_reference_is_one_line(tmp_path, capsys, reference):
    run = make_pretrain_run(tmp_path / "run")
    make_transfer_run(tmp_path / "run" / "transfer")
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(reference))
    assert cli_main(["report", str(run), "--reference", str(ref)]) == 2
    assert_names(capsys.readouterr().err, str(ref), "demo_reference")
    assert not (run / "report.html").exists()


def test_reference_that_is_a_device_is_one_line(tmp_path, capsys):
    run = make_pretrain_run(tmp_path / "run")
    assert cli_main(["report", str(run), "--reference", "/dev/zero"]) == 2
    assert_names(capsys.readouterr().err, "/dev/zero", "JSON")
    assert cli_main(["report", str(run), "--reference", str(tmp_path / "no.json")]) == 2
    assert_names(capsys.readouterr().err, "no.json", "does not exist")


def test_a_reference_is_labelled_with_its_method_and_length():
    reference = {"label": "CorInfoMax", "epochs": 20, "seeds": [0, 1, 2]}
    reference["probes"] = {"knn_top1": {"before": "92.35 ± 0.57", "after": "97.1 ± 0.4"}}
    (series,) = _reference_series(reference, "knn_top1", "kNN", "C0")
    assert series.label == "kNN, CorInfoMax 20 epochs mean ± std of 3 seeds"


def test_a_folder_named_like_a_run_file_is_listed_as_unreadable(tmp_path, capsys):
    run = make_pretrain_run(tmp_path / "run")
    (run / "spectrum.json").unlink(missing_ok=True)
    (run / "spectrum.json").mkdir()
    assert cli_main(["report", str(run)]) == 0
    assert "spectrum.json: is a folder, not a file" in capsys.readouterr().out


def test_null_probe_values_are_drawn_as_missing(tmp_path):
    run = make_pretrain_run(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["history"][-1]["knn_top1"] = None
    metrics["history"][0]["linear_top1"] = "n/a"
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = write_report(run).read_text()
    assert "Frozen-backbone probes" in text and "change 0 -&gt;" in text


@pytest.mark.parametrize("key", ["metrics", "bbox", "segm"])
def test_results_with_a_string_where_an_object_belongs(tmp_path, key):
    work = make_transfer_run(tmp_path / "work")
    results = json.loads((work / "results.json").read_text())
    results[key] = "oops"
    (work / "results.json").write_text(json.dumps(results))
    text = write_report(work).read_text()
    assert f"results.json: &#x27;{key}&#x27; is not a JSON object" in text


def test_a_huge_image_is_skipped_and_named(tmp_path):
    work = make_transfer_run(tmp_path / "work", images=2)
    (huge,) = [next(work.glob("*/vis_test"))]
    _png_header(huge / "000000000000.png", 40000, 40000)
    text = write_report(work).read_text()
    assert "000000000000.png: 40000 x 40000 pixels" in text or "decompression bomb" in text
    assert text.count("data:image/jpeg;base64") == 1
