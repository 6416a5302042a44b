"""The publish processor: band COGs, quicklook + thumbnail PNGs and a STAC Item for one scene.

Registered as ``publish``. It reads the parent step's files (asset key -> local path), keeps the
ones whose key names a band of the target collection (by name or alias, e.g. ``B04`` or ``red``),
and writes into ``inputs.output_dir``:

- ``<scene>_<band>.tif`` per band: COG, 512 px tiles, internal overviews, deflate/zstd with a
  predictor, the band's nodata; validated after writing;
- ``<scene>_quicklook.png`` and ``<scene>_thumbnail.png``: RGB of the collection's quicklook
  bands, percentile stretch, nodata transparent (when the collection has a quicklook config and
  the three bands are present);
- ``<scene>_<index>.tif`` per spectral index the collection publishes (``indices.py``), computed
  from the band COGs on reflectance, int16 x 10000 or float32; an index whose bands were not
  all published is skipped with a warning;
- the STAC Item (returned, not written: the catalog backend stores it).

Every file is written under a temporary name and renamed into place, so a rerun overwrites
atomically and gives the same item. Task args (all optional): ``compress`` (deflate|zstd),
``level``, ``blocksize``, ``num_threads`` (default ``$COLLECTION_BUILDER_NUM_THREADS`` or
ALL_CPUS), ``overview_resampling``, ``quicklook`` (bool), ``footprint_band``, ``indices`` (bool,
or a list of index keys to compute; default the collection's indices not declared
``default: false``), ``footprint``
(``data``: the valid-data outline first, the default; ``metadata``: the product metadata's
footprint first), ``workers`` (band and index COGs written at the same time, default the CPUs
up to 4).

When the input files include product metadata (MTD_MSIL1C/2A.xml + MTD_TL.xml, or a Landsat
MTL + ANG; see ``metadata.py``), the item takes its datetime, cloud cover and platform from it
(a cloud cover recomputed by a post step still wins), and its footprint when asked (or when the
data gives none).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, cast

import rasterio.warp
from shapely.geometry import box, mapping

from include.common.config import BandConfig, CollectionConfig
from include.common.errors import ConfigError, FieldProblem, InvalidInputError
from include.common.progress import ProgressFn
from include.common.storage import safe_component
from include.processors.base import Processor, ProcessorInputs, ProcessorResult
from include.processors.correction.common import default_workers
from include.processors.products.package import (
    SceneHints,
    open_package,
    require_sensor,
    resolve_bands,
)
from include.processors.publish.cog import CogInfo, CogOptions, Compression, write_cog
from include.processors.publish.indices import IndexDefinition, resolve_indices, write_indices
from include.processors.publish.metadata import product_facts
from include.processors.publish.quicklook import PNG_MEDIA_TYPE, THUMBNAIL_PX, write_quicklook
from include.processors.publish.stac_item import (
    PublishedBand,
    PublishedFile,
    PublishedIndex,
    build_item,
    file_checksum,
    footprint,
)
from include.processors.registry import register

log = logging.getLogger(__name__)

PUBLISH_VERSION = "0.1.0"
_ARG_KEYS = (
    "workers",
    "compress",
    "level",
    "blocksize",
    "num_threads",
    "overview_resampling",
    "quicklook",
    "footprint_band",
    "indices",
    "footprint",
)
_FOOTPRINT_SOURCES = ("data", "metadata")


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """The publish task's args, validated."""

    cog: CogOptions
    quicklook: bool = True
    footprint_band: str | None = None
    indices: bool | tuple[str, ...] = True
    footprint: str = "data"
    workers: int = field(default_factory=default_workers)
    """Bands written at the same time (threads)."""

    def for_band(self, band: BandConfig) -> CogOptions:
        """Return the COG options of a band: masks and class bands get nearest overviews.

        A band without a wavelength (``SCL``, ``QA_PIXEL``) holds classes or bit flags, which
        averaging would corrupt.
        """
        if band.center_wavelength_um is None:
            return replace(self.cog, overview_resampling="nearest")
        return self.cog

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> PublishOptions:
        """Validate task args into options.

        Raises:
            InvalidInputError: naming each unknown key or bad value.
        """
        unknown = sorted(set(args) - set(_ARG_KEYS))
        if unknown:
            raise InvalidInputError(
                [
                    FieldProblem(
                        f"args.{key}", "is not a publish option", f"use {', '.join(_ARG_KEYS)}"
                    )
                    for key in unknown
                ]
            )
        level = args.get("level")
        blocksize = args.get("blocksize", 512)
        if (level is not None and not isinstance(level, int)) or not isinstance(blocksize, int):
            raise InvalidInputError(
                FieldProblem("args.level/args.blocksize", "must be integers", "give whole numbers")
            )
        quicklook = args.get("quicklook", True)
        if not isinstance(quicklook, bool):
            raise InvalidInputError(
                FieldProblem("args.quicklook", f"{quicklook!r}", "use true or false")
            )
        footprint_band = args.get("footprint_band")
        indices = args.get("indices", True)
        if isinstance(indices, list) and all(isinstance(key, str) for key in indices):
            indices = tuple(indices)
        elif not isinstance(indices, bool):
            raise InvalidInputError(
                FieldProblem(
                    "args.indices", f"{indices!r}", "use true, false or a list of index names"
                )
            )
        workers = args.get("workers", default_workers())
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 32:
            raise InvalidInputError(
                FieldProblem("args.workers", f"{workers!r} is not valid", "use 1..32")
            )
        footprint = str(args.get("footprint", "data")).lower()
        if footprint not in _FOOTPRINT_SOURCES:
            raise InvalidInputError(
                FieldProblem("args.footprint", f"{footprint!r}", "use data or metadata")
            )
        cog = CogOptions(
            compress=cast(Compression, str(args.get("compress", "deflate")).lower()),
            level=level,
            blocksize=blocksize,
            num_threads=str(args.get("num_threads") or CogOptions.default_num_threads()).upper(),
            overview_resampling=str(args.get("overview_resampling", "average")).lower(),
        )
        return cls(
            cog=cog,
            quicklook=quicklook,
            footprint_band=str(footprint_band) if footprint_band is not None else None,
            indices=indices,
            footprint=footprint,
            workers=workers,
        )


