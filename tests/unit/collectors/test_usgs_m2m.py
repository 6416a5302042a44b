"""The USGS M2M driver against a loopback M2M server fed with real M2M answers and MTL files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from include.collectors.base import Availability, Credentials, Scene, SearchQuery
from include.collectors.registry import make_driver
from include.collectors.scene_ids import parse_scene_id
from include.collectors.usgs_m2m import (
    LANDSAT_C2_DATASETS,
    UsgsM2MDriver,
    choose_product,
    record_to_scene,
)
from include.common.errors import (
    IntegrityError,
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SceneOfflineError,
)
from tests.helpers.m2m_server import (
    API_PATH,
    APP_TOKEN,
    INVALID_DATASET_MESSAGE,
    USERNAME,
    M2MServer,
    http_error,
    m2m_error,
    m2m_reply,
    real_scenes,
    truncated,
)
from tests.helpers.realdata import realdata_dir

UTC = dt.UTC
L1 = "LC08_L1TP_090084_20160121_20200907_02_T1"
L1_ENTITY = "LC80900842016021LGN02"
L1GT = "LC08_L1GT_089074_20220506_20220512_02_T2"
AUSTRALIA = (145.0, -40.0, 160.0, -15.0)
CREDENTIALS = Credentials(username=USERNAME, password=APP_TOKEN)


@pytest.fixture
def m2m_realdata() -> Path:
    folder = realdata_dir()
    needed = ("kapadia-usgs", "usgs-m2m-docs", "eo-datasets", "stactools-landsat")
    missing = [name for name in needed if not (folder / name).is_dir()]
    if missing:
        pytest.skip(
            f"real USGS samples {missing} not found under {folder}; set REALDATA_DIR to the "
            "shared realdata folder (../shared/realdata beside the repository)"
        )
    return folder


@pytest.fixture
def m2m(m2m_realdata: Path) -> Iterator[M2MServer]:
    server = M2MServer(m2m_realdata, scenes=real_scenes(m2m_realdata))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def driver_factory(m2m: M2MServer, sleeps: list[float]) -> Iterator[Callable[..., UsgsM2MDriver]]:
    made: list[UsgsM2MDriver] = []

    def build(credentials: Credentials | None = CREDENTIALS, **options: Any) -> UsgsM2MDriver:
        defaults: dict[str, Any] = {
            "catalog": "usgs",
            "conn_id": "usgs_default",
            "page_size": 100,
            "timeout_s": 5.0,
            "base_delay_s": 0.01,
            "poll_interval_s": 0.0,
            "prepare_wait_s": 5.0,
        }
        driver = UsgsM2MDriver(
            url=options.pop("url", m2m.url),
            credentials=credentials,
            options={**defaults, **options},
        )
        driver.sleep = sleeps.append
        made.append(driver)
        return driver

    yield build
    for driver in made:
        driver.close()


def bodies(server: M2MServer, endpoint: str) -> list[dict[str, Any]]:
    return [request.json() for request in server.calls(endpoint)]


def l1_query(**changes: Any) -> SearchQuery:
    values: dict[str, Any] = {
        "dataset": "landsat_ot_c2_l1",
        "bbox": AUSTRALIA,
        "start": dt.datetime(2016, 1, 1, tzinfo=UTC),
        "end": dt.datetime(2022, 12, 31, 23, 59, 59, tzinfo=UTC),
    }
    values.update(changes)
    return SearchQuery(**values)


# ----------------------------------------------------------------------------- real answers


def test_record_to_scene_real_recorded_search_result_maps_collection1_scene(
    m2m_realdata: Path,
) -> None:
    answer = json.loads((m2m_realdata / "kapadia-usgs" / "scene-search.json").read_text())
    (record,) = answer["data"]["results"]

    scene = record_to_scene(record, catalog="usgs", dataset="landsat_8_c1")

    assert scene.scene_id == "LC08_L1TP_233083_20160911_20170321_01_T1"
    assert scene.properties["entity_id"] == "LC82330832016255LGN01"
    assert scene.tile == "233083"
    assert scene.cloud_pct == pytest.approx(44.79)
    assert scene.datetime == dt.datetime(2016, 9, 11, tzinfo=UTC)
    assert scene.platform == "landsat-8"
    assert scene.footprint == record["spatialCoverage"]
    assert scene.quicklook is not None and scene.quicklook.endswith("_01_T1.jpg")  # natural color


def test_record_to_scene_docs_metadata_sample_maps_level2_scene(m2m_realdata: Path) -> None:
    path = m2m_realdata / "usgs-m2m-docs" / "scene-metadata_landsat_ot_c2_l2_sample-response.json"
    record = json.loads(path.read_text())["data"]

    scene = record_to_scene(record, catalog="usgs", dataset="landsat_ot_c2_l2")

    assert scene.scene_id == "LC08_L2SP_012025_20201231_20210308_02_T1"
    assert scene.properties["product_type"] == "L2SP"
    assert scene.tile == "012025"
    assert scene.cloud_pct == pytest.approx(41.9)
    assert scene.datetime.date() == dt.date(2020, 12, 31)
    assert scene.quicklook == record["browse"][0]["browsePath"]


def test_choose_product_real_collection1_options_skips_browse_images(m2m_realdata: Path) -> None:
    options = json.loads((m2m_realdata / "kapadia-usgs" / "download-options.json").read_text())

    product = choose_product(options["data"])

    assert product is not None
    assert product.name == "Level-1 GeoTIFF Data Product"
    assert product.product_id == "5e83d0b84df8d8c2"
    assert product.size_bytes == 904370712
    assert product.available is True


def test_choose_product_per_band_folder_only_gives_none(m2m: M2MServer) -> None:
    assert choose_product(m2m.options_document["data"]) is None  # docs' "C2L1 Tile Product Files"


# ----------------------------------------------------------------------------- search


def test_search_bbox_logs_in_pages_and_maps_real_scenes(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory(page_size=1)

    scenes = driver.search(l1_query())

    assert [s.scene_id for s in scenes] == [L1, L1GT]
    scene = scenes[0]
    assert scene.properties["entity_id"] == L1_ENTITY
    assert scene.tile == "090084"
    assert scene.cloud_pct == pytest.approx(93.28)
    assert scene.datetime == dt.datetime(2016, 1, 21, 23, 50, 23, 54435, tzinfo=UTC)
    assert scene.footprint is not None and scene.footprint["type"] == "Polygon"
    assert scene.size_bytes == len(m2m.scenes[0].archive)
    assert scene.online is True
    assert scene.properties["product_name"] == "Landsat Collection 2 Level-1 Product Bundle"
    assert scene.link == (
        f"https://earthexplorer.usgs.gov/scene/metadata/full/5e81f14f59432a27/{L1_ENTITY}/"
    )
    assert parse_scene_id(scene.scene_id).tile == scene.tile
    assert m2m.logins == 1
    searches = bodies(m2m, "scene-search")
    assert [b["startingNumber"] for b in searches] == [1, 2]
    assert searches[0]["sceneFilter"] == {
        "spatialFilter": {
            "filterType": "mbr",
            "lowerLeft": {"latitude": -40.0, "longitude": 145.0},
            "upperRight": {"latitude": -15.0, "longitude": 160.0},
        },
        "acquisitionFilter": {"start": "2016-01-01", "end": "2022-12-31"},
    }
    key = m2m.calls("scene-search")[0].headers["x-auth-token"]
    assert key in m2m.api_keys
    options = bodies(m2m, "download-options")  # one call per page_size scenes
    assert [o["entityIds"] for o in options] == [[L1_ENTITY], ["LC80890742022126LGN00"]]


def test_search_tiles_use_wrs_filter_ids_from_dataset_filters(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory()
    query = l1_query(bbox=None, tiles=("090084", "089/074"), cloud_pct=95)

    scenes = driver.search(query)

    assert [s.tile for s in scenes] == ["090084", "089074"]
    assert len(m2m.calls("dataset-filters")) == 1  # cached for the second tile
    first = bodies(m2m, "scene-search")[0]["sceneFilter"]
    assert first["metadataFilter"] == {
        "filterType": "and",
        "childFilters": [  # the real filter ids and field types of the recorded dataset-filters
            {
                "filterType": "between",
                "filterId": "5e83d0b81d20cee8",
                "firstValue": 90,
                "secondValue": 90,
            },
            {
                "filterType": "between",
                "filterId": "5e83d0b849ed5ee7",
                "firstValue": 84,
                "secondValue": 84,
            },
        ],
    }
    assert first["cloudCoverFilter"] == {"min": 0, "max": 95, "includeUnknown": False}


def test_search_cloud_filter_drops_cloudier_scene(m2m: M2MServer, driver_factory: Any) -> None:
    scenes = driver_factory().search(l1_query(cloud_pct=90))
    assert [s.scene_id for s in scenes] == [L1GT]  # 86.35 % passes, 93.28 % does not


def test_search_fractional_cloud_limit_is_rounded_up_for_m2m_and_applied_exactly(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory()
    assert [s.scene_id for s in driver.search(l1_query(cloud_pct=86.35))] == [L1GT]
    assert [s.scene_id for s in driver.search(l1_query(cloud_pct=86.3))] == []
    # M2M's cloud bounds are integers: 86.35 asks for <= 87, never <= 86
    assert [b["sceneFilter"]["cloudCoverFilter"]["max"] for b in bodies(m2m, "scene-search")] == [
        87,
        87,
    ]


def test_search_no_match_returns_empty_without_download_options(
    m2m: M2MServer, driver_factory: Any
) -> None:
    query = l1_query(
        start=dt.datetime(2019, 1, 1, tzinfo=UTC), end=dt.datetime(2019, 2, 1, tzinfo=UTC)
    )
    assert driver_factory().search(query) == []
    assert m2m.calls("download-options") == []


def test_search_mgrs_tile_raises_invalid_input_naming_index(driver_factory: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        driver_factory().search(l1_query(bbox=None, tiles=("090084", "23LLF")))
    assert caught.value.problems[0].field == "tiles[1]"
    assert "WRS-2" in caught.value.problems[0].fix


def test_search_scene_ids_use_scene_metadata_and_skip_unknown(
    m2m: M2MServer, driver_factory: Any
) -> None:
    query = SearchQuery(
        dataset="landsat_ot_c2_l2",
        scene_ids=(
            "LC08_L2SP_008059_20191201_20200825_02_T1",
            "LC80840242016011LGN01",  # a scene (entity) id
            "LC08_L2SP_221069_20200110_20200114_02_T1",  # not in the archive
        ),
    )

    scenes = driver_factory().search(query)

    assert [s.scene_id for s in scenes] == [
        "LC08_L2SR_084024_20160111_20201016_02_T1",
        "LC08_L2SP_008059_20191201_20200825_02_T1",
    ]
    id_types = [b["idType"] for b in bodies(m2m, "scene-metadata")]
    assert id_types == ["displayId", "entityId", "displayId"]


def test_search_unknown_dataset_maps_m2m_dataset_invalid_naming_the_known_names(
    m2m: M2MServer, driver_factory: Any
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        driver_factory().search(l1_query(dataset="landsat_nope"))
    (problem,) = caught.value.problems
    assert problem.field == "dataset"
    assert f"DATASET_INVALID ({INVALID_DATASET_MESSAGE})" in problem.message
    assert problem.fix == "use one of: " + ", ".join(sorted(LANDSAT_C2_DATASETS))
    assert [b["datasetName"] for b in bodies(m2m, "scene-search")] == ["landsat_nope"]


@pytest.mark.parametrize("dataset", ["landsat_8_c1", "landsat_mss_c2_l1", "S2MSI1C"])
def test_check_dataset_refuses_names_outside_the_known_landsat_datasets(
    m2m: M2MServer, driver_factory: Any, dataset: str
) -> None:
    driver = driver_factory(credentials=None, catalog="usgs-eros")
    with pytest.raises(InvalidInputError) as caught:
        driver.check_dataset(dataset)
    (problem,) = caught.value.problems
    assert problem.field == "dataset"
    assert problem.message == f"{dataset!r} is not a dataset of catalog 'usgs-eros'"
    assert problem.fix == "use one of: " + ", ".join(sorted(LANDSAT_C2_DATASETS))
    assert m2m.http.requests == []  # M2M lists datasets only to an account: no request


def test_check_dataset_accepts_known_and_configured_names_then_searches_them(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory(datasets={"L8_L1": "landsat_ot_c2_l1"})
    assert driver.check_dataset(" LANDSAT_ETM_C2_L2 ") == "LANDSAT_ETM_C2_L2"
    assert driver.check_dataset("l8_l1") == "l8_l1"
    with pytest.raises(InvalidInputError) as caught:
        driver.check_dataset("landsat_nope")
    assert caught.value.problems[0].fix.startswith("use one of: L8_L1, landsat_etm_c2_l1")

    assert driver.search(l1_query(dataset="L8_L1"))
    driver.search(l1_query(dataset="landsat_etm_c2_l2"))
    searched = [b["datasetName"] for b in bodies(m2m, "scene-search")]
    assert searched == ["landsat_ot_c2_l1", "landsat_etm_c2_l2"]


# ----------------------------------------------------------------------------- auth


def test_login_refused_raises_provider_error_naming_connection_and_never_logs_token(
    m2m: M2MServer, driver_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = Credentials(username=USERNAME, password="wrong-token-42")  # noqa: S106 - a test value
    driver = driver_factory(wrong)

    with pytest.raises(ProviderError, match="AUTH_INVALID") as caught:
        driver.search(l1_query())

    assert "'usgs_default'" in str(caught.value)
    assert "wrong-token-42" not in str(caught.value)
    assert "wrong-token-42" not in caplog.text
    assert m2m.calls("scene-search") == []


def test_missing_credentials_raise_before_any_request(m2m: M2MServer, driver_factory: Any) -> None:
    with pytest.raises(ProviderError, match="Connection 'usgs_default'"):
        driver_factory(None).search(l1_query())
    assert m2m.http.count() == 0


def test_expired_api_key_logs_in_again_once(m2m: M2MServer, driver_factory: Any) -> None:
    driver = driver_factory()
    driver.search(l1_query())
    m2m.expire_sessions()

    assert [s.scene_id for s in driver.search(l1_query())] == [L1, L1GT]
    assert m2m.logins == 2


def test_close_logs_out_once(m2m: M2MServer, driver_factory: Any) -> None:
    driver = driver_factory()
    driver.search(l1_query())
    (key,) = m2m.api_keys

    driver.close()
    driver.close()

    (logout,) = m2m.calls("logout")
    assert logout.headers["x-auth-token"] == key
    assert m2m.api_keys == set()


def test_close_after_the_api_key_expired_neither_raises_nor_leaves_the_client_open(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory()
    driver.search(l1_query())
    m2m.expire_sessions()  # logout now answers AUTH_KEY_INVALID, as after ~2 h idle

    driver.close()

    assert len(m2m.calls("logout")) == 1
    assert driver._client is None
    driver.close()
    assert len(m2m.calls("logout")) == 1


def test_search_and_download_never_log_token_or_api_key(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver = driver_factory()
    (scene,) = [s for s in driver.search(l1_query()) if s.scene_id == L1]
    driver.download(scene, tmp_path)
    key = m2m.calls("scene-search")[0].headers["x-auth-token"]
    driver.close()

    assert APP_TOKEN not in caplog.text
    assert key not in caplog.text
    assert "m2m.login" in caplog.text


# ----------------------------------------------------------------------------- failures


def test_rate_limit_code_with_429_waits_retry_after_then_succeeds(
    m2m: M2MServer, driver_factory: Any, sleeps: list[float]
) -> None:
    m2m.fault(
        "scene-search",
        m2m_error(
            "RATE_LIMIT",
            "User attempted to run multiple requests at a time",
            status=429,
            headers={"Retry-After": "2"},
        ),
    )

    assert len(driver_factory().search(l1_query())) == 2
    assert sleeps == [2.0]
    assert len(m2m.calls("scene-search")) == 2


def test_rate_limit_code_without_retry_after_backs_off_then_raises(
    m2m: M2MServer, driver_factory: Any, sleeps: list[float]
) -> None:
    m2m.fault("scene-search", m2m_error("RATE_LIMIT", "too many requests"), times=3)

    with pytest.raises(RateLimitedError, match="RATE_LIMIT"):
        driver_factory(max_attempts=3).search(l1_query())

    assert len(sleeps) == 2  # exponential, with jitter
    assert 0.005 <= sleeps[0] <= 0.015 and 0.01 <= sleeps[1] <= 0.03
    assert len(m2m.calls("scene-search")) == 3


def test_user_download_limit_raises_at_once_with_a_long_wait(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path, sleeps: list[float]
) -> None:
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())
    m2m.fault(
        "download-request",
        m2m_error("RATE_LIMIT_USER_DL", "User has reached download-related rate limits"),
    )

    with pytest.raises(RateLimitedError, match="download queue") as caught:
        driver.download(scene, tmp_path)

    assert caught.value.retry_after_s == 900.0
    assert sleeps == []
    assert len(m2m.calls("download-request")) == 1
    assert not list(tmp_path.iterdir())


def test_server_error_500_is_retried_then_raises_unavailable(
    m2m: M2MServer, driver_factory: Any
) -> None:
    m2m.fault("scene-search", http_error(500), times=2)

    with pytest.raises(ProviderUnavailableError, match="HTTP 500"):
        driver_factory(max_attempts=2).search(l1_query())

    assert len(driver_factory(max_attempts=2).search(l1_query())) == 2  # the fault is gone


def test_truncated_answer_is_retried(m2m: M2MServer, driver_factory: Any) -> None:
    m2m.fault("scene-search", truncated({"data": {"results": []}, "errorCode": None}))

    assert len(driver_factory().search(l1_query())) == 2
    assert len(m2m.calls("scene-search")) == 2


def test_unknown_endpoint_404_raises_provider_error_naming_api_root(
    m2m: M2MServer, driver_factory: Any
) -> None:
    driver = driver_factory(url=m2m.http.url + "/api/json/stable")
    with pytest.raises(ProviderError, match="HTTP 404; catalog_args.url must be the M2M") as caught:
        driver.search(l1_query())
    assert caught.value.status_code == 404


# ----------------------------------------------------------------------------- download


def test_download_bundle_is_verified_tar_then_reused_offline(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())
    seen: list[tuple[int, int | None]] = []

    result = driver.download(scene, tmp_path / L1, progress=lambda d, t: seen.append((d, t)))

    archive = m2m.scenes[0].archive
    assert result.path == tmp_path / L1 / f"{L1}.tar"
    assert result.size_bytes == len(archive)
    assert result.checksum == "sha256:" + hashlib.sha256(archive).hexdigest()
    assert result.reused is False
    with tarfile.open(result.path) as bundle:
        names = bundle.getnames()
    assert f"{L1}_MTL.txt" in names and f"{L1}_B4.TIF" in names
    assert seen[-1] == (len(archive), len(archive))
    (request,) = bodies(m2m, "download-request")
    assert request == {
        "downloads": [{"entityId": L1_ENTITY, "productId": scene.properties["product_id"]}],
        "label": f"collection-builder-landsat_ot_c2_l1-{L1_ENTITY}",
    }
    file_requests = [r for r in m2m.http.requests if r.path.startswith("/download/")]
    assert "x-auth-token" not in file_requests[0].headers
    before = m2m.http.count()

    again = driver_factory().download(scene, tmp_path / L1)

    assert again.reused is True
    assert again.checksum == result.checksum
    assert m2m.http.count() == before  # no login, no request


def test_download_preparing_becomes_available_after_polls(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path, sleeps: list[float]
) -> None:
    m2m.scenes[0].prepare_polls = 2
    driver = driver_factory(poll_interval_s=0.5)
    (scene, _) = driver.search(l1_query())

    result = driver.download(scene, tmp_path)

    assert result.size_bytes == len(m2m.scenes[0].archive)
    assert len(m2m.calls("download-retrieve")) == 3  # preparing, preparing, available
    assert sleeps == [0.5, 0.5]
    assert bodies(m2m, "download-retrieve")[0] == {
        "label": f"collection-builder-landsat_ot_c2_l1-{L1_ENTITY}"
    }


def test_download_still_preparing_raises_scene_offline_and_reports_ordered(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.scenes[0].prepare_polls = 100
    driver = driver_factory(prepare_wait_s=0.0)
    (scene, _) = driver.search(l1_query())
    assert driver.availability(scene) == Availability.ONLINE  # nothing requested yet

    with pytest.raises(SceneOfflineError, match="still preparing") as caught:
        driver.download(scene, tmp_path)

    assert caught.value.scene_id == L1
    assert driver.availability(scene) == Availability.ORDERED
    assert not (tmp_path / f"{L1}.tar").exists()


def test_order_twice_is_harmless_and_download_then_proceeds(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.scenes[0].prepare_polls = 1
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())

    driver.order(scene)
    driver.order(scene)

    second = m2m.calls("download-request")[1]
    assert json.loads(second.body)["label"] == driver.label(scene)
    assert driver.download(scene, tmp_path).size_bytes == len(m2m.scenes[0].archive)


def test_label_names_the_dataset_as_level1_and_level2_share_an_entity_id(
    driver_factory: Any,
) -> None:
    driver = driver_factory()

    def scene(scene_id: str, dataset: str) -> Scene:
        return Scene(
            scene_id=scene_id,
            catalog="usgs",
            dataset=dataset,
            datetime=dt.datetime(2016, 1, 21, tzinfo=UTC),
            cloud_pct=None,
            tile="090084",
            footprint=None,
            properties={"entity_id": L1_ENTITY, "dataset_name": dataset},
        )

    level1 = driver.label(scene(L1, "landsat_ot_c2_l1"))
    level2 = driver.label(scene(L1.replace("L1TP", "L2SP"), "landsat_ot_c2_l2"))

    assert level1 == f"collection-builder-landsat_ot_c2_l1-{L1_ENTITY}"
    assert level2 == f"collection-builder-landsat_ot_c2_l2-{L1_ENTITY}"


def test_download_ignores_another_products_download_listed_for_the_entity(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.scenes[0].prepare_polls = 1
    driver = driver_factory()
    (scene, other) = driver.search(l1_query())
    foreign = {  # the same entity's download of another product, ready under the label
        "url": m2m.file_url(m2m.scenes[1]),
        "entityId": L1_ENTITY,
        "displayId": other.scene_id,
        "downloadId": 1,
        "statusText": "Available",
    }
    m2m.fault("download-retrieve", lambda request: m2m_reply({"available": [foreign]}))

    result = driver.download(scene, tmp_path)

    assert result.path.read_bytes() == m2m.scenes[0].archive
    assert len(m2m.calls("download-retrieve")) == 3  # foreign only, preparing, available


def test_download_takes_a_proxied_requested_entry_that_has_a_url(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.scenes[0].prepare_polls = 5
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())
    proxied = {
        "url": m2m.file_url(m2m.scenes[0]),
        "entityId": L1_ENTITY,
        "displayId": L1,
        "downloadId": 1738054,
        "statusCode": "X",
        "statusText": "Proxied",
    }
    m2m.fault(
        "download-retrieve", lambda request: m2m_reply({"available": [], "requested": [proxied]})
    )

    result = driver.download(scene, tmp_path)

    assert result.path.read_bytes() == m2m.scenes[0].archive
    assert len(m2m.calls("download-retrieve")) == 1


def test_download_request_with_invalid_scenes_raises_provider_error_at_once(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())
    refused = {
        "availableDownloads": [],
        "preparingDownloads": [],
        "duplicateProducts": [],
        "failed": [],
        "newRecords": [],
        "numInvalidScenes": 1,
    }
    m2m.fault("download-request", lambda request: m2m_reply(refused))

    with pytest.raises(ProviderError, match="numInvalidScenes=1"):
        driver.download(scene, tmp_path)
    assert m2m.calls("download-retrieve") == []


def test_download_unavailable_product_raises_scene_offline(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.scenes[0].available = False
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())

    assert scene.online is False
    assert driver.availability(scene) == Availability.OFFLINE
    with pytest.raises(SceneOfflineError):
        driver.download(scene, tmp_path)
    assert m2m.calls("download-request") == []


def test_download_resumes_a_partial_with_range(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())
    archive = m2m.scenes[0].archive
    (tmp_path / f"{L1}.tar.part").write_bytes(archive[: len(archive) // 2])

    result = driver.download(scene, tmp_path)

    assert result.path.read_bytes() == archive
    (file_request,) = [r for r in m2m.http.requests if r.path.startswith("/download/")]
    assert file_request.headers["range"] == f"bytes={len(archive) // 2}-"


def test_download_file_that_is_not_a_tar_raises_integrity_error(
    m2m: M2MServer, driver_factory: Any, tmp_path: Path
) -> None:
    m2m.bundle_checksums = False
    broken = m2m.scenes[0]
    broken.archive = b"<html>maintenance</html>" * 100
    m2m.add_scene(broken)
    driver = driver_factory()
    (scene, _) = driver.search(l1_query())

    with pytest.raises(IntegrityError, match="not a readable tar"):
        driver.download(scene, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_foreign_scene_without_entity_raises_invalid_input(
    driver_factory: Any, tmp_path: Path
) -> None:
    scene = Scene(
        scene_id=L1,
        catalog="usgs",
        dataset="landsat_ot_c2_l1",
        datetime=dt.datetime(2016, 1, 21, tzinfo=UTC),
        cloud_pct=None,
        tile="090084",
        footprint=None,
    )
    with pytest.raises(InvalidInputError, match="entity_id"):
        driver_factory().download(scene, tmp_path)


# ----------------------------------------------------------------------------- registry


def test_make_driver_usgs_uses_catalog_settings_and_url_override(m2m: M2MServer) -> None:
    driver = make_driver("USGS", catalog_args={"url": m2m.url, "page_size": 10})
    try:
        assert isinstance(driver, UsgsM2MDriver)
        assert driver.base_url == m2m.url
        assert driver.page_size == 10
        assert driver.conn_id == "usgs_default"
        assert m2m.url.endswith(API_PATH)
    finally:
        driver.close()
