import hashlib
import io
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from sss_auto.errors import CheckpointError
from sss_auto.networks import checkpoints


def _official_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": {"image_encoder.w": torch.randn(64)}}, buffer)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, payload: bytes, claimed: int, *args, **kwargs):
        self.payload, self.claimed = payload, claimed
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.claimed))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload: bytes, claimed: int | None = None):
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, payload, len(payload) if claimed is None else claimed))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()


def test_url_table_and_names():
    assert checkpoints.checkpoint_url("tiny") == "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"
    assert checkpoints.checkpoint_url("base_plus", "2.0").endswith("/072824/sam2_hiera_base_plus.pt")
    with pytest.raises(CheckpointError, match="no official checkpoint"):
        checkpoints.checkpoint_name("test")


def test_download_writes_the_file_and_its_sha256_and_the_cache_finds_it(serve, tmp_path, monkeypatch):
    payload = _official_bytes()
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", serve(payload))
    monkeypatch.setenv("SSS_SAM2_DIR", str(tmp_path))
    assert checkpoints.find_checkpoint("small") is None
    path = checkpoints.download_checkpoint("small", progress=False)
    assert path == tmp_path / "sam2.1_hiera_small.pt" and path.read_bytes() == payload
    recorded = (tmp_path / "sam2.1_hiera_small.pt.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(payload).hexdigest()
    assert checkpoints.find_checkpoint("small") == path


def test_partial_download_leaves_nothing(serve, tmp_path, monkeypatch):
    payload = _official_bytes()
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", serve(payload[:1000], claimed=len(payload)))
    with pytest.raises(CheckpointError, match="incomplete|cannot download"):
        checkpoints.download_checkpoint("tiny", folder=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_checkpoint_is_refused(serve, tmp_path, monkeypatch):
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", serve(b"<html>not found</html>"))
    with pytest.raises(CheckpointError, match="does not load safely"):
        checkpoints.download_checkpoint("tiny", folder=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_error_gives_the_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", "http://127.0.0.1:9/")  # discard port: connection refused
    with pytest.raises(CheckpointError, match="download .*sam2.1_hiera_tiny.pt yourself"):
        checkpoints.download_checkpoint("tiny", folder=tmp_path, progress=False, timeout_s=5)
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_the_path_and_exits_2_offline(serve, tmp_path, monkeypatch, capsys):
    from sss_auto.cli.download_sam2 import main

    monkeypatch.setitem(checkpoints.BASE_URLS, "2.0", serve(_official_bytes()))
    assert main(["--variant", "large", "--version", "2.0", "--dir", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "sam2_hiera_large.pt")
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", "http://127.0.0.1:9/")
    assert main(["--variant", "large", "--dir", str(tmp_path / "other"), "--no-progress"]) == 2
    assert "yourself" in capsys.readouterr().err


def test_medsam2_source_downloads_its_tiny_model_and_refuses_other_variants(serve, tmp_path, monkeypatch):
    payload = _official_bytes()
    monkeypatch.setattr(checkpoints, "MEDSAM2_BASE_URL", serve(payload))
    name, url = checkpoints.source_file("tiny", source="medsam2")
    assert name == "MedSAM2_latest.pt" and url.endswith("/MedSAM2_latest.pt")
    assert checkpoints.source_file("tiny", source="meta")[0] == "sam2.1_hiera_tiny.pt"
    path = checkpoints.download_checkpoint("tiny", folder=tmp_path, progress=False, source="medsam2")
    assert path == tmp_path / "MedSAM2_latest.pt" and path.read_bytes() == payload
    assert checkpoints.find_checkpoint("tiny", tmp_path) == path
    with pytest.raises(CheckpointError, match="MedSAM2 publishes only a Hiera-tiny model"):
        checkpoints.download_checkpoint("small", folder=tmp_path, progress=False, source="medsam2")
    with pytest.raises(CheckpointError, match="unknown checkpoint source"):
        checkpoints.source_file("tiny", source="hf")


def test_a_download_whose_keys_name_another_variant_is_not_kept(serve, tmp_path, monkeypatch):
    buffer = io.BytesIO()
    torch.save({"model": {f"image_encoder.trunk.blocks.{i}.w": torch.zeros(1) for i in range(16)}}, buffer)  # small
    monkeypatch.setitem(checkpoints.BASE_URLS, "2.1", serve(buffer.getvalue()))
    with pytest.raises(CheckpointError, match="holds a SAM-2 small image encoder, not tiny"):
        checkpoints.download_checkpoint("tiny", folder=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
