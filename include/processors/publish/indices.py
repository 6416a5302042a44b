"""Spectral indices: resolved from config, computed windowed in float32, written as COGs.

An index is declared per collection in ``config/collections.yaml`` (``indices:``), either

- by name from the Awesome Spectral Indices catalog, which the ``spyndex`` package ships as JSON
  (``spyndex/data/spectral-indices-dict.json``; read from the installed package, never online).
  Its formula uses standard band symbols (``B G R N N2 RE1 RE2 RE3 S1 S2 A WV``...), mapped to
  the collection's bands through their STAC ``common_name`` (or an alias), then through the
  symbol's wavelength range when no band has that common name (Landsat OLI's B5 is ``nir08``
  but serves as ``N``); constants (``L``, ``g``, ``C1``...) take the catalog's defaults unless
  the config's ``params`` set them; or
- as an ``expression`` over band names, checked by ``expressions.parse_expression``.

Both end up as a checked expression over our band names. ``write_indices`` evaluates them in
strips of ``blocksize`` rows on the grid of each index's finest input band (all indices of one
grid in one pass, each band decoded once per strip; a coarser band that tiles the grid exactly is
repeated pixel by pixel, any other warped, both nearest neighbour), in float32 and on
reflectance: each input is scaled with the scale/offset its COG declares (from the product
metadata or the collection's band config). A pixel is nodata when any input is nodata or the
result is not finite (division by zero). ``int16`` outputs store ``round(value / scale)``,
clipped to +-32767, nodata -32768; ``float32`` outputs store the value, nodata -9999.
"""

from __future__ import annotations

import ast
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from queue import Queue
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from include.common.config import BandConfig, CollectionConfig, IndexConfig
from include.common.errors import ConfigError, ProcessingError
from include.processors.grid import Grid, on_grid
from include.processors.publish.cog import CogInfo, CogOptions, write_cog
from include.processors.publish.expressions import Expression, evaluate, parse_expression

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CATALOG_NAME = "Awesome Spectral Indices"
INT16_NODATA = -32768
INT16_LIMIT = 32767
FLOAT32_NODATA = -9999.0
_SYNONYMS = {
    "rededge071": ("rededge1",),
    "rededge075": ("rededge2",),
    "rededge078": ("rededge3",),
    "nir08": ("nir08", "narrow_nir"),
}
"""Older STAC common names (and our aliases) that mean the catalog's band."""


@dataclass(frozen=True, slots=True)
class IndexDefinition:
    """A resolved index: the checked expression over band names and how to store it."""

    key: str
    title: str
    expression: Expression
    data_type: str
    scale: float
    source: str
    formula: str
    reference: str | None = None
    default: bool = True

    @property
    def nodata(self) -> float:
        """Return the nodata value of the stored index."""
        return float(INT16_NODATA) if self.data_type == "int16" else FLOAT32_NODATA

    @property
    def stored_scale(self) -> float | None:
        """Return the scale to apply to stored values (None for float32)."""
        return self.scale if self.data_type == "int16" else None


