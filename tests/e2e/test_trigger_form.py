"""The radcor DAG's trigger form in Airflow's UI, driven in headless Chromium (selenium).

A user opens *Trigger* on the ``radcor`` DAG, fills the form field by field (text, number,
string-list, toggle and JSON-editor fields, the task tree included) and starts a run; a bad
value gets one line per problem naming the field and its fix, and no run; a conf pasted into
*Advanced Options* fills the form without stale "required" errors or ``[object Object]``.
Each test checks the DOM text and keeps a screenshot under its pytest folder.

Needs Debian's ``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``;
.ci/run installs them): no browser is downloaded.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers.airflow_stack import AirflowStack

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium: make install")

from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WINDOW = {"start": "2020-01-09", "end": "2020-01-10"}  # two demo scenes of tile 23LLF
TREE = [
    {
        "type": "download",
        "collection": "S2_L1C-1",
        "tasks": [{"type": "publish", "collection": "S2_L1C-1"}],
    }
]
WAIT_S = 30
DIALOG = "//*[@role='dialog' and @data-state='open']"
T = TypeVar("T")

# Monaco (the form's JSON editor) reformats a value as soon as it parses, so typing a tree key
# by key moves the cursor mid-word; a user pastes JSON there, and so does this test.
PASTE = """const data = new DataTransfer(); data.setData('text/plain', arguments[1]);
arguments[0].dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true,
  cancelable: true}));"""


def _executable(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no {names[0]}: apt-get install chromium chromium-driver (.ci/run installs it)")


@pytest.fixture
def browser(airflow_stack: AirflowStack, tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium logged in to the stack's UI as admin (the UI's ``_token`` cookie)."""
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("chromium", "chromium-browser")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,3000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=_executable("chromedriver"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as err:
        pytest.skip(f"Chromium did not start under chromedriver: {err.msg}")
    try:
        driver.get(f"{airflow_stack.api}/auth/login")
        driver.add_cookie({"name": "_token", "value": airflow_stack.token, "path": "/"})
        yield driver
    finally:
        driver.quit()


# --- the form, as a user works it -------------------------------------------------------------


def _open_form(driver: Any, stack: AirflowStack) -> WebElement:
    driver.get(f"{stack.api}/dags/radcor")
    trigger = (By.XPATH, "//button[normalize-space()='Trigger']")
    WebDriverWait(driver, WAIT_S).until(expected_conditions.element_to_be_clickable(trigger))
    driver.find_element(*trigger).click()
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_elements(By.XPATH, f"{DIALOG}//*[@id='element_tasks']")
    )
    return driver.find_element(By.XPATH, DIALOG)


def _settled(action: Callable[[], T]) -> T:
    """Run a UI action again when React replaced its element meanwhile (a stale reference)."""
    for _ in range(5):
        try:
            return action()
        except StaleElementReferenceException:
            time.sleep(0.2)
    return action()


def _dialog(driver: Any) -> WebElement:
    return driver.find_element(By.XPATH, DIALOG)


def _open_section(driver: Any, title: str) -> None:
    """Open a section of the form (``Advanced Options``, ``Run Parameters``) and wait for it.

    The sections are one accordion: opening one closes the other, and a section's fields
    are rendered only once it is open (a click while it animates may be lost: clicked again).
    """
    button_path = f"{DIALOG}//button[@aria-expanded][.//text()[normalize-space()='{title}']]"

    def expanded(_: Any) -> bool:
        button = driver.find_element(By.XPATH, button_path)
        if button.get_attribute("aria-expanded") == "true":
            return True
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        time.sleep(0.5)
        return driver.find_element(By.XPATH, button_path).get_attribute("aria-expanded") == "true"

    WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        expanded
    )


def _conf_editor(driver: Any) -> WebElement:
    """Return the box of Advanced Options' Configuration JSON editor, once it is shown."""
    path = (
        f"{DIALOG}//*[normalize-space()='Configuration JSON']"
        "/following::*[contains(@class, 'monaco-editor')][1]"
    )
    WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.XPATH, path).is_displayed()
    )
    return driver.find_element(By.XPATH, path).find_element(By.XPATH, "..")


