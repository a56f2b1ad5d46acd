"""The API for an operator: documentation pages without a network, the report's charts for the Dagster UI."""

import io
import re
import shutil

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from scenarios_assets.api import create_app
from scenarios_assets.core.library.builds import REPORT_FILE, TMP_PREFIX
from scenarios_assets.core.library.report import CHART_PREFIX, INLINE_MARKDOWN_LIMIT
from scenarios_assets.defs.scenarios import report_writer
from scenarios_tests.operator_helpers import publish_build


def test_docs_and_redoc_load_only_local_assets(tmp_path):
    client = TestClient(create_app(tmp_path / "library", tmp_path / "dagster_home"))
    for page, wanted in (("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})):
        html = client.get(page)
        assert html.status_code == 200, page
        assert "http://" not in html.text and "https://" not in html.text, f"{page} loads something from the network"
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert wanted <= {u.rsplit("/", 1)[-1] for u in urls}, urls
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200, url
            if url.endswith(".js"):  # the real bundles (Swagger UI ~1.5 MB, ReDoc ~1.1 MB), not stubs
                assert len(asset.content) > 500_000 and asset.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert "'/openapi.json'" in client.get("/docs").text
    assert client.get("/openapi.json").json()["info"]["title"] == "Market scenarios API"


@pytest.fixture(scope="module")
def build(make_ctx, tmp_path_factory):
    out = tmp_path_factory.mktemp("library")
    final, _ = publish_build(out, make_ctx, families=("historical",))
    return out, final


def test_api_serves_each_chart_and_its_thumbnail(build, tmp_path):
    out, final = build
    client = TestClient(create_app(out, tmp_path / "dagster_home"))
    png = (final / f"{CHART_PREFIX}overview.png").read_bytes()
    whole = client.get("/report/charts/overview.png", params={"build": final.name})
    assert whole.status_code == 200 and whole.headers["content-type"] == "image/png" and whole.content == png
    assert "immutable" in whole.headers["cache-control"] and whole.headers["x-scenarios-build"] == final.name
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    thumb = client.get("/report/charts/overview.png", params={"build": final.name, "width": 300})
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.size == (300, round(height * 300 / width)) and width > 300
    assert client.get("/report/charts/overview.png", params={"width": 4000}).content == png  # never scaled up
    missing = client.get("/report/charts/monte_carlo_fan.png")  # a historical-only build has no fan chart
    assert missing.status_code == 404 and "no chart 'monte_carlo_fan'" in missing.json()["message"]
    assert client.get("/report/charts/..%2Fetc.png").status_code in (404, 422)


def test_catalog_metadata_shows_the_charts_in_place(build, tmp_path):
    """Dagster 1.13 renders Markdown metadata in the panel only under 1,000 characters: each chart is a linked
    thumbnail from the API, not an embedded PNG."""
    _, final = build
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-copy"
    shutil.copytree(final, tmp)
    charts: dict = {}
    report_writer(None, charts, "http://127.0.0.1:8000")(tmp)
    keys = sorted(k for k in charts if k.startswith("chart_"))
    assert keys == ["chart_historical_drawdowns", "chart_overview"]
    for key in keys:
        md = charts[key].value
        url = f"http://127.0.0.1:8000/report/charts/{key.removeprefix('chart_')}.png?build={final.name}-copy"
        assert len(md) < INLINE_MARKDOWN_LIMIT == 1000 and "base64" not in md
        assert "[![" in md and f"]({url}&width=560)]({url})" in md
    assert charts["report_url"].value == f"http://127.0.0.1:8000/report?build={final.name}-copy"
    assert charts["report"].value == str(final.parent / f"{final.name}-copy" / REPORT_FILE)
