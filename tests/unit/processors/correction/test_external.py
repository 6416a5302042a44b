"""External programs (``sen2cor``, ``lasrc``) with fake programs honouring their command lines:
valid outputs, a hang (killed with its process group), a non-zero exit and a silent success."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tarfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from include.collectors.base import Scene
from include.common.config import load_collections
from include.common.errors import InvalidInputError, ProcessingError
from include.processors.base import ProcessorInputs, ProcessorResult
from include.processors.correction.external import (
    ExternalOptions,
    build_invocation,
    run_program,
)
from include.processors.registry import make_processor
from tests.helpers.realdata import realdata

FAKES = Path(__file__).resolve().parents[3] / "fixtures" / "correction"
PY = sys.executable
EODAG_N0206 = "eodag/products/S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
L1TP = "eo-datasets/LC08_L1TP_090084_20160121_20200907_02_T1"
SEN2COR_CMD = [PY, str(FAKES / "fake_sen2cor.py"), "--output_dir", "{output}", "{input}"]
LASRC_CMD = [
    PY, str(FAKES / "fake_lasrc.py"), "--input", "{input}", "--output", "{output}",
    "--scene", "{scene_id}",
]  # fmt: skip


def scene(scene_id: str, tile: str) -> Scene:
    return Scene(
        scene_id=scene_id, catalog="cdse", dataset="x", datetime=datetime(2018, 1, 1, tzinfo=UTC),
        cloud_pct=None, tile=tile, footprint=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def safe_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real eodag L1C (metadata, tile metadata, B01) zipped like a CDSE download."""
    source = realdata(EODAG_N0206)
    root = tmp_path_factory.mktemp("safe")
    safe = root / f"{source.name}.SAFE"
    shutil.copytree(source, safe)
    archive = root / f"{source.name}.SAFE.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(safe.rglob("*")):
            handle.write(path, path.relative_to(root).as_posix())
    return archive


@pytest.fixture(scope="module")
def landsat_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = realdata(L1TP)
    bundle = tmp_path_factory.mktemp("bundle") / f"{folder.name}.tar"
    with tarfile.open(bundle, "w") as handle:
        for path in sorted(folder.iterdir()):
            handle.add(path, arcname=path.name)
    return bundle


def sen2cor(archive: Path, out: Path, **args: Any) -> ProcessorResult:
    return make_processor("sen2cor").run(
        ProcessorInputs(
            scene=scene(archive.name.removesuffix(".SAFE.zip"), "31TDH"),
            collection=load_collections()["S2_SR_SEN2COR-1"],
            files={archive.name.removesuffix(".zip"): archive},
            output_dir=out,
            args={"command": SEN2COR_CMD, **args},
        )
    )


def lasrc(bundle: Path, out: Path, **args: Any) -> ProcessorResult:
    return make_processor("lasrc").run(
        ProcessorInputs(
            scene=scene(bundle.stem, "090084"),
            collection=load_collections()["LC8_SR_LASRC-1"],
            files={bundle.stem: bundle},
            output_dir=out,
            args={"command": LASRC_CMD, **args},
        )
    )


def test_sen2cor_valid_program_outputs_are_found_checked_and_converted(
    safe_zip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="include.processors.correction.external")
    result = sen2cor(safe_zip, tmp_path)
    expected = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12",
                "B8A", "SCL"]  # fmt: skip
    assert sorted(result.files) == expected
    l2a_dir = next((tmp_path / ".sen2cor" / "output").glob("*.SAFE"))
    source = next(l2a_dir.glob("GRANULE/*/IMG_DATA/R60m/*_B02_60m.tif"))
    with rasterio.open(source) as src, rasterio.open(result.files["B02"]) as out:
        # baseline 02.06 input: no BOA offset, so the DN are reflectance x 10000 already
        assert (src.read(1) == out.read(1)).all()
        assert out.crs.to_epsg() == 32631 and out.scales == (0.0001,)
    assert result.metadata["boa_add_offsets"] == {}
    assert result.metadata["sun_elevation_deg"] == pytest.approx(22.9645928799868)
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("sen2cor.stdout Progress[%]: 100.00") for m in messages)
    assert any(m.startswith("sen2cor.stderr W: no ECMWF data") for m in messages)


def test_sen2cor_non_zero_exit_fails_with_the_last_error_lines(
    safe_zip: Path, tmp_path: Path
) -> None:
    with pytest.raises(ProcessingError) as caught:
        sen2cor(safe_zip, tmp_path, command=[PY, str(FAKES / "fake_fail.py"), "{input}"])
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "ERROR: auxiliary data not found" in message and "ERROR: processing aborted" in message


def test_sen2cor_silent_success_without_outputs_fails(safe_zip: Path, tmp_path: Path) -> None:
    with pytest.raises(ProcessingError, match="wrote no L2A SAFE") as caught:
        sen2cor(safe_zip, tmp_path, command=[PY, str(FAKES / "fake_nothing.py")])
    assert "wrote nothing" in str(caught.value)


