"""MNIST / Fashion-MNIST / CIFAR-10 readers and downloads, on small files written here in the
real formats; downloads go to a loopback HTTP server only."""
import gzip
import hashlib
import http.server
import io
import os
import subprocess
import sys
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

from gpucnn.cli import main as cli_main
from gpucnn.data import SOURCES, download, load
from gpucnn.data import sources as sources_mod

MNIST_BASES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_MEMBERS = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def mnist_files(n_train=40, n_test=12, seed=0) -> dict:
    """{file name (.gz): bytes} of a tiny MNIST in IDX format, and the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    return {k: idx_bytes(v) for k, v in arrays.items()}, arrays


def write(folder, files: dict) -> dict:
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
    return {name: md5(data) for name, data in files.items()}


def gz_files(raw: dict) -> dict:
    return {k + ".gz": gzip.compress(v, mtime=0) for k, v in raw.items()}


def cifar_batch(images: np.ndarray, labels) -> bytes:
    return pickle.dumps({b"batch_label": b"fake", b"labels": list(labels),
                         b"data": images.reshape(len(images), -1), b"filenames": []}, protocol=2)


def cifar_files(per_batch=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for m in CIFAR_MEMBERS[:6]:
        n = n_test if m == "test_batch" else per_batch
        arrays[m] = (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                     rng.integers(0, 10, n).tolist())
    files = {m: cifar_batch(*arrays[m]) for m in arrays}
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    files["batches.meta"] = pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    return files, arrays


def tar_gz(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def source_for(name, checksums, base_url="http://127.0.0.1:9/"):
    return SOURCES[name].replace(base_url=base_url, checksums=checksums)


# --- MNIST / Fashion-MNIST ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_gz_files_load(tmp_path, name):
    raw, arrays = mnist_files()
    sums = write(tmp_path / name, gz_files(raw))
    d = load(name, data_dir=tmp_path, normalize="none", val_fraction=0.25,
             source=source_for(name, sums))
    assert d.meta.sizes == (30, 10, 12) and d.x_train.shape[1:] == (1, 28, 28)
    np.testing.assert_array_equal(np.round(d.x_test[:, 0] * 255), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    # train + val are the official training set, each image with its own label
    x = np.concatenate([d.x_train, d.x_val])[:, 0] * 255
    y = np.concatenate([d.y_train, d.y_val])
    order = np.argsort([np.flatnonzero((arrays["train-images-idx3-ubyte"] == im).all(axis=(1, 2)))[0]
                        for im in np.round(x).astype(np.uint8)])
    np.testing.assert_array_equal(y[order], arrays["train-labels-idx1-ubyte"])
    assert d.meta.class_names[0] == ("0" if name == "mnist" else "T-shirt/top")


def test_uncompressed_idx_files_in_the_root_folder_load(tmp_path):
    raw, arrays = mnist_files()
    write(tmp_path, raw)
    d = load("mnist", data_dir=tmp_path, normalize="none")
    np.testing.assert_array_equal(np.round(d.x_test[:, 0] * 255), arrays["t10k-images-idx3-ubyte"])


def test_data_dir_defaults_to_gpucnn_data(tmp_path, monkeypatch):
    raw, _ = mnist_files()
    sums = write(tmp_path / "mnist", gz_files(raw))
    monkeypatch.setenv("GPUCNN_DATA", str(tmp_path))
    assert load("mnist", source=source_for("mnist", sums)).meta.sizes[2] == 12


def test_missing_files_say_what_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load("mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "gpucnn data download mnist" in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load("cifar10", data_dir=tmp_path)


def _broken(raw, base, data):
    files = dict(raw)
    files[base] = data
    return gz_files(files)


@pytest.mark.parametrize("breakage, match", [
    (lambda raw: _broken(raw, "t10k-images-idx3-ubyte",
                         b"\x00\x00\x08\x01" + raw["t10k-images-idx3-ubyte"][4:]),
     "t10k-images-idx3-ubyte.gz: wrong magic number"),
    (lambda raw: _broken(raw, "t10k-images-idx3-ubyte", raw["t10k-images-idx3-ubyte"][:-5]),
     "t10k-images-idx3-ubyte.gz: truncated"),
    (lambda raw: _broken(raw, "train-labels-idx1-ubyte",
                         idx_bytes(np.full(40, 10, np.uint8))),
     "train-labels-idx1-ubyte.gz: label 10 outside the class range"),
    (lambda raw: _broken(raw, "train-labels-idx1-ubyte",
                         idx_bytes(np.zeros(39, np.uint8))),
     "image count 40 does not match the label count 39"),
    (lambda raw: {**gz_files(raw), "train-images-idx3-ubyte.gz":
                  gzip.compress(raw["train-images-idx3-ubyte"])[:-100]},
     "train-images-idx3-ubyte.gz: truncated"),
])
def test_bad_idx_files_are_named(tmp_path, breakage, match):
    raw, _ = mnist_files()
    sums = write(tmp_path / "mnist", breakage(raw))
    with pytest.raises(ValueError, match=match):
        load("mnist", data_dir=tmp_path, source=source_for("mnist", sums))


def test_idx_checksum_mismatch(tmp_path):
    raw, _ = mnist_files()
    sums = write(tmp_path / "mnist", gz_files(raw))
    sums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        load("mnist", data_dir=tmp_path, source=source_for("mnist", sums))
    # and the registered (official) checksums reject files that are not the real ones
    with pytest.raises(ValueError, match="checksum mismatch"):
        load("mnist", data_dir=tmp_path)


# --- CIFAR-10 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("packed", [False, True])
def test_cifar10_folder_and_archive(tmp_path, packed):
    files, arrays = cifar_files()
    if packed:
        sums = write(tmp_path / "cifar10", {"cifar-10-python.tar.gz": tar_gz(files)})
    else:
        sums = write(tmp_path / "cifar10" / "cifar-10-batches-py", files)
    d = load("cifar10", data_dir=tmp_path, normalize="none", val_fraction=0.2,
             source=source_for("cifar10", sums))
    assert d.meta.sizes == (80, 20, 10) and d.x_train.shape[1:] == (3, 32, 32)
    assert d.meta.class_names[9] == "truck"
    images, labels = arrays["test_batch"]
    np.testing.assert_allclose(d.x_test * 255, images, atol=1e-4)
    np.testing.assert_array_equal(d.y_test, labels)
    all_train = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert np.isclose(d.x_train.sum() + d.x_val.sum(), all_train.sum() / 255, rtol=1e-5)


def test_cifar10_standardize_uses_training_statistics(tmp_path):
    files, _ = cifar_files()
    sums = write(tmp_path / "cifar10", {"cifar-10-python.tar.gz": tar_gz(files)})
    src = source_for("cifar10", sums)
    raw = load("cifar10", data_dir=tmp_path, normalize="none", source=src)
    d = load("cifar10", data_dir=tmp_path, normalize="standardize", source=src)
    np.testing.assert_allclose(d.meta.mean, raw.x_train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(d.meta.std, raw.x_train.std(axis=(0, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(d.x_test, d.meta.normalize(raw.x_test), atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(axis=(0, 2, 3)), 1, rtol=1e-4)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("member, data, match", [
    ("data_batch_2", lambda a: cifar_batch(a[0], [3] * (len(a[1]) - 1)),
     "data_batch_2: image count 20 does not match the label count 19"),
    ("test_batch", lambda a: cifar_batch(a[0], [11] + a[1][1:]),
     "test_batch: label 11 outside the class range"),
    ("data_batch_1", lambda a: cifar_batch(a[0], a[1])[:-50], "data_batch_1: not a CIFAR-10"),
    ("data_batch_3", lambda a: pickle.dumps({b"data": _Evil(), b"labels": []}),
     "data_batch_3: not a CIFAR-10 pickle batch.*not allowed"),
])
def test_bad_cifar_batches_are_named(tmp_path, member, data, match):
    files, arrays = cifar_files()
    files[member] = data(arrays[member])
    sums = write(tmp_path / "cifar10", {"cifar-10-python.tar.gz": tar_gz(files)})
    with pytest.raises(ValueError, match=match):
        load("cifar10", data_dir=tmp_path, source=source_for("cifar10", sums))


def test_truncated_or_mismatched_cifar_archive(tmp_path):
    files, _ = cifar_files()
    blob = tar_gz(files)
    sums = write(tmp_path / "cifar10", {"cifar-10-python.tar.gz": blob[:len(blob) // 2]})
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: truncated or damaged archive"):
        load("cifar10", data_dir=tmp_path, source=source_for("cifar10", sums))
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: checksum mismatch"):
        load("cifar10", data_dir=tmp_path)
    partial = {k: v for k, v in files.items() if k != "data_batch_4"}
    sums = write(tmp_path / "cifar10", {"cifar-10-python.tar.gz": tar_gz(partial)})
    with pytest.raises(ValueError, match="lacks data_batch_4"):
        load("cifar10", data_dir=tmp_path, source=source_for("cifar10", sums))


# --- downloads over loopback --------------------------------------------------------------------

@pytest.fixture
def server():
    """A loopback HTTP server: ``files`` maps a path to bytes; paths in ``truncate`` announce
    100 bytes more than they send."""
    state = {"files": {}, "truncate": set()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.lstrip("/")
            if name not in state["files"]:
                self.send_error(404)
                return
            body = state["files"][name]
            self.send_response(200)
            extra = 100 if name in state["truncate"] else 0
            self.send_header("Content-Length", str(len(body) + extra))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield state
    httpd.shutdown()
    httpd.server_close()


def _mnist_on_server(server):
    raw, arrays = mnist_files()
    files = gz_files(raw)
    server["files"].update(files)
    return source_for("mnist", {k: md5(v) for k, v in files.items()}, server["url"]), arrays


def test_download_then_load(tmp_path, server):
    src, arrays = _mnist_on_server(server)
    paths = download("mnist", tmp_path, source=src, log=lambda *_: None)
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(os.path.basename(p) for p in paths)
    d = load("mnist", data_dir=tmp_path, normalize="none", source=src)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    # a second run keeps the good files and fetches nothing
    server["files"].clear()
    assert download("mnist", tmp_path, source=src, log=lambda *_: None) == paths


def test_corrupted_download_leaves_nothing(tmp_path, server):
    src, _ = _mnist_on_server(server)
    server["files"]["t10k-images-idx3-ubyte.gz"] = b"\x1f\x8bnot the file"
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        download("mnist", tmp_path, source=src, log=lambda *_: None)
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(tmp_path / "mnist")
    assert not [f for f in os.listdir(tmp_path / "mnist") if f.endswith(".part")]


def test_truncated_download_leaves_nothing(tmp_path, server):
    src, _ = _mnist_on_server(server)
    server["truncate"].add("train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: truncated download"):
        download("mnist", tmp_path, source=src, log=lambda *_: None)
    assert os.listdir(tmp_path / "mnist") == ["train-images-idx3-ubyte.gz"]


def test_download_of_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="mnist, fashion-mnist, cifar10"):
        download("svhn", tmp_path)


def test_cli_data_list_and_download(tmp_path, server, monkeypatch, capsys):
    src, _ = _mnist_on_server(server)
    monkeypatch.setitem(sources_mod.SOURCES, "mnist", src)
    assert cli_main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    assert "gpucnn data download mnist" in capsys.readouterr().out
    assert cli_main(["data", "download", "mnist", "--data-dir", str(tmp_path)]) == 0
    assert cli_main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"mnist          {tmp_path / 'mnist'} (checksums ok)" in out
    server["files"]["t10k-labels-idx1-ubyte.gz"] = b"broken"
    os.remove(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert cli_main(["data", "download", "mnist", "--data-dir", str(tmp_path)]) == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_a_download_killed_mid_write_leaves_no_part_file_after_the_next(tmp_path, server):
    src, _ = _mnist_on_server(server)
    folder = tmp_path / "mnist"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the writer of the stale file
    stale = folder / f".train-images-idx3-ubyte.gz.{dead.pid}.abc123.part"
    stale.write_bytes(b"half a download")
    live = folder / f".train-images-idx3-ubyte.gz.{os.getppid()}.def456.part"  # a live writer's
    live.write_bytes(b"still being written")
    download("mnist", tmp_path, source=src, log=lambda *_: None)
    assert not stale.exists() and live.exists()
