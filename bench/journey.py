"""Benchmark: a Sentinel-2 L1C SAFE through toa -> nbar -> publish vs rio-cogeo, same run.

Usage: ``.venv/bin/python bench/journey.py [--size full|small] [--what-if NAME[+NAME]] [--keep]``

Input: a SAFE folder built once from the real metadata of
``S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911`` (eodag sample in
``../shared/realdata``: MTD_MSIL1C.xml and MTD_TL.xml copied unchanged) with its 13 bands as
lossless JP2 (JP2OpenJPEG, REVERSIBLE) at their real size (10 m 10980 px, 20 m 5490 px, 60 m
1830 px) on the MTD_TL georeference (EPSG:32631, UL 399960 4800000). Pixels: the real B01 JP2 of
that product (1830 x 1830, 41 % of it outside the swath, DN 0) resampled to each band's grid,
scaled per band and given noise; DN 0 stays 0. The SAFE is cached under ``--cache`` (default
``var/bench/journey``, git-ignored): the first full-size build writes 13 JP2s (about 2.5 minutes).
``--size small`` builds and runs a 1/6-linear-size copy (10 m bands 1830 px at 60 m).

Each contender runs in fresh interpreters (so each peak RSS is its own), on the same SAFE:

- ``baseline``: ``rio_cogeo.cogeo.cog_translate`` of each of the 13 JP2s to a COG (GDAL COG
  driver, DEFLATE + predictor 2, 512 px tiles, nodata 0, average overviews, ALL_CPUS), timed
  per band; the sum is the baseline. Each JP2 is read through a one-source VRT (see
  ``_plain_vrt``: rio-cogeo 7.0 fails on GDAL 3.10's Sentinel-2 JP2s otherwise). It runs
  before and after the journey and the ratio uses the mean of the two (the machine's load
  moves);
- ``journey``: the radcor step runner without Airflow (``include.radcor.step_runner.StepRunner``,
  activities in SQLite, the static STAC backend): the conf download S2_L1C-1 -> correction
  S2_TOA-1 (toa) -> harmonization S2_NBAR-1 (nbar) -> publish S2_NBAR-1 is validated and
  planned as the DAG does; the download activity is recorded as done with the SAFE folder as
  its output (the bench times processing, not transfer or unzipping), then correction,
  harmonization and publish each run in their own process, as Airflow runs each task (a GDAL
  setting one step leaves behind must not slow the next). The journey time is the sum of the
  three ``StepRunner.run`` calls (imports and interpreter start left out, as for the baseline).

Where the time goes: each step process wraps rasterio and the processors' GDAL entry points
and adds each call's duration, per step, to one category: ``decode`` (``read`` of a dataset or
WarpedVRT: JP2/GTiff/COG decompression), ``encode-gtiff`` (``write``/``close`` of a GTiff
being written: tile compression), ``cog-copy`` (``rasterio.shutil.copy`` to the COG driver:
reading the source again, overviews, compression), ``validate`` (COG layout check),
``checksum`` (BLAKE3 of each published file), ``runner`` (activity store, lineage, STAC upsert);
``compute`` is the rest of the processors' own time (numpy, angles, footprint, PNG). A call
inside another counts for the inner one only. Figures are thread-seconds: the steps work on
several bands at a time, so their categories add up to more than their wall time; waiting for
the band threads is left out. Inclusive times of named steps (toa ``convert_linear``, nbar
``harmonize_band`` and publish's band ``write_cog``, ``write_indices``, ``write_quicklook``,
``footprint``) are printed beside.

``--what-if`` runs the journey again with a change applied in the bench's own processes only
(the processors are not edited); several ``--what-if`` give several runs, ``a+b`` combines:

- ``no-indices``: publish writes no spectral index (the baseline writes none): the share of
  the journey the indices take;
- ``all-indices``: publish writes all seven indices S2_NBAR-1 declares (NDVI, EVI, SAVI, NBR,
  NDWI, NDMI, NDRE), not only the two it writes by default (the others are ``default: false``);
- ``one-band``: every processor works on one band at a time (``os.cpu_count`` patched to 1
  in the step processes; GDAL's own threads are unchanged).

The two changes this bench first measured as what-ifs landed on 2026-12-07: nbar writes tiled
GeoTIFF intermediates (publish alone writes COGs) and sets its GDAL block cache in bytes.

Threads, the same on both sides: every child runs with ``GDAL_NUM_THREADS=ALL_CPUS`` (JP2
decoding, COG compression). Beyond that the processors work on several bands at a time
(``workers``, default the CPUs up to 4: toa's conversions, nbar's bands, publish's band and
index COGs); rio-cogeo converts one file at a time. ``--what-if one-band`` runs the journey
with one band at a time, to show what that parallelism brings.

Prints the table, the ratio journey / baseline (target <= 1.5), the same ratio in CPU seconds
(less sensitive to a shared machine's load) and the peak RSS of each child (``ru_maxrss``;
target <= 2 GB for the journey). It asserts nothing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.env
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window
from shared import bench_scene, tiled_profile

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("REALDATA_DIR") or REPO.parent / "shared" / "realdata")
PRODUCT = "S2A_MSIL1C_20180101T105441_N0206_R051_T31TDH_20180101T124911"
GRANULE = "L1C_T31TDH_A013204_20180101T105435"
FILE_PREFIX = "T31TDH_20180101T105441"
SOURCE_DIR = REALDATA / "eodag" / "products" / PRODUCT
EPSG = 32631
TILE_ORIGIN = (399960.0, 4800000.0)  # MTD_TL.xml ULX/ULY
TILE_EXTENT_M = 109800.0
SOURCE_PX = 1830  # the real B01
DIVISORS = {"full": 1, "small": 6}
STRIP_ROWS = 1098
BANDS: dict[str, tuple[int, float, float]] = {
    # band: (resolution m, factor on B01's DN, noise sigma in DN) - rough L1C levels over land
    "B01": (60, 1.00, 8.0),
    "B02": (10, 0.92, 20.0),
    "B03": (10, 0.85, 20.0),
    "B04": (10, 0.80, 25.0),
    "B05": (20, 1.05, 20.0),
    "B06": (20, 1.45, 25.0),
    "B07": (20, 1.65, 25.0),
    "B08": (10, 1.80, 30.0),
    "B8A": (20, 1.90, 30.0),
    "B09": (60, 0.50, 10.0),
    "B10": (60, 0.03, 3.0),
    "B11": (20, 1.50, 25.0),
    "B12": (20, 1.00, 20.0),
}
SCENE_ID = PRODUCT
CONF: dict[str, Any] = {
    "tiles": ["31TDH"], "catalog": "cdse", "dataset": "S2MSI1C",
    "start": "2018-01-01T00:00:00Z", "end": "2018-01-01T23:59:59Z", "action": "start",
    "tasks": [
        {"type": "download", "collection": "S2_L1C-1", "tasks": [
            {"type": "correction", "collection": "S2_TOA-1", "tasks": [
                {"type": "harmonization", "collection": "S2_NBAR-1", "tasks": [
                    {"type": "publish", "collection": "S2_NBAR-1"}]}]}]}],
}  # fmt: skip
STEPS = ("correction", "harmonization", "publish")
CHILD_ENV = {"GDAL_NUM_THREADS": "ALL_CPUS"}
"""Every child (baseline and steps) runs with the same GDAL threads: JP2 decoding and COG
compression use all CPUs on both sides (rio-cogeo's ``config`` and the COG creation options say
the same)."""
CATEGORIES = ("decode", "compute", "encode-gtiff", "cog-copy", "validate", "checksum", "runner")


# --------------------------------------------------------------------------------------------
# The SAFE


def _band_size(band: str, divisor: int) -> int:
    return int(TILE_EXTENT_M / BANDS[band][0]) // divisor


def _write_band(b01: np.ndarray[Any, Any], band: str, divisor: int, dest: Path) -> None:
    """Write ``band`` as a lossless JP2: B01 resampled (nearest) to its grid, scaled, noisy."""
    resolution, factor, sigma = BANDS[band]
    size = _band_size(band, divisor)
    pixel = resolution * divisor
    rng = np.random.default_rng(int.from_bytes(band.encode(), "little"))
    raw = dest.with_name(f".{dest.stem}.raw.tif")
    profile = tiled_profile(
        size,
        size,
        dtype="uint16",
        crs=f"EPSG:{EPSG}",
        transform=Affine(pixel, 0.0, TILE_ORIGIN[0], 0.0, -pixel, TILE_ORIGIN[1]),
        BIGTIFF="IF_SAFER",
    )
    cols = np.arange(size) * SOURCE_PX // size
    try:
        with rasterio.open(raw, "w", **profile) as dst:
            for row in range(0, size, STRIP_ROWS):
                rows = min(STRIP_ROWS, size - row)
                source = b01[np.ix_(np.arange(row, row + rows) * SOURCE_PX // size, cols)]
                values = source.astype(np.float32) * np.float32(factor)
                values += rng.normal(0.0, sigma, values.shape).astype(np.float32)
                data = np.clip(np.rint(values), 1, 65535).astype(np.uint16)
                data[source == 0] = 0
                dst.write(data, 1, window=Window(0, row, size, rows))
        block = str(min(1024, size)) if resolution < 60 else "192"  # B01's own JP2 tiles: 192
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            rasterio.shutil.copy(
                raw,
                dest,
                driver="JP2OpenJPEG",
                QUALITY="100",
                REVERSIBLE="YES",
                BLOCKXSIZE=block,
                BLOCKYSIZE=block,
                NUM_THREADS="ALL_CPUS",
            )
    finally:
        raw.unlink(missing_ok=True)


def build_safe(cache: Path, size: str) -> tuple[Path, float]:
    """Return the cached SAFE for ``size`` (building it when absent) and the build seconds."""
    divisor = DIVISORS[size]
    root = cache / size
    safe = root / f"{PRODUCT}.SAFE"
    marker = root / "complete.json"
    if marker.is_file() and json.loads(marker.read_text()).get("divisor") == divisor:
        return safe, 0.0
    for name in ("MTD_MSIL1C.xml", f"GRANULE/{GRANULE}/MTD_TL.xml"):
        if not (SOURCE_DIR / name).is_file():
            sys.exit(f"real sample {SOURCE_DIR / name} is absent (set REALDATA_DIR)")
    started = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    img = safe / "GRANULE" / GRANULE / "IMG_DATA"
    img.mkdir(parents=True)
    shutil.copy2(SOURCE_DIR / "MTD_MSIL1C.xml", safe / "MTD_MSIL1C.xml")
    shutil.copy2(
        SOURCE_DIR / "GRANULE" / GRANULE / "MTD_TL.xml", safe / "GRANULE" / GRANULE / "MTD_TL.xml"
    )
    with rasterio.open(
        SOURCE_DIR / "GRANULE" / GRANULE / "IMG_DATA" / f"{FILE_PREFIX}_B01.jp2"
    ) as ds:
        b01 = ds.read(1)
    for band in BANDS:
        dest = img / f"{FILE_PREFIX}_{band}.jp2"
        band_started = time.perf_counter()
        _write_band(b01, band, divisor, dest)
        print(
            f"  built {dest.name} {_band_size(band, divisor)} px "
            f"{dest.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - band_started:.0f} s",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    marker.write_text(json.dumps({"divisor": divisor, "built_s": round(elapsed, 1)}))
    return safe, elapsed


def band_files(safe: Path) -> dict[str, Path]:
    """Return the SAFE's band JP2s by band name."""
    img = safe / "GRANULE" / GRANULE / "IMG_DATA"
    return {band: img / f"{FILE_PREFIX}_{band}.jp2" for band in BANDS}