def test_sen2cor_hang_is_killed_with_its_process_group(
    safe_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_CHILD_PID_FILE", str(pid_file))
    started = time.monotonic()
    with pytest.raises(ProcessingError, match="killed after 2 s") as caught:
        sen2cor(safe_zip, tmp_path / "out", command=[PY, str(FAKES / "fake_hang.py")], timeout_s=2)
    assert time.monotonic() - started < 15
    assert "fake: working..." in str(caught.value)
    child = int(pid_file.read_text())
    assert _is_gone(child), "the hanging program's child survived the group kill"


def _is_gone(pid: int) -> bool:
    for _ in range(50):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True  # a zombie: dead, waiting to be reaped by init
        time.sleep(0.1)
    return False


def test_sen2cor_sun_below_its_limit_is_flagged_without_running(
    safe_zip: Path, tmp_path: Path
) -> None:
    result = sen2cor(safe_zip, tmp_path, min_sun_elevation_deg=30)
    assert result.files == {} and result.metadata["flags"] == ["sun_too_low"]
    assert not (tmp_path / ".sen2cor" / "output").exists()


def test_sen2cor_needs_a_safe_not_separate_assets(tmp_path: Path) -> None:
    band = realdata(f"{EODAG_N0206}/MTD_MSIL1C.xml")
    with pytest.raises(InvalidInputError, match="Sen2Cor needs the whole SAFE"):
        make_processor("sen2cor").run(
            ProcessorInputs(
                scene=scene("x", "31TDH"),
                collection=load_collections()["S2_SR_SEN2COR-1"],
                files={"product_metadata": band},
                output_dir=tmp_path,
            )
        )


def test_lasrc_valid_program_gives_sr_bands_and_fmask(landsat_tar: Path, tmp_path: Path) -> None:
    result = lasrc(landsat_tar, tmp_path)
    assert sorted(result.files) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "FMASK", "QA_PIXEL"]
    with rasterio.open(result.files["B4"]) as out:
        values = out.read(1)
        assert out.dtypes[0] == "int16" and out.nodata == -9999
    # the fake writes 0.9 x TOA: DN 23478 -> 0.9 * 0.448499 -> 4036
    assert values[30, 30] == 4036
    assert int((values == -9999).sum()) == 1200
    with rasterio.open(result.files["FMASK"]) as fmask:
        assert set(np.unique(fmask.read(1))) <= {0, 4, 255}


def test_lasrc_missing_band_or_fmask_fails_with_the_program_output(
    landsat_tar: Path, tmp_path: Path
) -> None:
    with pytest.raises(ProcessingError, match="lacks SR bands B3") as caught:
        lasrc(landsat_tar, tmp_path / "a", command=[*LASRC_CMD, "--skip-band", "3"])
    assert "lasrc (fake): done" in str(caught.value)
    with pytest.raises(ProcessingError, match="the Fmask file"):
        lasrc(landsat_tar, tmp_path / "b", command=[*LASRC_CMD, "--no-fmask"])
    result = lasrc(landsat_tar, tmp_path / "c", command=[*LASRC_CMD, "--no-fmask"], fmask=False)
    assert "FMASK" not in result.files


def test_lasrc_without_a_command_is_invalid(landsat_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="lasrc has no default command"):
        lasrc(landsat_tar, tmp_path, command=[])


def test_container_invocation_mounts_input_output_aux_and_limits_memory(tmp_path: Path) -> None:
    aux = tmp_path / "aux"
    aux.mkdir()
    options = ExternalOptions(
        command=["L2A_Process", "--output_dir", "{output}", "{input}"],
        image="registry.example/sen2cor:2.11",
        engine="podman",
        aux_dir=str(aux),
        memory="8g",
    )
    safe = tmp_path / "in" / "X.SAFE"
    invocation = build_invocation(
        options, input_path=safe, output_dir=tmp_path / "out", scene_id="X",
        default_command=(), name="sen2cor",
    )  # fmt: skip
    argv = list(invocation.argv)
    assert argv[:3] == ["podman", "run", "--rm"]
    assert f"{(tmp_path / 'in').resolve()}:/mnt/input:ro" in argv
    assert f"{(tmp_path / 'out').resolve()}:/mnt/output" in argv
    assert f"{aux.resolve()}:/mnt/aux:ro" in argv
    assert argv[argv.index("--memory") + 1] == "8g"
    image_at = argv.index("registry.example/sen2cor:2.11")
    assert argv[image_at + 1 :] == [
        "L2A_Process",
        "--output_dir",
        "/mnt/output",
        "/mnt/input/X.SAFE",
    ]
    name = argv[argv.index("--name") + 1]
    assert invocation.on_timeout == ("podman", "rm", "-f", name)


def test_invocation_errors_name_the_option(tmp_path: Path) -> None:
    bad = ExternalOptions(command=["run", "{inputt}"])
    with pytest.raises(InvalidInputError, match="options.command"):
        build_invocation(
            bad, input_path=tmp_path, output_dir=tmp_path, scene_id="x", default_command=(),
            name="sen2cor",
        )  # fmt: skip
    missing_aux = ExternalOptions(command=["run"], aux_dir=str(tmp_path / "nope"))
    with pytest.raises(InvalidInputError, match="options.aux_dir"):
        build_invocation(
            missing_aux, input_path=tmp_path, output_dir=tmp_path, scene_id="x",
            default_command=(), name="sen2cor",
        )  # fmt: skip
    assert ExternalOptions(command="L2A_Process --resolution 10").command == [  # type: ignore[arg-type]
        "L2A_Process", "--resolution", "10",
    ]  # fmt: skip


def test_run_program_missing_executable_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ProcessingError, match="cannot start"):
        run_program([str(tmp_path / "no-such-program")], timeout_s=5, name="sen2cor")


def test_run_program_returns_tail_and_exit_code() -> None:
    result = run_program(
        [PY, "-c", "import sys; print('a'); print('b', file=sys.stderr); sys.exit(4)"],
        timeout_s=30,
        name="probe",
        env={"PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 4
    assert set(result.tail) == {"a", "b"} and result.error_tail == ("b",)
    assert os.environ.get("PYTHONUNBUFFERED") != "probe"
