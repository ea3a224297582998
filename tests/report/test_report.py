"""``lightly-matrix report``: every section from saved data, numbers as saved, gaps named."""

from __future__ import annotations

import base64
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from report_runs import HISTORY, log_rows, make_pretrain_run, make_transfer_run, spectrum, write_csv

from lightly_matrix.cli import UserError
from lightly_matrix.cli import main as cli_main
from lightly_matrix.report import REPORT_FILE, report_after_run, write_report
from lightly_matrix.report.data import parse_spread, read_csv_logs

PRETRAIN_SECTIONS = [
    "Pretraining run",
    "Frozen-backbone probes",
    "Eigenvalue spectrum of the backbone features",
    "Training curves",
]
TRANSFER_SECTIONS = [
    "Mask R-CNN transfer",
    "Mask R-CNN training curves",
    "Detections on validation images",
]


def parse(path: Path) -> ET.Element:
    """The report as strict XML: fails on any unclosed tag or unescaped text."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    return ET.fromstring(text.split("\n", 1)[1])


def headings(root: ET.Element, tag: str = "h2") -> list[str]:
    return ["".join(h.itertext()) for h in root.iter(tag)]


def images(root: ET.Element) -> list[Image.Image]:
    decoded = []
    for img in root.iter("img"):
        header, data = img.attrib["src"].split(",", 1)
        assert header in ("data:image/png;base64", "data:image/jpeg;base64")
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()  # decodes every pixel
        assert image.width >= 64 and image.height >= 64
        decoded.append(image)
    return decoded


def not_available(root: ET.Element) -> list[str]:
    return ["".join(p.itertext()) for p in root.iter("p") if p.attrib.get("class") == "na"]


def tables(root: ET.Element) -> list[list[list[str]]]:
    return [
        [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]
        for table in root.iter("table")
    ]


def table_with(root: ET.Element, header: str) -> list[list[str]]:
    return next(t for t in tables(root) if header in t[0])


def test_report_of_a_complete_run_has_every_section(tmp_path: Path) -> None:
    make_pretrain_run(tmp_path / "demo" / "pretrain")
    make_transfer_run(tmp_path / "demo" / "transfer", images=3)
    path = write_report(tmp_path / "demo")
    assert path == tmp_path / "demo" / REPORT_FILE
    root = parse(path)
    assert headings(root) == PRETRAIN_SECTIONS + TRANSFER_SECTIONS
    assert not not_available(root)
    # probes, spectrum, curves, AP by size, AP by category, mmdet curves, 3 detection images
    assert len(images(root)) == 9
    # Nothing is loaded from outside the file.
    for element in root.iter():
        for attribute in ("href", "src"):
            assert element.attrib.get(attribute, "data:").startswith("data:")
    assert not list(root.iter("script"))


def test_numbers_equal_the_saved_files(pretrain_run: Path, transfer_run: Path) -> None:
    root = parse(write_report(pretrain_run))
    probes = table_with(root, "kNN top-1 (%)")
    assert probes[0] == [
        "epoch",
        "step",
        "kNN top-1 (%)",
        "linear top-1 (%)",
        "10 labels/class top-1 (%)",
        "eval time (s)",
    ]
    saved = json.loads((pretrain_run / "metrics.json").read_text())["history"]
    for row, cells in zip(saved, probes[1:], strict=False):
        keys = ("knn_top1", "linear_top1", "few_label_top1", "eval_s")
        assert cells[2:] == [f"{row[k]:.2f}" for k in keys]
        assert cells[1] == str(row["step"]) and cells[0].startswith(str(row["epoch"]))
    change = probes[-1]
    assert change[0] == "change 0 -> 4"
    assert [float(c) for c in change[2:5]] == pytest.approx(
        [HISTORY[-1][k] - HISTORY[0][k] for k in ("knn_top1", "linear_top1", "few_label_top1")],
        abs=0.005,
    )
    spectra = json.loads((pretrain_run / "spectrum.json").read_text())["evaluations"]
    ranks = table_with(root, "effective rank")
    for evaluation, cells in zip(spectra, ranks[1:], strict=True):
        share = [v / sum(evaluation["eigenvalues"]) for v in evaluation["eigenvalues"]]
        assert cells[:3] == [
            str(evaluation["epoch"]),
            f"{evaluation['effective_rank']:.2f}",
            f"{evaluation['matrix_entropy']:.2f}",
        ]
        assert cells[3] == f"{100 * share[0]:.2f}"

    root = parse(write_report(transfer_run))
    results = json.loads((transfer_run / "results.json").read_text())
    ap = table_with(root, "AP50")
    assert ap[1][:3] == [
        "box AP (%)",
        f"{100 * results['bbox']['mAP']:.2f}",
        f"{100 * results['bbox']['AP50']:.2f}",
    ]
    assert ap[1][-1] == ""  # -1 (no large objects) is no number
    categories = table_with(root, "category")
    cells = {row[0]: row[1:] for row in categories[1:]}
    metrics = results["metrics"]
    assert cells["triangle"] == [
        f"{100 * metrics['coco/bbox_triangle_precision']:.2f}",
        f"{100 * metrics['coco/segm_triangle_precision']:.2f}",
    ]


@pytest.mark.parametrize(
    ("kept", "missing"),
    [
        (
            dict(metrics=False, spectra=False, logs=False),
            ["settings", "probe table", "spectrum", "training curves"],
        ),
        (dict(spectra=False), ["eigenvalue spectrum"]),
        (dict(logs=False), ["training curves"]),
        (dict(metrics=False, spectra=False), ["settings", "probe table", "spectrum"]),
    ],
)
def test_missing_data_is_named_never_drawn(tmp_path: Path, kept: dict, missing: list[str]) -> None:
    run = make_pretrain_run(tmp_path / "run", **kept)
    (run / "last.ckpt").write_bytes(b"")  # a run that saved only its checkpoint is still a run
    root = parse(write_report(run))
    assert headings(root) == PRETRAIN_SECTIONS
    notices = " ".join(not_available(root)).lower()
    for what in missing:
        assert what in notices
    # The summary at the top lists the same.
    summary = [li for ul in root.iter("ul") for li in ul.iter("li")]
    assert len(summary) >= len(missing)
    drawn = 3 - sum(not kept.get(k, True) for k in ("metrics", "spectra", "logs"))
    assert len(images(root)) == drawn


def test_old_transfer_run_lists_what_it_did_not_save(tmp_path: Path) -> None:
    work = make_transfer_run(tmp_path / "work", classwise=False, scalars=False, images=0)
    root = parse(write_report(work))
    assert headings(root) == TRANSFER_SECTIONS
    notices = " ".join(not_available(root))
    assert "AP per category" in notices and "loss curves" in notices
    assert "validation images" in notices
    assert len(images(root)) == 1  # AP by IoU and size, from results.json


def test_unfinished_pretraining_run_says_so(tmp_path: Path) -> None:
    run = make_pretrain_run(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["run"]["train_wall_s"]  # only a finished run has it
    (run / "metrics.json").write_text(json.dumps(metrics))
    root = parse(write_report(run))
    assert any(text.startswith("Not finished") for text in not_available(root))
    assert not any(text.startswith("Not finished") for text in not_available(parse(
        write_report(make_pretrain_run(tmp_path / "finished"))
    )))  # fmt: skip


def test_interrupted_transfer_without_results(tmp_path: Path) -> None:
    work = make_transfer_run(tmp_path / "work")
    (work / "results.json").unlink()
    root = parse(write_report(work))
    assert "no results.json" in " ".join(not_available(root))
    assert len(images(root)) == 3  # the loss curves and two images drawn before the kill


def test_resumed_run_logs_are_joined(tmp_path: Path) -> None:
    # The first start logged steps 0..29 and was killed; the resume restarted from step 20.
    write_csv(tmp_path / "csv" / "version_0" / "metrics.csv", log_rows(0, 30))
    resumed = [
        dict(row, train_loss_step=-1.0) for row in log_rows(20, 40) if "train_loss_step" in row
    ]
    write_csv(tmp_path / "csv" / "version_1" / "metrics.csv", resumed)
    curve = read_csv_logs(tmp_path / "csv")["train_loss_step"]
    assert [step for step, _, _ in curve] == list(range(40))
    assert all(value == -1.0 for step, _, value in curve if step >= 20)
    assert all(value != -1.0 for step, _, value in curve if step < 20)
    # A truncated last row (a kill mid-write) is skipped, not an error.
    with open(tmp_path / "csv" / "version_1" / "metrics.csv", "a") as f:
        f.write("0.5,3")
    assert len(read_csv_logs(tmp_path / "csv")["train_loss_step"]) == 40


def test_cli_errors_are_one_line_and_nothing_is_overwritten(
    tmp_path: Path, pretrain_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def error(*argv: str) -> str:
        assert cli_main(["report", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("lightly-matrix report: error:")
        return err

    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty") in error(str(tmp_path / "empty"))
    assert str(tmp_path / "nope") in error(str(tmp_path / "nope"))
    assert "--reference" in error(str(pretrain_run), "--reference", str(tmp_path / "nope.json"))
    assert "--images" in error(str(pretrain_run), "--images", "-1")
    assert "--out" in error(
        str(pretrain_run), "--out", str(pretrain_run / "metrics.json" / "r.html")
    )
    mine = pretrain_run / "report.html"
    mine.write_text("<html>my own notes</html>")
    assert str(mine) in error(str(pretrain_run))
    assert mine.read_text() == "<html>my own notes</html>"
    # A report it wrote itself is replaced; --out writes elsewhere.
    out = tmp_path / "elsewhere" / "r.html"
    assert cli_main(["report", str(pretrain_run), "--out", str(out)]) == 0
    assert cli_main(["report", str(pretrain_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"report: {out}")
    parse(out)


def test_reference_spreads(tmp_path: Path, pretrain_run: Path) -> None:
    assert parse_spread("92.35 ± 0.57") == (92.35, 0.57)
    assert parse_spread("-4.51 +- 1.66") == (-4.51, 1.66)
    assert parse_spread("n/a") is None and parse_spread(None) is None
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps(
            {
                "epochs": 4,
                "seeds": [0, 1, 2],
                "probes": {"knn_top1": {"before": "92.35 ± 0.57", "after": "87.84 ± 1.26"}},
            }
        )
    )
    assert cli_main(["report", str(pretrain_run), "--reference", str(reference)]) == 0
    assert len(images(parse(pretrain_run / REPORT_FILE))) == 3


def test_without_matplotlib_a_one_line_hint(
    pretrain_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(UserError, match=r"lightly-matrix\[report\]"):
        write_report(pretrain_run)
    # At the end of a run the report is skipped with the same line; the run does not fail.
    assert report_after_run(pretrain_run) is None
    out = capsys.readouterr().out.strip()
    assert out.startswith("report not written:") and "lightly-matrix[report]" in out
    assert not (pretrain_run / REPORT_FILE).exists()
    assert report_after_run(pretrain_run, enabled=False) is None


def test_spectrum_figure_survives_a_collapsed_run(tmp_path: Path) -> None:
    run = make_pretrain_run(tmp_path / "run", spectra=False)
    collapsed = dict(spectrum(4), eigenvalues=[1.0] + [0.0] * 31, effective_rank=1.0)
    (run / "spectrum.json").write_text(json.dumps({"evaluations": [spectrum(0), collapsed]}))
    root = parse(write_report(run))
    assert table_with(root, "effective rank")[2][:2] == ["4", "1.00"]
    assert len(images(root)) == 3


def test_unreadable_or_foreign_files_are_listed_not_fatal(tmp_path: Path) -> None:
    run = make_pretrain_run(tmp_path / "run")
    (run / "metrics.json").write_text("[1, 2]")  # valid JSON, not ours
    evaluations = [spectrum(0), {"epoch": "four", "eigenvalues": "none"}]
    (run / "spectrum.json").write_text(json.dumps({"evaluations": evaluations}))
    root = parse(write_report(run))
    assert headings(root)[-1] == "Files that could not be read"
    assert "metrics.json: not a JSON object" in "".join(root.itertext())
    assert len(table_with(root, "effective rank")) == 2  # header + the one valid evaluation
    # Dropped without a word before.
    assert "spectrum.json: 1 malformed evaluation(s), not drawn" in "".join(root.itertext())
    (run / "metrics.json").write_text('{"history": [{"epoch": 0, "knn_top1": 90.0')  # truncated
    assert "metrics.json" in "".join(parse(write_report(run)).itertext())


def test_a_truncated_metrics_file_is_called_unreadable_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_pretrain_run(tmp_path / "run")
    (run / "metrics.json").write_text((run / "metrics.json").read_text()[:50])
    assert cli_main(["report", str(run)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "metrics.json: Expecting" in notes[0]
    root = parse(run / REPORT_FILE)
    notices = not_available(root)
    assert sum("metrics.json is unreadable (Expecting" in n for n in notices) == 2
    assert "--no-eval" not in "".join(root.itertext()).replace("spectrum.json", "")
