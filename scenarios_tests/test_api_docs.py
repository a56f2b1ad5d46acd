"""The API's documentation pages work without a network: every asset they load is served by the API itself."""

import re

from fastapi.testclient import TestClient

from scenarios_assets.api import create_app


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