# --------------------------------------------------------------------------------------------
# Baseline child


def _plain_vrt(src: Path) -> str:
    """Return a VRT reading band 1 of ``src`` unchanged, with its geotransform and CRS.

    rio-cogeo 7.0 takes a dataset that reports a GCP CRS for GCP-georeferenced, and GDAL 3.10's
    JP2OpenJPEG reports one (with no GCPs) for Sentinel-2 JP2s, the real ones too: cog_translate
    then fails with "Cannot invert geotransform". Through this VRT it reads the JP2 blocks as
    they are, with the JP2's geotransform.
    """
    with rasterio.open(src) as ds:
        gt = ",".join(repr(float(v)) for v in ds.transform.to_gdal())
        return (
            f'<VRTDataset rasterXSize="{ds.width}" rasterYSize="{ds.height}">'
            f"<SRS>{ds.crs.to_wkt()}</SRS><GeoTransform>{gt}</GeoTransform>"
            f'<VRTRasterBand dataType="UInt16" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{src.resolve()}</SourceFilename>'
            f"<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
        )


def child_baseline(safe: Path, out: Path) -> dict[str, Any]:
    """Convert each band JP2 to a COG with rio-cogeo (the GDAL COG driver); time each."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    out.mkdir(parents=True, exist_ok=True)
    per_band: dict[str, float] = {}
    cpu = _rusage_s()
    for band, src in band_files(safe).items():
        profile = cog_profiles.get("deflate")
        profile.update(
            blockxsize=512, blockysize=512, predictor=2, BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS"
        )
        dest = out / f"{band}.tif"
        vrt = out / f"{band}.vrt"
        vrt.write_text(_plain_vrt(src))
        started = time.perf_counter()
        cog_translate(
            str(vrt),
            str(dest),
            profile,
            nodata=0,
            overview_resampling="average",
            config={"GDAL_NUM_THREADS": "ALL_CPUS", "NUM_THREADS": "ALL_CPUS"},
            use_cog_driver=True,
            in_memory=False,
            quiet=True,
        )
        per_band[band] = time.perf_counter() - started
        dest.unlink()
        vrt.unlink()
    return {"total_s": sum(per_band.values()), "cpu_s": _rusage_s() - cpu, "per_band_s": per_band}


# --------------------------------------------------------------------------------------------
# Journey child: instrumentation


class Ledger:
    """Thread-seconds by (step, category), exclusive, and by (step, label), inclusive."""

    def __init__(self) -> None:
        self.step = "setup"
        self.exclusive: dict[tuple[str, str], float] = defaultdict(float)
        self.inclusive: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def timed(self, category: str | None, label: str | None = None) -> Iterator[None]:
        """Time a call: exclusively under ``category``, inclusively under ``label``."""
        stack: list[float] = self._local.__dict__.setdefault("stack", [])
        if category is not None:
            stack.append(0.0)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                if category is not None:
                    children = stack.pop()
                    if stack:
                        stack[-1] += elapsed
                    self.exclusive[(self.step, category)] += elapsed - children
                if label is not None:
                    self.inclusive[(self.step, label)] += elapsed
                    self.calls[(self.step, label)] += 1


def _wrap(
    ledger: Ledger, owner: Any, name: str, category: str | None, label: str | None = None
) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with ledger.timed(category, label):
            return original(*args, **kwargs)

    setattr(owner, name, timed)


def instrument(ledger: Ledger) -> None:
    """Patch rasterio's and the processors' entry points (this process only) to time them."""
    import concurrent.futures

    import rasterio.io
    import rasterio.vrt

    import include.processors.correction.common as correction
    import include.processors.correction.toa as toa
    import include.processors.harmonization.processor as nbar
    import include.processors.publish.cog as cog
    import include.processors.publish.processor as publish
    from include.radcor.step_runner import StepRunner

    _wrap(ledger, rasterio.io.DatasetReader, "read", "decode")
    _wrap(ledger, rasterio.vrt.WarpedVRT, "read", "decode")
    for writer in (rasterio.io.DatasetWriter, rasterio.io.BufferedDatasetWriter):
        _wrap(ledger, writer, "write", "encode-gtiff")
        _wrap(ledger, writer, "close", "encode-gtiff")
    _wrap(ledger, rasterio.shutil, "copy", "cog-copy")
    _wrap(ledger, cog, "validate_cog", "validate")
    _wrap(ledger, publish, "file_checksum", "checksum")
    _wrap(ledger, StepRunner, "run", "runner")
    for processor in (toa.ToaProcessor, nbar.NbarProcessor, publish.PublishProcessor):
        _wrap(ledger, processor, "run", "compute")
    _wrap(ledger, nbar, "harmonize_band", "compute", "harmonize_band (window loop, tiled GTiff)")
    _wrap(ledger, correction, "convert_linear", None, "convert_linear (JP2 -> zstd GTiff)")
    _wrap(ledger, publish, "write_cog", None, "publish band write_cog (-> COG)")
    _wrap(ledger, publish, "write_indices", None, "publish write_indices (index COGs)")
    _wrap(ledger, publish, "write_quicklook", None, "publish write_quicklook")
    _wrap(ledger, publish, "footprint", None, "publish footprint")

    original_as_completed = concurrent.futures.as_completed

    def as_completed(futures: Any, timeout: float | None = None) -> Iterator[Any]:
        iterator = iter(original_as_completed(futures, timeout))
        while True:
            with ledger.timed("wait"):
                future = next(iterator, None)
            if future is None:
                return
            yield future

    for module in (nbar, toa, publish):  # the step's main thread waiting for its band threads
        module.as_completed = as_completed  # type: ignore[attr-defined]
    _wrap(ledger, concurrent.futures.Future, "result", "wait")


WHAT_IFS = ("no-indices", "all-indices", "one-band")


def apply_what_if(names: list[str]) -> None:
    """Patch this process for each what-if (the processors' files are not edited)."""
    import include.processors.publish.processor as publish

    if "one-band" in names:  # the processors' default workers follow the CPU count
        os.cpu_count = lambda: 1
    if "no-indices" in names:
        publish.PublishProcessor._indices = staticmethod(  # type: ignore[method-assign]
            lambda *args, **kwargs: []
        )
    if "all-indices" in names:  # every declared index, as if none were default: false
        declared = publish.resolve_indices
        publish.resolve_indices = lambda collection: [  # type: ignore[assignment]
            dataclasses.replace(index, default=True) for index in declared(collection)
        ]


def _rusage_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_step(safe: Path, out: Path, step: str, what_if: list[str]) -> dict[str, Any]:
    """Run one step of the scene's plan through the step runner, as one Airflow task would.

    Each step runs in its own process (an Airflow task is one), with the activities in SQLite
    under ``out``; the first records the download as done with the SAFE folder as its output.
    """
    os.environ["DATA_DIR"] = str(out / "data")
    from include.catalog.static_stac import StaticStacBackend
    from include.radcor.activities import ActivityKey, ActivityState, ActivityStore
    from include.radcor.conf import TaskType
    from include.radcor.context import RunContext
    from include.radcor.plan import nodes_of_type, plan_scene
    from include.radcor.step_runner import StepRunner
    from include.radcor.validation import validate_request

    apply_what_if(what_if)
    ledger = Ledger()
    instrument(ledger)
    conf = validate_request(CONF)
    scene = bench_scene(
        SCENE_ID,
        catalog="cdse",
        dataset="S2MSI1C",
        when=datetime(2018, 1, 1, 10, 54, 41, tzinfo=UTC),
        tile="31TDH",
        platform="sentinel-2a",
    )
    backend = StaticStacBackend(out / "data" / "stac")
    plan = plan_scene(conf, scene, is_published=backend.exists)
    store = ActivityStore(f"sqlite:///{out / 'activities.sqlite'}")
    context = RunContext(dag_id="radcor", run_id="bench-journey")
    if step == STEPS[0]:
        download = nodes_of_type(plan, TaskType.DOWNLOAD)[0]
        store.describe_scene(context.run_id, scene)
        store.record(  # the SAFE is on disk: the download step's output, a SAFE folder
            ActivityKey(
                dag_id=context.dag_id,
                run_id=context.run_id,
                scene_id=SCENE_ID,
                node_id=download.node_id,
                task_type=str(download.type),
                collection=download.collection,
            ),
            ActivityState.SUCCESS,
            provider="cdse",
            outputs={"path": str(safe), "files": {"archive": str(safe)}},
        )

    def no_driver(name: str) -> Any:
        raise RuntimeError(f"the bench downloads nothing (asked for {name})")

    ledger.step = step
    runner = StepRunner(plan, context, store=store, backend=backend, driver_factory=no_driver)
    started, cpu = time.perf_counter(), _rusage_s()
    outcome = runner.run(TaskType(step))
    wall_s, cpu_s = time.perf_counter() - started, _rusage_s() - cpu
    if outcome.errors:
        raise outcome.errors[0]
    activity = next(a for a in store.for_run(context.run_id) if a.key.task_type == step)
    files = (activity.outputs or {}).get("files") or {}
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "state": str(activity.status),
        "output_mb": sum(Path(p).stat().st_size for p in files.values() if Path(p).is_file()) / 1e6,
        "exclusive": {c: v for (_, c), v in ledger.exclusive.items()},
        "inclusive": {label: v for (_, label), v in ledger.inclusive.items()},
        "calls": {label: v for (_, label), v in ledger.calls.items()},
    }