def _spyndex_json(name: str) -> dict[str, Any]:
    try:
        text = files("spyndex").joinpath("data", name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise ConfigError(
            "requirements.txt",
            "spyndex",
            f"the spyndex package or its {name} is missing; pip install -r requirements.txt",
        ) from err
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def catalog_indices() -> dict[str, dict[str, Any]]:
    """Return the Awesome Spectral Indices catalog (``spyndex``'s JSON), keyed by short name.

    Raises:
        ConfigError: when spyndex is not installed.
    """
    indices: dict[str, dict[str, Any]] = _spyndex_json("spectral-indices-dict.json")[
        "SpectralIndices"
    ]
    return indices


@cache
def catalog_bands() -> dict[str, dict[str, Any]]:
    """Return the catalog's standard band symbols (``N``, ``R``, ``RE1``...) with common names.

    Raises:
        ConfigError: when spyndex is not installed.
    """
    return _spyndex_json("bands.json")


@cache
def catalog_constants() -> dict[str, float | None]:
    """Return the catalog's constants (``L``, ``g``, ``C1``...) and their defaults.

    Raises:
        ConfigError: when spyndex is not installed.
    """
    return {
        name: (float(body["default"]) if body.get("default") is not None else None)
        for name, body in _spyndex_json("constants.json").items()
    }


def band_for_symbol(symbol: str, collection: CollectionConfig) -> BandConfig | None:
    """Return the collection band that plays the catalog's band ``symbol``, or None.

    First a spectral band whose ``common_name`` or alias is the symbol's common name (or an
    older synonym, e.g. ``rededge1`` for ``rededge071``); else the one spectral band whose
    centre wavelength lies in the symbol's range (the nearest to the range's middle if several).
    """
    info = catalog_bands().get(symbol)
    if info is None:
        return None
    spectral = [band for band in collection.bands if band.center_wavelength_um is not None]
    common = str(info["common_name"]).lower()
    wanted = {common, *_SYNONYMS.get(common, ())}
    for band in spectral:
        names = {(band.common_name or "").lower(), *(alias.lower() for alias in band.aliases)}
        if names & wanted:
            return band
    low, high = float(info["min_wavelength"]), float(info["max_wavelength"])
    middle = (low + high) / 2
    inside = [
        band
        for band in spectral
        if band.center_wavelength_um is not None and low <= band.center_wavelength_um * 1000 <= high
    ]
    if not inside:
        return None
    return min(inside, key=lambda band: abs((band.center_wavelength_um or 0) * 1000 - middle))


class _Rename(ast.NodeTransformer):
    """Replace catalog band symbols by band names and constants by their values."""

    def __init__(self, bands: Mapping[str, str], constants: Mapping[str, float]) -> None:
        self.bands = bands
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802 - ast visitor protocol
        if node.id in self.bands:
            return ast.copy_location(ast.Name(id=self.bands[node.id], ctx=node.ctx), node)
        if node.id in self.constants:
            return ast.copy_location(ast.Constant(value=self.constants[node.id]), node)
        return node


def resolve_index(key: str, config: IndexConfig, collection: CollectionConfig) -> IndexDefinition:
    """Resolve one configured index into a checked expression over the collection's bands.

    Args:
        key: the index's key under ``indices:`` (its asset key).
        config: its config.
        collection: the collection it belongs to.

    Returns:
        The resolved index.

    Raises:
        ConfigError: unknown catalog index, a band the collection lacks, an unset constant, or
            an expression token that is not allowed; naming collection, index and the culprit.
    """
    band_names = [band.name for band in collection.bands]
    field = f"collections.{collection.name}.indices.{key}"
    if config.expression is not None:
        expression = parse_expression(
            config.expression, bands=band_names, collection=collection.name, index=key
        )
        return IndexDefinition(
            key=key,
            title=key,
            expression=expression,
            data_type=config.data_type,
            scale=config.scale,
            source="expression",
            formula=config.expression,
            default=config.default,
        )
    name = config.name or key
    entry = catalog_indices().get(name)
    if entry is None:
        raise ConfigError(
            "collections.yaml",
            field,
            f"{name!r} is not in the {CATALOG_NAME} catalog (spyndex); use its short name "
            "such as NDVI, EVI, SAVI, NBR, NDWI, NDMI, or give an expression",
        )
    formula = str(entry["formula"])
    constants_known = catalog_constants()
    symbols: dict[str, str] = {}
    constants: dict[str, float] = {}
    for symbol in entry.get("bands", []):
        if symbol in catalog_bands():
            band = band_for_symbol(symbol, collection)
            if band is None:
                common = catalog_bands()[symbol]["common_name"]
                raise ConfigError(
                    "collections.yaml",
                    field,
                    f"{name} needs band {symbol} ({common}), which {collection.name} lacks; "
                    f"give a band common_name {common!r} or write an expression",
                )
            symbols[symbol] = band.name
        elif symbol in config.params:
            constants[symbol] = float(config.params[symbol])
        elif constants_known.get(symbol) is not None:
            constants[symbol] = float(constants_known[symbol] or 0.0)
        else:
            raise ConfigError(
                "collections.yaml",
                f"{field}.params.{symbol}",
                f"{name} needs constant {symbol}, which has no default; set it under params",
            )
    unknown_params = sorted(set(config.params) - set(constants))
    if unknown_params:
        raise ConfigError(
            "collections.yaml",
            f"{field}.params",
            f"{unknown_params} are not constants of {name} (it uses {sorted(constants) or 'none'})",
        )
    tree = ast.parse(formula, mode="eval")
    renamed = ast.fix_missing_locations(_Rename(symbols, constants).visit(tree))
    text = ast.unparse(renamed)
    expression = parse_expression(text, bands=band_names, collection=collection.name, index=key)
    return IndexDefinition(
        key=key,
        title=f"{name}: {entry.get('long_name', name)}",
        expression=expression,
        data_type=config.data_type,
        scale=config.scale,
        source=CATALOG_NAME,
        formula=formula,
        reference=entry.get("reference"),
        default=config.default,
    )


def resolve_indices(collection: CollectionConfig) -> list[IndexDefinition]:
    """Resolve every index the collection declares, in config order.

    Raises:
        ConfigError: for the first index that does not resolve.
    """
    return [resolve_index(key, config, collection) for key, config in collection.indices.items()]


INDEX_CACHE_BYTES = 256 * 2**20
"""GDAL block cache while indices are computed (GDAL's default is 5 % of the machine's RAM)."""


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path
    grid: Grid
    scale: float
    offset: float
    nodata: float | None
    is_scaled: bool


def _reflectance(
    raw: np.ndarray[Any, Any], source: _Input
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    if source.nodata is None:
        valid = np.ones(raw.shape, dtype=bool)
    else:
        valid = ~np.isnan(raw) if np.isnan(source.nodata) else raw != source.nodata
    values = raw.astype(np.float32)
    if source.is_scaled:
        values *= np.float32(source.scale)
        values += np.float32(source.offset)
    return values, valid


def write_index(
    definition: IndexDefinition,
    bands: Mapping[str, Path],
    dest: Path,
    *,
    options: CogOptions,
) -> CogInfo:
    """Compute one index from band rasters and write it as a validated COG, atomically.

    Raises:
        ProcessingError: when a band is missing or unreadable, or GDAL fails.
    """
    return write_indices([definition], bands, {definition.key: dest}, options=options)[
        definition.key
    ]


def write_indices(
    definitions: Sequence[IndexDefinition],
    bands: Mapping[str, Path],
    dests: Mapping[str, Path],
    *,
    options: CogOptions,
    workers: int = 1,
) -> dict[str, CogInfo]:
    """Compute several indices in one pass per output grid and write each as a validated COG.

    An index is computed on the grid of its finest input band. Indices that share that grid
    share one pass over it (NDVI, EVI, NBR... of a Sentinel-2 scene all land on the 10 m grid):
    each band is decoded once per strip for all of them, not once per index. A coarser band that
    tiles the grid exactly (Sentinel-2's 20 m bands on its 10 m grid) is repeated pixel by
    pixel, which is nearest-neighbour resampling without a warp; any other is warped.

    Args:
        definitions: the resolved indices.
        bands: a raster per band the expressions read (the published band COGs).
        dests: the COG to write, by index key.
        options: COG options (block size, compression, threads).
        workers: COGs written at the same time (threads).

    Returns:
        The written COGs' layouts by index key.

    Raises:
        ProcessingError: when a band is missing or unreadable, or GDAL fails.
    """
    for definition in definitions:
        missing = [name for name in definition.expression.bands if name not in bands]
        if missing:
            raise ProcessingError(
                f"{dests[definition.key].name}: index {definition.key} lacks band(s) {missing}"
            )
    needed = sorted({name for d in definitions for name in d.expression.bands})
    inputs = _read_inputs(needed, bands)
    groups: dict[Grid, list[IndexDefinition]] = {}
    for definition in definitions:
        finest = min(
            definition.expression.bands, key=lambda name: (inputs[name].grid.resolution, name)
        )
        groups.setdefault(inputs[finest].grid, []).append(definition)
    written: dict[str, CogInfo] = {}
    with rasterio.Env(GDAL_CACHEMAX=INDEX_CACHE_BYTES):  # strips are read once: little to reuse
        for grid, group in groups.items():
            written.update(_write_group(group, inputs, grid, dests, options, workers))
    return written


def _read_inputs(names: Sequence[str], bands: Mapping[str, Path]) -> dict[str, _Input]:
    inputs: dict[str, _Input] = {}
    try:
        for name in names:
            with rasterio.open(bands[name]) as ds:
                scale, offset = ds.scales[0], ds.offsets[0]
                inputs[name] = _Input(
                    path=bands[name],
                    grid=Grid(ds.crs, ds.transform, ds.width, ds.height),
                    scale=float(scale),
                    offset=float(offset),
                    nodata=ds.nodata,
                    is_scaled=(scale, offset) != (1.0, 0.0),
                )
    except RasterioError as err:
        raise ProcessingError(f"cannot read the bands of the indices: {err}") from err
    unscaled = [name for name, item in inputs.items() if not item.is_scaled]
    if unscaled:
        log.warning(
            "publish.index.unscaled bands=%s: no scale/offset declared, indices are computed "
            "on raw values",
            ",".join(unscaled),
        )
    return inputs


def _write_group(
    group: Sequence[IndexDefinition],
    inputs: Mapping[str, _Input],
    grid: Grid,
    dests: Mapping[str, Path],
    options: CogOptions,
    workers: int,
) -> dict[str, CogInfo]:
    """Compute ``group`` (indices on ``grid``) in one pass, then write their COGs."""
    tmps = {
        d.key: dests[d.key].with_name(f".{dests[d.key].name}.{uuid.uuid4().hex}.raw.tif")
        for d in group
    }
    try:
        for definition in group:
            dests[definition.key].parent.mkdir(parents=True, exist_ok=True)
        _compute(group, inputs, grid, tmps, options.blocksize, workers)

        def write(d: IndexDefinition) -> CogInfo:
            offset = 0.0 if d.stored_scale is not None else None
            return write_cog(
                tmps[d.key],
                dests[d.key],
                nodata=d.nodata,
                options=options,
                scale=d.stored_scale,
                offset=offset,
            )

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip((d.key for d in group), pool.map(write, group), strict=True))
    except RasterioError as err:
        keys = ", ".join(d.key for d in group)
        raise ProcessingError(f"GDAL failed computing {keys}: {err}") from err
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def _profile(definition: IndexDefinition, grid: Grid, block: int) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "int16" if definition.data_type == "int16" else "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": definition.nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "ZSTD",
        "zstd_level": 1,
        "bigtiff": "IF_SAFER",
    }


