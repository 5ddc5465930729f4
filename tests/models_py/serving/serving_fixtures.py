"""A real `propensity serve` process on a free loopback port, and a warehouse for it: the daily
template (tests/models_py/operations/daily_fixtures.py) with one wine campaign, scored by
`propensity run daily` (which publishes the serving snapshot)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

from models_py.cli import main
from tests.conftest import REPO_ROOT
from tests.models_py.operations.daily_fixtures import copy_template

API_KEY = "test-key-0123456789abcdef"
CAMPAIGNS = """
campaigns:
  wine_top:
    product_group: wine
    selection: {deciles: [1, 2, 3]}
    holdout_share: 0.1
    holdout_salt: "serve-tests"
"""


def served_warehouse(tmp_path_factory, name: str) -> Path:
    """A copy of the daily template with a campaign, scored by a daily run (snapshot published)."""
    work = tmp_path_factory.mktemp(name)
    path = copy_template(tmp_path_factory, work)
    (work / "campaigns.yml").write_text(CAMPAIGNS)
    assert main(["--warehouse", str(path), "campaigns", "set", str(work / "campaigns.yml")]) == 0
    assert main(["--warehouse", str(path), "run", "daily"]) == 0
    return path


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(
    warehouse: Path, *, api_key: str | None = API_KEY, serving_dir: Path | None = None, port: int
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PROPENSITY_API_KEY",)}
    if api_key is not None:
        env["PROPENSITY_API_KEY"] = api_key
    if serving_dir is not None:
        env["PROPENSITY_SERVING_DIR"] = str(serving_dir)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "models_py.cli",
            "--warehouse",
            str(warehouse),
            "serve",
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Server:
    """A started service; `client` sends the API key."""

    def __init__(self, warehouse: Path, *, serving_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = serve_process(warehouse, serving_dir=serving_dir, port=self.port)
        self.client = httpx.Client(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"propensity serve exited: {self.process.communicate()}")
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("propensity serve did not answer within 60 s")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.communicate()