def run_child(command: list[str]) -> dict[str, Any]:
    """Run one child in a fresh interpreter; return its report (with its peak RSS)."""
    completed = subprocess.run(
        [sys.executable, __file__, *command],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={**os.environ, **CHILD_ENV},
    )
    if completed.returncode != 0:
        sys.exit(f"child {command} failed:\n{completed.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def run_baseline(safe: Path, out: Path) -> dict[str, Any]:
    """Run the rio-cogeo baseline in its own process."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return run_child(["--child", "baseline", "--safe", str(safe), "--out", str(out)])


def run_journey(safe: Path, out: Path, what_if: list[str]) -> dict[str, Any]:
    """Run correction, harmonization and publish, each in its own process, on a fresh folder."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    steps = {}
    for step in STEPS:
        command = ["--child", "step", "--step", step, "--safe", str(safe), "--out", str(out)]
        steps[step] = run_child(command + [f"--what-if={name}" for name in what_if])
    return {
        "total_s": sum(s["wall_s"] for s in steps.values()),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in steps.values()),
        "steps": steps,
    }


# --------------------------------------------------------------------------------------------
# Report


def print_journey(name: str, report: dict[str, Any], baseline_s: float) -> None:
    """Print a journey's step table, its time split and its named steps."""
    total = report["total_s"]
    print(f"\n{name}: {total:.1f} s, peak RSS {report['peak_rss_mb'] / 1024:.2f} GB")
    print(
        f"{'step':<14}{'wall s':>8}{'share':>7}{'CPU s':>7}{'RSS MB':>8}{'out MB':>8}"
        + "".join(f"{c:>13}" for c in CATEGORIES)
    )
    sums = dict.fromkeys(CATEGORIES, 0.0)
    for step in STEPS:
        facts = report["steps"][step]
        exclusive = facts["exclusive"]
        for category in CATEGORIES:
            sums[category] += exclusive.get(category, 0.0)
        print(
            f"{step:<14}{facts['wall_s']:>8.1f}{facts['wall_s'] / total:>7.0%}"
            f"{facts['cpu_s']:>7.0f}{facts['peak_rss_mb']:>8.0f}{facts['output_mb']:>8.0f}"
            + "".join(f"{exclusive.get(c, 0.0):>13.1f}" for c in CATEGORIES)
        )
    busy = sum(sums.values())
    print(f"{'all':<52}" + "".join(f"{sums[c]:>13.1f}" for c in CATEGORIES))
    print(
        f"{'share of thread-seconds':<52}" + "".join(f"{sums[c] / busy:>13.0%}" for c in CATEGORIES)
    )
    print("named steps (inclusive thread-seconds, calls):")
    for step in STEPS:
        facts = report["steps"][step]
        for label, seconds in facts["inclusive"].items():
            print(f"  {step:<14}{label:<48}{seconds:>8.1f} s  x{facts['calls'][label]}")
    print(f"ratio {name} / baseline = {total / baseline_s:.2f} (target <= 1.5)")


