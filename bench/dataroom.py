"""Benchmark: `cfx dataroom sync` of a 200 MB bundle to a GCS API (fake-gcs-server on 127.0.0.1).

    .venv/bin/python bench/dataroom.py

Publishes a small demo company, adds a 200 MB file of random bytes to its publication (random, so
nothing compresses), and syncs a data room holding the usual files plus that one. Measured side by
side in one run, because the machine is noisy:

* `cfx dataroom sync` (build, encrypt, upload, read back, sign, publish) — time and peak memory;
* the floor: the official client uploading the same 200 MB file once, and reading it back;
* a re-sync with nothing changed; `cfx dataroom verify --identity` (download, decrypt, check).

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import REPO, machine, measure, now, update_section  # noqa: E402

from tests.servers import GcsEmulator  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))
SIZE_MB = 200
SMALL_MB = 50


def main() -> None:
    # No options; --help describes the benchmark instead of running it (and rewriting docs/benchmarks.md).
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    work = Path(tempfile.mkdtemp(prefix="cfx-bench-dataroom-"))
    home = work / "home"
    small = {
        "CFX_HOME": str(home),
        "CFX_DEMO__ACCOUNTS": "220",
        "CFX_DEMO__MONTHS": "20",
        "CFX_DEMO__END_MONTH": "2025-12",
    }
    assert measure([CFX, "run", "--demo"], env=small).returncode == 0, "cfx run failed"
    big = (home / "published").resolve() / "big.bin"

    def write_big(mb: int) -> None:
        with open(big, "wb") as fh:
            for _ in range(mb):
                fh.write(os.urandom(1024 * 1024))

    write_big(SMALL_MB)
    spec = work / "spec" / "manifest.yml"
    spec.parent.mkdir()
    text = (REPO / "dataroom" / "manifest.yml").read_text()
    text += "  - id: 07-bench\n    title: A 200 MB file\n    files:\n      - {name: big.bin, from: publication, path: big.bin}\n"
    spec.write_text(text)
    shutil.copy(REPO / "dataroom" / "investor-deck.md", spec.parent / "investor-deck.md")
    key = work / "investor.key"
    public = subprocess.run(
        [CFX, "dataroom", "keygen", "--out", str(key)], env={**os.environ, **small}, capture_output=True, text=True
    ).stdout.split()[-1]
    gcs = GcsEmulator().start()
    try:
        gcs.bucket("room")
        env = {
            **small,
            "STORAGE_EMULATOR_HOST": gcs.host,
            "CFX_DATAROOM__TARGET": "gs://room/series-a",
            "CFX_DATAROOM__RECIPIENTS": json.dumps([public]),
            "CFX_DATAROOM__SPEC": str(spec),
        }
        floor_code = (
            "import sys, time, hashlib\n"
            "from google.cloud import storage\nfrom google.auth.credentials import AnonymousCredentials\n"
            f"c = storage.Client(project='test', credentials=AnonymousCredentials(), client_options={{'api_endpoint': '{gcs.host}'}})\n"
            "b = c.bucket('room').blob('floor/big.bin', chunk_size=8*1024*1024)\n"
            f"b.upload_from_filename('{big}')\n"
            "h = hashlib.sha256()\n"
            "with b.open('rb', chunk_size=8*1024*1024) as f:\n"
            "    while chunk := f.read(8*1024*1024): h.update(chunk)\n"
        )
        smaller = measure([CFX, "dataroom", "sync"], env={**env, "CFX_DATAROOM__TARGET": "gs://room/small"})
        assert smaller.returncode == 0, "sync failed"
        write_big(SIZE_MB)
        floor = measure([sys.executable, "-c", floor_code])
        sync = measure([CFX, "dataroom", "sync"], env=env)
        assert sync.returncode == 0, "sync failed"
        again = measure([CFX, "dataroom", "sync"], env=env)
        verify = measure([CFX, "dataroom", "verify", "--identity", str(key)], env=env)
        assert verify.returncode == 0, "verify failed"
    finally:
        gcs.kill()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"Machine: {machine()}. Date: {now()}.",
        "",
        "Command: `.venv/bin/python bench/dataroom.py` — a data room of the usual 20 files plus one 200 MB file of random "
        "bytes, synced to fake-gcs-server (memory backend) on 127.0.0.1 through the official client.",
        "",
        "| what | seconds | peak memory (MB) | vs the floor |",
        "|---|---:|---:|---:|",
        f"| floor: the official client uploads the 200 MB file and reads it back | {floor.seconds:.1f} | {floor.peak_rss_mb:,.0f} | 1.0x |",
        f"| `cfx dataroom sync`: build, encrypt, upload, read back, sign, publish | {sync.seconds:.1f} | {sync.peak_rss_mb:,.0f} | {sync.seconds / floor.seconds:.1f}x |",
        f"| `cfx dataroom sync` of the same room with a {SMALL_MB} MB file instead | {smaller.seconds:.1f} | {smaller.peak_rss_mb:,.0f} | |",
        f"| `cfx dataroom sync` again, nothing changed | {again.seconds:.1f} | {again.peak_rss_mb:,.0f} | {again.seconds / floor.seconds:.1f}x |",
        f"| `cfx dataroom verify --identity`: download, decrypt, check every file | {verify.seconds:.1f} | {verify.peak_rss_mb:,.0f} | {verify.seconds / floor.seconds:.1f}x |",
        "",
        f"Files stream through in 8 MB chunks (age encryption, upload, read-back hash, decryption): peak memory with the "
        f"{SIZE_MB} MB file is {sync.peak_rss_mb:,.0f} MB against {smaller.peak_rss_mb:,.0f} MB with {SMALL_MB} MB "
        f"(the cfx process alone, with pandas loaded, is about {again.peak_rss_mb:,.0f} MB). The re-sync reads the "
        "remote `latest`, finds its version already there and re-checks every object's hash; it uploads nothing.",
    ]
    update_section("Data room sync (200 MB)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