def _stored(definition: IndexDefinition, result: np.ndarray[Any, Any], valid: Any) -> Any:
    """Return ``result`` as the index stores it (int16 / scale, or float32), nodata set."""
    invalid = ~valid
    if definition.data_type == "int16":
        scaled = result / np.float32(definition.scale)
        np.putmask(scaled, invalid, 0)  # NaN and inf have no int16 value
        np.rint(scaled, out=scaled)
        np.clip(scaled, -INT16_LIMIT, INT16_LIMIT, out=scaled)
        stored = scaled.astype(np.int16)
        np.putmask(stored, invalid, INT16_NODATA)
        return stored
    return np.where(valid, result, np.float32(FLOAT32_NODATA))


class _StripReader:
    """Reads one band's rows of the output grid, resampled to it by nearest neighbour."""

    def __init__(self, stack: ExitStack, source: _Input, grid: Grid) -> None:
        self.dataset = stack.enter_context(rasterio.open(source.path))
        self.width = grid.width
        factor = 1 if source.grid == grid else source.grid.upsampling_factor(grid)
        self.factor = factor or 1
        if factor is None:
            self.dataset = stack.enter_context(on_grid(self.dataset, grid, self.dataset.nodata))

    def read(self, row: int, rows: int) -> np.ndarray[Any, Any]:
        """Return output rows ``row`` .. ``row + rows`` (all columns)."""
        k = self.factor
        if k == 1:
            return np.asarray(self.dataset.read(1, window=Window(0, row, self.width, rows)))
        first, last = row // k, -(-(row + rows) // k)
        coarse = self.dataset.read(1, window=Window(0, first, -(-self.width // k), last - first))
        fine = np.repeat(np.repeat(coarse, k, axis=0), k, axis=1)
        skip = row - first * k
        return np.asarray(fine[skip : skip + rows, : self.width])


def _compute(
    group: Sequence[IndexDefinition],
    inputs: Mapping[str, _Input],
    grid: Grid,
    tmps: Mapping[str, Path],
    rows_per_strip: int,
    workers: int,
) -> None:
    """Compute ``group`` strip by strip, ``workers`` strips at a time, written in order.

    Each strip borrows one of ``workers`` sets of open datasets (a GDAL dataset serves one
    thread at a time); decoding and numpy release the GIL, so strips overlap on several CPUs.
    At most two strips per worker are in flight, which bounds the memory.
    """
    names = sorted({name for d in group for name in d.expression.bands})
    with ExitStack() as stack:
        reader_sets: Queue[dict[str, _StripReader]] = Queue()
        for _ in range(workers):
            reader_sets.put({name: _StripReader(stack, inputs[name], grid) for name in names})

        def strip(row: int) -> dict[str, Any]:
            rows = min(rows_per_strip, grid.height - row)
            bands = reader_sets.get()
            try:
                values = {
                    name: _reflectance(bands[name].read(row, rows), inputs[name]) for name in names
                }
            finally:
                reader_sets.put(bands)
            stored = {}
            for definition in group:
                used = definition.expression.bands
                valid = np.logical_and.reduce([values[name][1] for name in used])
                result = evaluate(definition.expression, {name: values[name][0] for name in used})
                valid &= np.isfinite(result)
                stored[definition.key] = _stored(definition, result, valid)
            return stored

        outs = {
            d.key: stack.enter_context(
                rasterio.open(tmps[d.key], "w", **_profile(d, grid, rows_per_strip))
            )
            for d in group
        }
        rows = range(0, grid.height, rows_per_strip)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for row, stored in zip(rows, _in_order(pool, strip, rows, 2 * workers), strict=True):
                window = Window(0, row, grid.width, min(rows_per_strip, grid.height - row))
                for key, data in stored.items():
                    outs[key].write(data, 1, window=window)


def _in_order(
    pool: ThreadPoolExecutor, work: Callable[[int], _T], items: Sequence[int], ahead: int
) -> Iterator[_T]:
    """Yield ``work(item)`` for each item in order, with at most ``ahead`` submitted ahead."""
    pending: deque[Future[_T]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