def _field(driver: Any, name: str) -> WebElement:
    """Return a form field by its Param name: the input, or the JSON editor's box."""
    selector = f"[name='element_{name}'], [id='element_{name}']"  # inputs carry the name
    element = driver.find_elements(By.CSS_SELECTOR, selector)[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element


def _type(driver: Any, name: str, text: str) -> None:
    """Type into a text, number or string-list field (one line per item), as a user does.

    Keys sent while the form re-renders can land nowhere (seen once in ten runs on a number
    field): the field is typed again until it shows the text.
    """
    for _ in range(3):
        try:
            element = _field(driver, name)
            element.click()
            element.send_keys(Keys.CONTROL, "a")
            element.send_keys(Keys.DELETE)
            element.send_keys(text)
            WebDriverWait(driver, 2).until(
                lambda _, shown=element: shown.get_attribute("value") == text
            )
        except (TimeoutException, StaleElementReferenceException):
            continue
        return
    shown = _settled(lambda: _field(driver, name).get_attribute("value"))
    raise AssertionError(f"field {name!r} shows {shown!r}, not {text!r}")


def _paste_json(driver: Any, editor: WebElement, value: Any) -> None:
    """Replace a JSON editor's text with ``value``, pasted as a user pastes it."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", editor)
    lines = editor.find_element(By.CSS_SELECTOR, ".view-lines")
    ActionChains(driver).move_to_element(lines).click().perform()
    select_all = ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
    select_all.send_keys(Keys.DELETE).perform()
    textarea = editor.find_element(By.CSS_SELECTOR, "textarea")
    driver.execute_script(PASTE, textarea, json.dumps(value))


def _editor_text(driver: Any, editor: WebElement) -> str:
    lines = editor.find_element(By.CSS_SELECTOR, ".view-lines")
    return str(driver.execute_script("return arguments[0].innerText", lines)).replace("\u00a0", " ")


def _submit(driver: Any) -> None:
    button = driver.find_elements(By.XPATH, f"{DIALOG}//button[normalize-space()='Trigger']")[-1]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    WebDriverWait(driver, WAIT_S).until(lambda _: button.is_enabled())
    button.click()


def _fill_minimal(driver: Any, stack: AirflowStack, action: str) -> None:
    _type(driver, "catalog", "demo")
    _paste_json(driver, _field(driver, "catalog_args"), {"url": stack.catalog_url})
    _type(driver, "dataset", "S2MSI1C")
    _type(driver, "start", WINDOW["start"])
    _type(driver, "end", WINDOW["end"])
    _type(driver, "action", action)


def _runs_tagged(stack: AirflowStack, tag: str) -> list[dict[str, Any]]:
    with stack.client() as client:
        runs = client.get("/api/v2/dags/radcor/dagRuns", params={"limit": 100}).json()
    return [r for r in runs["dag_runs"] if tag in ((r.get("conf") or {}).get("tags") or [])]


def _run_started_by_form(stack: AirflowStack, driver: Any, tag: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if runs := _runs_tagged(stack, tag):
            assert len(runs) == 1, runs
            return runs[0]
        time.sleep(0.5)
    shown = "".join(d.text for d in driver.find_elements(By.XPATH, DIALOG))
    raise AssertionError(f"the form started no run tagged {tag!r}; it shows:\n{shown[:3000]}")


def _task_state(stack: AirflowStack, run_id: str, task_id: str) -> str:
    with stack.client() as client:
        url = f"/api/v2/dags/radcor/dagRuns/{run_id}/taskInstances/{task_id}"
        return str(client.get(url).json()["state"])


def _screenshot(driver: Any, element: WebElement, path: Path) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000, f"{path} looks blank"


# --- tests ------------------------------------------------------------------------------------


def test_form_filled_field_by_field_starts_a_run_whose_validate_succeeds(
    airflow_stack: AirflowStack, browser: Any, tmp_path: Path
) -> None:
    tag = f"form-{uuid.uuid4().hex[:8]}"
    _open_form(browser, airflow_stack)
    for name, value in (("w", "-45.9"), ("s", "-12.74"), ("e", "-45.8"), ("n", "-12.6")):
        _type(browser, name, value)
    _fill_minimal(browser, airflow_stack, "start")
    _paste_json(browser, _field(browser, "catalog_search_args"), {"limit": 10})
    _type(browser, "platform", "sentinel-2")
    _type(browser, "tags", f"{tag}\nbdc")
    _type(browser, "cloud", "90")
    browser.find_element(By.ID, "switch:element_force").click()  # the toggle
    _paste_json(browser, _field(browser, "tasks"), TREE)
    assert '"publish"' in _editor_text(browser, _field(browser, "tasks"))
    _screenshot(browser, browser.find_element(By.XPATH, DIALOG), tmp_path / "filled.png")
    _submit(browser)

    run = _run_started_by_form(airflow_stack, browser, tag)
    conf = run["conf"]
    assert (conf["w"], conf["s"], conf["e"], conf["n"]) == (-45.9, -12.74, -45.8, -12.6)
    assert conf["catalog"] == "demo" and conf["dataset"] == "S2MSI1C"
    assert conf["catalog_args"] == {"url": airflow_stack.catalog_url}
    assert conf["catalog_search_args"] == {"limit": 10} and conf["platform"] == "sentinel-2"
    assert conf["tags"] == [tag, "bdc"] and conf["cloud"] == 90 and conf["force"] is True
    assert (conf["start"], conf["end"], conf["action"]) == (WINDOW["start"], WINDOW["end"], "start")
    assert conf["tasks"] == TREE
    finished = airflow_stack.wait_for_run(run["dag_run_id"])
    assert _task_state(airflow_stack, run["dag_run_id"], "validate") == "success"
    assert finished["state"] == "success", airflow_stack.logs()
    with airflow_stack.client() as client:
        listed = client.get(
            "/radcor-api/radcor/activities", params={"run_id": run["dag_run_id"]}
        ).json()
        scene_id = listed["activities"][0]["scene_id"]
        upstream = client.get("/api/activities", params={"scene_id": scene_id, "per_page": 100})
    assert listed["total"] == 4  # two scenes x (download, publish)
    assert all(a["tags"] == [tag, "bdc"] for a in listed["activities"])  # issue #22: tags
    mine = [i for i in upstream.json()["items"] if i["run_id"] == run["dag_run_id"]]
    assert len(mine) == 2 and all(i["tags"] == [tag, "bdc"] for i in mine), upstream.text


def test_form_bad_values_name_each_field_and_fix_and_start_nothing(
    airflow_stack: AirflowStack, browser: Any, tmp_path: Path
) -> None:
    tag = f"bad-{uuid.uuid4().hex[:8]}"
    dialog = _open_form(browser, airflow_stack)
    _fill_minimal(browser, airflow_stack, "later")
    _type(browser, "tiles", "99ZZZ")
    _type(browser, "tags", tag)
    _paste_json(browser, _field(browser, "catalog_search_args"), {"sortby": "cloud"})
    _paste_json(browser, _field(browser, "tasks"), [{"type": "upload", "collection": "S2_L1C-1"}])
    _submit(browser)
    WebDriverWait(browser, WAIT_S).until(lambda _: "problems" in dialog.text)
    text = dialog.text
    _screenshot(browser, dialog, tmp_path / "refused.png")
    assert "The radcor conf has 4 problems; nothing was started." in text, text
    assert "- action: 'later' is not an action. Fix: use 'preview'" in text, text
    assert "- tiles[0]: '99ZZZ' is neither an MGRS tile nor a WRS-2 path/row. Fix: " in text
    assert "- tasks[0].type: 'upload' is not a task type. Fix: use one of download," in text
    assert "- catalog_search_args.sortby (Search options): " in text, text  # the form's label
    assert text.count("Fix: ") == 4, text
    assert "Failed validating" not in text and "On instance" not in text, text
    time.sleep(2)  # a run would be listed at once; none is
    assert _runs_tagged(airflow_stack, tag) == []


def test_form_filled_from_advanced_options_json_stays_consistent_and_starts(
    airflow_stack: AirflowStack, browser: Any, tmp_path: Path
) -> None:
    tag = f"json-{uuid.uuid4().hex[:8]}"
    geom = {"type": "Point", "coordinates": [-45.85, -12.7]}
    conf = {
        "geom": geom,
        "catalog": "demo",
        "catalog_args": {"url": airflow_stack.catalog_url},
        "dataset": "S2MSI1C",
        **WINDOW,
        "action": "preview",
        "tags": [tag],
        "tasks": TREE,
    }
    _open_form(browser, airflow_stack)
    _open_section(browser, "Advanced Options")
    _settled(lambda: _paste_json(browser, _conf_editor(browser), conf))
    _open_section(browser, "Run Parameters")
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "element_catalog"))
    dialog = _dialog(browser)
    _screenshot(browser, dialog, tmp_path / "from_json.png")
    text = dialog.text
    assert "[object Object]" not in text and "This field is required" not in text, text
    assert _field(browser, "catalog").get_attribute("value") == "demo"
    assert _field(browser, "dataset").get_attribute("value") == "S2MSI1C"
    assert json.loads(_field(browser, "geom").get_attribute("value") or "null") == geom
    assert _field(browser, "tags").get_attribute("value") == tag
    assert '"download"' in _editor_text(browser, _field(browser, "tasks"))
    _submit(browser)

    run = _run_started_by_form(airflow_stack, browser, tag)
    assert run["conf"]["geom"] == geom and run["conf"]["tasks"] == TREE
    finished = airflow_stack.wait_for_run(run["dag_run_id"])
    assert _task_state(airflow_stack, run["dag_run_id"], "validate") == "success"
    assert finished["state"] == "success", airflow_stack.logs()


def test_rest_trigger_with_a_bad_conf_answers_the_fixes_and_needs_a_login_first(
    airflow_stack: AirflowStack, demo_conf: dict[str, Any]
) -> None:
    body = {"logical_date": None, "conf": {**demo_conf, "cloud": 150, "catalog": "nowhere"}}
    with airflow_stack.client(authenticated=False) as anonymous:
        refused = anonymous.post("/api/v2/dags/radcor/dagRuns", json=body)
    assert refused.status_code == 401, refused.text  # Airflow's answer: nothing validated
    assert "cloud" not in refused.text
    with airflow_stack.client() as client:
        response = client.post("/api/v2/dags/radcor/dagRuns", json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["detail"].startswith("The radcor conf has 2 problems; nothing was started.")
    assert {e["field"] for e in answer["errors"]} == {"catalog", "cloud"}
    assert all(e["message"] and e["fix"] for e in answer["errors"])
