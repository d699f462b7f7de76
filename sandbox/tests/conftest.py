"""Fixtures of the sandbox's own tests: started sandboxes and a small v5 client over real HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import typing as t
import urllib.parse

import pytest
import requests

from pardot_export_sandbox import DataConfig, Sandbox, SandboxConfig

UTC = dt.timezone.utc
ZONE = "America/Los_Angeles"


def make_config(**kw: t.Any) -> SandboxConfig:
    """A sandbox config over 2024 in a zone with daylight saving; ``data_*`` keys go to DataConfig."""
    data_kw = {k[5:]: kw.pop(k) for k in list(kw) if k.startswith("data_")}
    data = DataConfig(
        start=dt.datetime(2024, 1, 1, tzinfo=UTC), end=dt.datetime(2025, 1, 1, tzinfo=UTC), timezone=ZONE, **data_kw
    )
    return SandboxConfig(data=data, **kw)


class V5:
    """A client of one sandbox's v5 API: a token from its OAuth endpoint, the business unit header."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.http = requests.Session()
        cfg = sb.config
        answer = self.http.post(
            f"{sb.base_url}/services/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": cfg.client_id,
                "client_secret": cfg.client_secret,
                "refresh_token": cfg.refresh_token,
            },
            timeout=10,
        )
        answer.raise_for_status()
        self.token = answer.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}", "Pardot-Business-Unit-Id": cfg.business_unit_id}

    def url(self, collection: str) -> str:
        return f"{self.sb.base_url}/api/v5/objects/{collection}"

    def get(
        self,
        collection: str,
        params: t.Any = None,
        *,
        raw_query: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """GET a collection with ``params`` (encoded by requests) or a query string sent as is."""
        url = self.url(collection) + (f"?{raw_query}" if raw_query is not None else "")
        return self.http.get(url, params=params, headers=headers or self.headers, timeout=30)

    def get_url(self, url: str) -> requests.Response:
        return self.http.get(url, headers=self.headers, timeout=30)

    def ok(self, collection: str, params: t.Any = None, **kw: t.Any) -> dict[str, t.Any]:
        r = self.get(collection, params, **kw)
        assert r.status_code == 200, r.text
        return t.cast("dict[str, t.Any]", r.json())

    def error(self, collection: str, params: t.Any = None, **kw: t.Any) -> tuple[int, int, str]:
        """Status, Pardot code and message of a refused request."""
        r = self.get(collection, params, **kw)
        assert r.status_code != 200, r.text[:300]
        body = r.json()
        assert set(body) == {"code", "message"}, body
        return r.status_code, body["code"], body["message"]

    def pages(self, collection: str, params: t.Any) -> list[requests.Response]:
        """Every page of a chain, following ``nextPageUrl`` as given."""
        out = [self.get(collection, params)]
        while True:
            assert out[-1].status_code == 200, out[-1].text
            nxt = out[-1].json()["nextPageUrl"]
            if nxt is None:
                return out
            out.append(self.get_url(nxt))

    def all(self, collection: str, params: t.Any) -> list[dict[str, t.Any]]:
        """The records of every page of a chain, in order."""
        return [rec for p in self.pages(collection, params) for rec in p.json()["values"]]


def local(value: str) -> dt.datetime:
    """An ISO 8601 datetime the API wrote, parsed (it must carry an offset)."""
    d = dt.datetime.fromisoformat(value)
    assert d.tzinfo is not None, value
    return d


def iso(d: dt.datetime) -> str:
    """A datetime as a filter value: ISO 8601 with a numeric offset."""
    return d.isoformat()


def raw(params: dict[str, str]) -> str:
    """A query string with every reserved character percent-encoded (``+`` as ``%2B``)."""
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


@pytest.fixture(scope="session")
def sb() -> t.Iterator[Sandbox]:
    """A shared sandbox of default sizes, read only (tests that change things make their own)."""
    with Sandbox(make_config()) as box:
        yield box


@pytest.fixture(scope="session")
def v5(sb: Sandbox) -> V5:
    return V5(sb)


@pytest.fixture
def fresh() -> t.Iterator[t.Callable[..., tuple[Sandbox, V5]]]:
    """A factory of started sandboxes of a test's own (``make_config`` keywords), stopped afterwards."""
    made: list[Sandbox] = []

    def factory(**kw: t.Any) -> tuple[Sandbox, V5]:
        box = Sandbox(make_config(**kw)).start()
        made.append(box)
        return box, V5(box)

    yield factory
    for box in made:
        threading.Thread(target=box.stop, daemon=True).start()
