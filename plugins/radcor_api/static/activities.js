/* Radcor activities page: lists activities with quicklooks and draws scene footprints.
 *
 * Authentication: the data endpoints take Airflow's own credentials. Inside the Airflow UI the
 * browser sends the UI's session cookie (same origin, HttpOnly) by itself. A script or a test may
 * instead open the page as .../ui/activities#token=<JWT>: the token stays in this page's memory,
 * is sent as a Bearer header only to this API, and is removed from the address bar at once (a
 * fragment never reaches a server, a log or a Referer header).
 */
(function () {
  "use strict";

  var API = "../radcor";
  var token = null;
  var map = null;
  var footprintLayer = null;
  var graticuleLayer = null;
  var layersByScene = {};
  var objectUrls = [];
  var knownCollections = {};
  var STATUS_RANK = {
    failed: 6, invalid: 6, upstream_failed: 5, running: 4, pending: 3,
    skipped: 2, reused: 1, success: 0
  };
  var STATUS_COLOR = {
    failed: "#ba2525", invalid: "#ba2525", upstream_failed: "#d9730d", running: "#2680c2",
    pending: "#2680c2", skipped: "#7b8794", reused: "#2f8132", success: "#2f8132"
  };

  function takeTokenFromFragment() {
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash || "");
    if (match) {
      token = decodeURIComponent(match[1]);
      var clean = window.location.pathname + window.location.search;
      window.history.replaceState(null, "", clean);
    }
  }

  function request(url) {
    var headers = { Accept: "application/json" };
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    return fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" });
  }

  function element(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function humanSize(bytes) {
    if (bytes === null || bytes === undefined) { return ""; }
    var units = ["B", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
  }

  function showMessage(text) {
    var box = document.getElementById("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  /* --- map --------------------------------------------------------------------------------- */

  function initMap() {
    map = L.map("map", { attributionControl: false, worldCopyJump: true, minZoom: 1 });
    map.setView([0, 0], 2);
    graticuleLayer = L.layerGroup().addTo(map);
    footprintLayer = L.featureGroup().addTo(map);
    map.on("moveend", drawGraticule);
    drawGraticule();
  }

  function graticuleStep(span) {
    var steps = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30];
    for (var i = 0; i < steps.length; i += 1) {
      if (span / steps[i] <= 8) { return steps[i]; }
    }
    return 30;
  }

  function drawGraticule() {
    graticuleLayer.clearLayers();
    var bounds = map.getBounds();
    var west = Math.max(bounds.getWest(), -180);
    var east = Math.min(bounds.getEast(), 180);
    var south = Math.max(bounds.getSouth(), -85);
    var north = Math.min(bounds.getNorth(), 85);
    var step = graticuleStep(Math.max(east - west, north - south));
    var style = { color: "#9fb3c8", weight: 1, opacity: 0.7, interactive: false };
    var digits = step < 1 ? 2 : 0;
    var lon;
    var lat;
    for (lon = Math.ceil(west / step) * step; lon <= east; lon += step) {
      L.polyline([[south, lon], [north, lon]], style).addTo(graticuleLayer);
      label([south, lon], lon.toFixed(digits) + "\u00b0", "top");
    }
    for (lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      L.polyline([[lat, west], [lat, east]], style).addTo(graticuleLayer);
      label([lat, west], lat.toFixed(digits) + "\u00b0", "right");
    }
  }

  function label(latlng, text, direction) {
    L.tooltip({ permanent: true, direction: direction, className: "graticule-label",
      interactive: false })
      .setLatLng(latlng).setContent(text).addTo(graticuleLayer);
  }

  function drawFootprints(activities) {
    footprintLayer.clearLayers();
    layersByScene = {};
    var scenes = {};
    activities.forEach(function (activity) {
      var scene = activity.scene;
      if (!scene || !scene.footprint) { return; }
      var entry = scenes[activity.scene_id];
      if (!entry) {
        entry = scenes[activity.scene_id] = { scene: scene, status: activity.status };
      } else if ((STATUS_RANK[activity.status] || 0) > (STATUS_RANK[entry.status] || 0)) {
        entry.status = activity.status;
      }
    });
    Object.keys(scenes).forEach(function (sceneId) {
      var entry = scenes[sceneId];
      var color = STATUS_COLOR[entry.status] || "#52606d";
      var layer = L.geoJSON(entry.scene.footprint, {
        style: { color: color, weight: 2, fillColor: color, fillOpacity: 0.15 }
      });
      layer.bindTooltip(sceneId + " (" + entry.status + ")");
      layer.eachLayer(function (shape) {
        if (shape.getElement) {
          shape.on("add", function () {
            var path = shape.getElement();
            if (path) { path.setAttribute("data-scene-id", sceneId); }
          });
        }
      });
      layer.addTo(footprintLayer);
      layersByScene[sceneId] = layer;
    });
    var count = Object.keys(scenes).length;
    if (count) {
      map.fitBounds(footprintLayer.getBounds(), { padding: [40, 40], maxZoom: 11 });
    }
    drawGraticule();
    return count;
  }

  function highlight(sceneId) {
    Object.keys(layersByScene).forEach(function (id) {
      layersByScene[id].setStyle({ weight: id === sceneId ? 4 : 2 });
    });
    if (layersByScene[sceneId]) {
      map.fitBounds(layersByScene[sceneId].getBounds(), { padding: [40, 40], maxZoom: 12 });
    }
  }

  /* --- table ------------------------------------------------------------------------------- */

  function loadThumbnail(img, url) {
    request(url).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.blob();
    }).then(function (blob) {
      var objectUrl = URL.createObjectURL(blob);
      objectUrls.push(objectUrl);
      img.onload = function () { img.setAttribute("data-loaded", "1"); };
      img.src = objectUrl;
    }).catch(function () {
      var missing = element("span", { "class": "no-quicklook", "data-loaded": "0" }, "missing");
      missing.title = "the quicklook file is gone (moved or removed)";
      img.replaceWith(missing);
    });
  }

  function link(href, text) {
    var anchor = element("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, text);
    return anchor;
  }

  function row(activity) {
    var tr = element("tr", {
      "class": "activity-row",
      "data-activity-id": activity.id,
      "data-status": activity.status,
      "data-scene-id": activity.scene_id
    });
    var quick = element("td");
    if (activity.links && activity.links.thumbnail) {
      var img = element("img", { "class": "quicklook", alt: "quicklook of " + activity.scene_id });
      quick.appendChild(img);
      loadThumbnail(img, activity.links.thumbnail);
    }
    tr.appendChild(quick);

    var scene = element("td", { "class": "scene" });
    scene.appendChild(element("code", {}, activity.scene_id));
    var facts = activity.scene || {};
    var details = [facts.date ? facts.date.slice(0, 10) : null, facts.tile,
      facts.cloud !== null && facts.cloud !== undefined ? "cloud " + facts.cloud + "%" : null]
      .filter(Boolean).join(" \u00b7 ");
    if (details) {
      scene.appendChild(element("br"));
      scene.appendChild(element("small", {}, details));
    }
    if (activity.error) {
      scene.appendChild(element("div", { "class": "error" }, activity.error));
    }
    tr.appendChild(scene);
    tr.appendChild(element("td", {}, activity.type));
    tr.appendChild(element("td", {}, activity.collection));
    var badgeCell = element("td");
    badgeCell.appendChild(element("span", { "class": "badge " + activity.status,
      title: activity.message || "" }, activity.status));
    tr.appendChild(badgeCell);
    tr.appendChild(element("td", {}, activity.ti_state || ""));
    tr.appendChild(element("td", {}, activity.attempts));
    tr.appendChild(element("td", {}, activity.provider || ""));
    tr.appendChild(element("td", {}, humanSize(activity.size_bytes)));
    tr.appendChild(element("td", {}, (activity.updated_at || "").replace("T", " ").slice(0, 19)));
    var links = element("td");
    if (activity.links && activity.links.ui) { links.appendChild(link(activity.links.ui, "log")); }
    if (activity.links && activity.links.item) {
      links.appendChild(document.createTextNode(" "));
      links.appendChild(link(activity.links.item, "item"));
    }
    tr.appendChild(links);
    tr.addEventListener("click", function (event) {
      if (event.target.tagName === "A") { return; }
      Array.prototype.forEach.call(document.querySelectorAll("tr.selected"), function (other) {
        other.classList.remove("selected");
      });
      tr.classList.add("selected");
      highlight(activity.scene_id);
    });
    return tr;
  }

  function updateCollections(activities) {
    var select = document.getElementById("collection");
    activities.forEach(function (activity) { knownCollections[activity.collection] = true; });
    var current = select.value;
    var names = Object.keys(knownCollections).sort();
    while (select.options.length > 1) { select.remove(1); }
    names.forEach(function (name) {
      select.appendChild(element("option", { value: name }, name));
    });
    select.value = current;
  }

  /* --- loading ----------------------------------------------------------------------------- */

  function currentFilters() {
    var filters = {};
    ["collection", "status", "run_id"].forEach(function (name) {
      var value = document.getElementById(name).value.trim();
      if (value) { filters[name] = value; }
    });
    return filters;
  }

  function load() {
    document.body.setAttribute("data-state", "loading");
    var filters = currentFilters();
    var params = new URLSearchParams(filters);
    params.set("limit", "200");
    window.history.replaceState(null, "", window.location.pathname + "?" +
      new URLSearchParams(filters).toString());
    objectUrls.forEach(function (url) { URL.revokeObjectURL(url); });
    objectUrls = [];
    return request(API + "/activities?" + params.toString()).then(function (response) {
      if (response.status === 401) {
        throw new Error("Not logged in: open this page from the Airflow UI, or pass #token=<JWT>.");
      }
      if (!response.ok) {
        return response.text().then(function (text) {
          throw new Error("The API answered " + response.status + ": " + text.slice(0, 300));
        });
      }
      return response.json();
    }).then(function (page) {
      var tbody = document.querySelector("#activities tbody");
      tbody.textContent = "";
      page.activities.forEach(function (activity) { tbody.appendChild(row(activity)); });
      updateCollections(page.activities);
      var footprints = drawFootprints(page.activities);
      document.getElementById("summary").textContent =
        page.activities.length + " of " + page.total + " activities, " + footprints + " scenes";
      showMessage(page.total ? "" : "No activity matches these filters.");
      document.body.setAttribute("data-rows", String(page.activities.length));
      document.body.setAttribute("data-footprints", String(footprints));
      document.body.setAttribute("data-state", "ready");
    }).catch(function (error) {
      showMessage(error.message);
      document.body.setAttribute("data-state", "error");
    });
  }

  function start() {
    takeTokenFromFragment();
    var query = new URLSearchParams(window.location.search);
    ["collection", "status", "run_id"].forEach(function (name) {
      var value = query.get(name);
      if (!value) { return; }
      var field = document.getElementById(name);
      if (field.tagName === "SELECT" && !Array.prototype.some.call(field.options,
        function (option) { return option.value === value; })) {
        field.appendChild(element("option", { value: value }, value));
        if (name === "collection") { knownCollections[value] = true; }
      }
      field.value = value;
    });
    initMap();
    document.getElementById("filters").addEventListener("submit", function (event) {
      event.preventDefault();
      load();
    });
    ["collection", "status"].forEach(function (name) {
      document.getElementById(name).addEventListener("change", load);
    });
    load();
  }

  start();
}());