def main() -> None:
    """Build or reuse the SAFE, run the baseline and the journey(s), print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(DIVISORS), default="full")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench" / "journey")
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        help=f"run the journey again with these changes (+ joins several): {', '.join(WHAT_IFS)}",
    )
    parser.add_argument("--keep", action="store_true", help="keep the outputs of the runs")
    parser.add_argument("--child", choices=("baseline", "step"), help=argparse.SUPPRESS)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--safe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    variants = [sorted(set(value.split("+"))) for value in args.what_if]
    for names in variants:
        unknown = set(names) - set(WHAT_IFS)
        if unknown and args.child is None:
            parser.error(f"unknown --what-if {', '.join(sorted(unknown))}; use {WHAT_IFS}")
    if args.child == "baseline":
        report = child_baseline(args.safe, args.out)
        print(json.dumps({**report, "peak_rss_mb": _peak_mb()}))
        return
    if args.child == "step":
        names = [name for variant in variants for name in variant]
        report = child_step(args.safe, args.out, args.step, names)
        print(json.dumps({**report, "peak_rss_mb": _peak_mb()}))
        return

    safe, built_s = build_safe(args.cache, args.size)
    jp2_mb = sum(p.stat().st_size for p in band_files(safe).values()) / 1e6
    built = f"built in {built_s:.0f} s" if built_s else "cached"
    print(
        f"SAFE {safe}\n({args.size}: 10 m bands {_band_size('B02', DIVISORS[args.size])} px, "
        f"13 JP2 {jp2_mb:.0f} MB, {built}); {os.cpu_count()} CPUs, "
        f"load average before {os.getloadavg()[0]:.1f}"
    )
    spec = importlib.util.find_spec("include")
    print(f"code: {list(spec.submodule_search_locations or []) if spec else 'include not found'}")
    runs = args.cache / f"run-{args.size}"
    before = run_baseline(safe, runs / "baseline")
    journeys = {"journey": run_journey(safe, runs / "journey", [])}
    after = run_baseline(safe, runs / "baseline")
    for names in variants:
        label = "what-if " + "+".join(names)
        journeys[label] = run_journey(safe, runs / label.replace(" ", "-"), names)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for when, run in (("before", before), ("after", after)):
        print(
            f"\nbaseline rio-cogeo {when} the journey, 13 JP2 -> COG: {run['total_s']:.1f} s "
            f"(CPU {run['cpu_s']:.0f} s), peak RSS {run['peak_rss_mb'] / 1024:.2f} GB; per band "
            "s: " + ", ".join(f"{b} {v:.1f}" for b, v in run["per_band_s"].items())
        )
    baseline = {
        "total_s": (before["total_s"] + after["total_s"]) / 2,
        "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
        "peak_rss_mb": max(before["peak_rss_mb"], after["peak_rss_mb"]),
    }
    for label, report in journeys.items():
        print_journey(label, report, baseline["total_s"])
    first = journeys["journey"]
    for label, report in list(journeys.items())[1:]:
        change = report["total_s"] / first["total_s"] - 1
        print(
            f"{label}: {report['total_s']:.1f} s against the journey's {first['total_s']:.1f} s "
            f"({change:+.0%})"
        )
    cpu = sum(step["cpu_s"] for step in first["steps"].values())
    print(
        f"\nratio journey / baseline (mean of before and after) = "
        f"{first['total_s'] / baseline['total_s']:.2f} (target <= 1.5); CPU seconds "
        f"{cpu:.0f} / {baseline['cpu_s']:.0f} = {cpu / baseline['cpu_s']:.2f}; peak RSS journey "
        f"{first['peak_rss_mb'] / 1024:.2f} GB (target <= 2 GB), baseline "
        f"{baseline['peak_rss_mb'] / 1024:.2f} GB"
    )
    if not args.keep:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
