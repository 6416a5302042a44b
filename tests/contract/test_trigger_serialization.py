"""Every trigger of plugins/radcor_api/triggers.py survives the triggerer's round trip.

As ``AF:amazon/tests/unit/amazon/aws/triggers/test_serialization.py``: ``serialize()`` gives a
classpath and kwargs; the kwargs go through the trigger table's encoding (``Trigger.encrypt_kwargs``
then ``_decrypt_kwargs``, as the scheduler stores and the triggerer reads them), the class is
imported by its classpath and rebuilt; the rebuilt trigger serializes to the same thing. The kwargs
must be plain JSON. A trigger class without an example here fails the test.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

SCENE = {
    "scene_id": "S2A_MSIL1C_20200109T132231_N0208_R038_T23LLF_20200109T145429",
    "catalog": "cdse",
    "dataset": "S2MSI1C",
    "datetime": "2020-01-09T13:22:31+00:00",
    "cloud_pct": 12.5,
    "tile": "23LLF",
    "footprint": {
        "type": "Polygon",
        "coordinates": [[[-45.9, -12.7], [-45.8, -12.7], [-45.8, -12.6], [-45.9, -12.7]]],
    },
    "size_bytes": 812300000,
    "link": "https://catalogue.dataspace.copernicus.eu/odata/v1/Products(1)",
    "quicklook": None,
    "online": False,
    "platform": "sentinel-2a",
    "assets": [
        {
            "key": "archive",
            "href": "https://x/Products(1)/$value",
            "size_bytes": 812300000,
            "checksum": "md5:00112233445566778899aabbccddeeff",
            "media_type": "application/zip",
            "roles": ["data", "archive"],
        }
    ],
    "properties": {"product_id": "1", "checksums": {"md5": "00112233445566778899aabbccddeeff"}},
}


def _examples() -> dict[str, Any]:
    from radcor_api.triggers import SceneOnlineTrigger

    return {
        "SceneOnlineTrigger": SceneOnlineTrigger(
            scene=SCENE,
            catalog="cdse",
            conn_id="cdse_default",
            catalog_args={"url": "http://127.0.0.1:8081/odata/v1", "conn_id": "cdse_default"},
            poll_interval_s=3600,
            timeout_s=259200,
            started_at="2026-01-02T03:04:05+00:00",
        ),
    }


def _trigger_classes() -> list[str]:
    import radcor_api.triggers as module
    from airflow.triggers.base import BaseTrigger

    return sorted(
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseTrigger)
        and value.__module__ == module.__name__
    )


def test_every_trigger_class_has_a_serialization_example() -> None:
    assert _trigger_classes() == sorted(_examples())


@pytest.mark.parametrize("name", _trigger_classes())
def test_trigger_serialize_round_trips_through_the_trigger_table_by_classpath(name: str) -> None:
    from airflow._shared.module_loading import import_string
    from airflow.models.trigger import Trigger

    trigger = _examples()[name]
    classpath, kwargs = trigger.serialize()
    assert classpath.startswith("radcor_api.triggers.")  # plugins/, never dags/ (STYLE 2.1)
    assert json.loads(json.dumps(kwargs)) == kwargs, "trigger kwargs must be plain JSON"
    stored = Trigger.encrypt_kwargs(kwargs)
    restored = import_string(classpath)(**Trigger._decrypt_kwargs(stored))
    assert type(restored) is type(trigger)
    assert restored.serialize() == (classpath, kwargs)