def _each_band(
    work: Callable[[BandConfig, Path], PublishedBand],
    selected: list[tuple[BandConfig, Path]],
    workers: int,
    progress: ProgressFn | None,
) -> list[PublishedBand]:
    """Run ``work`` on each band, ``workers`` at a time; return the results in band order.

    GDAL's reading, overviews and compression and the checksum release the GIL. ``progress``
    gets the input bytes done and in all.
    """
    total_in = sum(path.stat().st_size for _, path in selected)
    done_in = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, band, src): src for band, src in selected}
        try:
            for future in as_completed(futures):
                future.result()
                done_in += futures[future].stat().st_size
                if progress is not None:
                    progress(done_in, total_in)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [future.result() for future in futures]


def _raster_bounds(cog: CogInfo) -> dict[str, Any]:
    a, _, c, _, e, f = cog.transform
    native = box(c, f + e * cog.height, c + a * cog.width, f)
    result: dict[str, Any] = rasterio.warp.transform_geom(cog.crs_wkt, "EPSG:4326", mapping(native))
    return result


@register("publish")
class PublishProcessor(Processor):
    """Publish one scene: band COGs, quicklook/thumbnail PNGs and the STAC Item.

    Idempotent: outputs have fixed names in ``output_dir`` and are replaced atomically; the item
    has no timestamps of its own, so a rerun gives the same item. Input files are only read.
    Raises ``InvalidInputError`` when no input file names a band of the collection or a file is
    missing, ``ProcessingError`` when GDAL fails or a written COG is not valid.
    """

    name: ClassVar[str] = "publish"
    version: ClassVar[str] = PUBLISH_VERSION
    task_type: ClassVar[str] = "publish"

    def run(self, inputs: ProcessorInputs) -> ProcessorResult:
        """Publish ``inputs.files`` of ``inputs.scene`` into ``inputs.output_dir``.

        Args:
            inputs: the scene, target collection, band files by asset key, output folder, args.

        Returns:
            Files by key (band names, ``quicklook``, ``thumbnail``), metadata, the item dict.

        Raises:
            InvalidInputError: bad args, no band file, a missing file.
            ProcessingError: GDAL failed or a COG failed validation.
        """
        started = time.monotonic()
        options = PublishOptions.from_args(inputs.args)
        scene, collection = inputs.scene, inputs.collection
        package = open_package(inputs.files, hints=SceneHints.of(scene))
        require_sensor(package, collection, scene.scene_id)
        resolved = resolve_bands(package, collection)
        if resolved.missing:
            log.warning(
                "publish.bands_missing scene=%s collection=%s package=%s bands=%s",
                scene.scene_id,
                collection.name,
                package.label,
                ",".join(resolved.missing),
            )
        facts = product_facts(package.metadata_files or inputs.files)
        if facts is not None:
            scene = replace(
                scene,
                datetime=facts.datetime or scene.datetime,
                cloud_pct=(
                    facts.cloud_cover_pct if facts.cloud_cover_pct is not None else scene.cloud_pct
                ),
                platform=facts.platform or scene.platform,
            )
        cloud_cover = inputs.parent_metadata.get("cloud_cover")  # recomputed by a post step
        if isinstance(cloud_cover, int | float) and not isinstance(cloud_cover, bool):
            scene = replace(scene, cloud_pct=float(cloud_cover))
        scene_id = safe_component(scene.scene_id, "scene.scene_id")
        selected = [(band_file.band, band_file.path) for band_file in resolved.bands]
        radiometry = {band_file.band.name: band_file for band_file in resolved.bands}
        outline_name = self._footprint_band_name(options, collection, selected)
        out_dir = inputs.output_dir
        out_dir.mkdir(parents=True, exist_ok=True)

        def publish_band(band: BandConfig, src: Path) -> PublishedBand:
            band_started = time.monotonic()
            cog = write_cog(
                src,
                out_dir / f"{scene_id}_{band.name}.tif",
                nodata=band.nodata,
                options=options.for_band(band),
                scale=radiometry[band.name].scale,
                offset=radiometry[band.name].offset,
            )
            checksum, size = file_checksum(cog.path)
            log.info(
                "publish.cog scene=%s collection=%s band=%s size_bytes=%d overviews=%s "
                "elapsed_s=%.2f",
                scene_id,
                collection.name,
                band.name,
                size,
                list(cog.overviews),
                time.monotonic() - band_started,
            )
            return PublishedBand(band=band, cog=cog, checksum=checksum, size_bytes=size)

        published = _each_band(publish_band, selected, options.workers, inputs.progress)
        result_files: dict[str, Path] = {p.band.name: p.cog.path for p in published}

        extras = self._quicklook(scene_id, out_dir, collection, published, options)
        result_files.update({key: extra.path for key, extra in extras.items()})
        indices = self._indices(scene_id, out_dir, collection, published, options)
        result_files.update({p.index.key: p.cog.path for p in indices})

        by_name = {p.band.name: p for p in published}
        outline_band = by_name[outline_name]
        candidates: list[tuple[str, dict[str, Any] | None]] = [
            ("data", footprint(outline_band.cog.path, nodata=outline_band.cog.nodata)),
            ("metadata", facts.footprint if facts is not None else None),
        ]
        if options.footprint == "metadata":
            candidates.reverse()
        candidates += [
            ("catalog", dict(scene.footprint) if scene.footprint is not None else None),
            ("raster-bounds", _raster_bounds(outline_band.cog)),
        ]
        footprint_source, geometry = next((k, g) for k, g in candidates if g is not None)

        item = build_item(
            scene=scene,
            collection=collection,
            bands=published,
            files=extras,
            geometry=geometry,
            version=self.version,
            source_collection=inputs.source_collection,
            indices=indices,
            lineage=inputs.lineage,
        )
        size_bytes = (
            sum(p.size_bytes for p in published)
            + sum(e.size_bytes for e in extras.values())
            + sum(p.size_bytes for p in indices)
        )
        elapsed_s = time.monotonic() - started
        log.info(
            "publish.done scene=%s collection=%s bands=%d size_bytes=%d footprint=%s "
            "elapsed_s=%.2f",
            scene_id,
            collection.name,
            len(published),
            size_bytes,
            footprint_source,
            elapsed_s,
        )
        return ProcessorResult(
            files=result_files,
            metadata={
                "scene_id": scene_id,
                "collection": collection.name,
                "bands": [p.band.name for p in published],
                "indices": [p.index.key for p in indices],
                "ignored_keys": resolved.ignored,
                "package": package.label,
                "radiometry": {
                    name: {"scale": bf.scale, "offset": bf.offset, "source": bf.source}
                    for name, bf in radiometry.items()
                },
                "checksums": {key: p.checksum for key, p in by_name.items()},
                "footprint_source": footprint_source,
                "metadata_source": facts.source if facts is not None else None,
                "size_bytes": size_bytes,
                "elapsed_s": round(elapsed_s, 3),
                "software": {self.name: self.version},
            },
            item=item.to_dict(include_self_link=False, transform_hrefs=False),
        )

    @staticmethod
    def _footprint_band_name(
        options: PublishOptions,
        collection: CollectionConfig,
        selected: list[tuple[BandConfig, Path]],
    ) -> str:
        """Return the band whose valid pixels give the footprint: asked for, else the finest.

        Spectral bands win over class/mask bands at the same resolution.
        """
        names = [band.name for band, _ in selected]
        if options.footprint_band is not None:
            band = collection.band(options.footprint_band)
            if band is None or band.name not in names:
                raise InvalidInputError(
                    FieldProblem(
                        "args.footprint_band",
                        f"{options.footprint_band!r} is not among the bands to publish",
                        f"use one of {', '.join(names)}",
                    )
                )
            return band.name
        finest = min(
            (band for band, _ in selected),
            key=lambda band: (band.center_wavelength_um is None, band.resolution_m, band.name),
        )
        return finest.name

    @staticmethod
    def _quicklook(
        scene_id: str,
        out_dir: Path,
        collection: CollectionConfig,
        published: list[PublishedBand],
        options: PublishOptions,
    ) -> dict[str, PublishedFile]:
        config = collection.quicklook
        if not options.quicklook or config is None:
            return {}
        by_name = {p.band.name: p for p in published}
        rgb: list[PublishedBand] = []
        for name in config.bands:
            band = collection.band(name)
            if band is None or band.name not in by_name:
                log.warning(
                    "publish.quicklook.skipped scene=%s collection=%s missing_band=%s",
                    scene_id,
                    collection.name,
                    name,
                )
                return {}
            rgb.append(by_name[band.name])
        info = write_quicklook(
            [p.cog.path for p in rgb],
            out_dir / f"{scene_id}_quicklook.png",
            size_px=config.size_px,
            percentiles=config.percentiles,
            nodata=[p.cog.nodata for p in rgb],
            thumbnail=out_dir / f"{scene_id}_thumbnail.png",
            thumbnail_px=THUMBNAIL_PX,
        )
        names = "/".join(p.band.name for p in rgb)
        extras: dict[str, PublishedFile] = {}
        for key, path, role, title in (
            ("quicklook", info.quicklook, "overview", f"Quicklook ({names})"),
            ("thumbnail", info.thumbnail, "thumbnail", f"Thumbnail ({names})"),
        ):
            if path is None:
                continue
            checksum, size = file_checksum(path)
            extras[key] = PublishedFile(
                path=path,
                checksum=checksum,
                size_bytes=size,
                media_type=PNG_MEDIA_TYPE,
                roles=(role,),
                title=title,
            )
        return extras

    @staticmethod
    def _indices(
        scene_id: str,
        out_dir: Path,
        collection: CollectionConfig,
        published: list[PublishedBand],
        options: PublishOptions,
    ) -> list[PublishedIndex]:
        """Write the collection's spectral indices whose bands were all published."""
        if options.indices is False or not collection.indices:
            return []
        try:
            definitions = resolve_indices(collection)
        except ConfigError as err:
            raise InvalidInputError(
                FieldProblem(
                    f"{err.file}: {err.field}", str(err), "fix the index in config/collections.yaml"
                )
            ) from err
        wanted = [d for d in definitions if d.default]
        if isinstance(options.indices, tuple):
            known = {d.key.lower(): d for d in definitions}
            unknown = [key for key in options.indices if key.lower() not in known]
            if unknown:
                raise InvalidInputError(
                    FieldProblem(
                        "args.indices",
                        f"{unknown} are not indices of {collection.name}",
                        f"use some of {', '.join(d.key for d in definitions)}",
                    )
                )
            wanted = [known[key.lower()] for key in options.indices]
        cogs = {p.band.name: p.cog.path for p in published}
        computable: list[IndexDefinition] = []
        for definition in wanted:
            lacking = [band for band in definition.expression.bands if band not in cogs]
            if lacking:
                log.warning(
                    "publish.index.skipped scene=%s collection=%s index=%s missing_bands=%s",
                    scene_id,
                    collection.name,
                    definition.key,
                    ",".join(lacking),
                )
                continue
            computable.append(definition)
        started = time.monotonic()
        dests = {d.key: out_dir / f"{scene_id}_{d.key}.tif" for d in computable}
        written = write_indices(
            computable, cogs, dests, options=options.cog, workers=options.workers
        )
        result: list[PublishedIndex] = []
        for definition in computable:
            cog = written[definition.key]
            checksum, size = file_checksum(cog.path)
            result.append(
                PublishedIndex(index=definition, cog=cog, checksum=checksum, size_bytes=size)
            )
        log.info(
            "publish.indices scene=%s collection=%s indices=%s elapsed_s=%.2f",
            scene_id,
            collection.name,
            ",".join(written),
            time.monotonic() - started,
        )
        return result
