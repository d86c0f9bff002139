"""A newcomer's worker, built outside this repository: a crate in a temporary directory that
depends on maestro-worker by path, with the Cargo.toml and main.rs shown in
docs/writing-tasks.md (taken from the page, so the page stays true), serving its typed task to
a Python Celery client. It shares this repository's target directory and lock file, so only
the new crate and what its features change are compiled."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, WORKER_BIN

DOC = ROOT / "docs" / "writing-tasks.md"


def doc_block(marker):
    text = DOC.read_text()
    m = re.search(rf"<!-- newcomer: {re.escape(marker)} -->\n```\w+\n(.*?)```", text, re.S)
    assert m, f"docs/writing-tasks.md has no block marked {marker}"
    return m.group(1)


def test_a_new_crate_serves_a_typed_task_to_python(names, workers, celery_app, tmp_path):
    crate = tmp_path / "newcomer"
    (crate / "src").mkdir(parents=True)
    manifest = doc_block("Cargo.toml").replace(
        '"../maestro-workers/workers"', f'"{ROOT / "workers"}"')
    assert str(ROOT) in manifest, "the page's path dependency was not found"
    (crate / "Cargo.toml").write_text(manifest + "\n[workspace]\n")
    main = doc_block("src/main.rs")
    lines = [l for l in main.splitlines() if l.strip()]
    assert len(lines) < 15, f"the page's task and worker take {len(lines)} lines"
    (crate / "src" / "main.rs").write_text(main)
    shutil.copy(ROOT / "Cargo.lock", crate / "Cargo.lock")
    target = pathlib.Path(WORKER_BIN).parent.parent
    # The workspace's own dev profile, so the dependencies built for it are reused (and not
    # built again with full debug info into the shared target directory).
    profile = ['profile.dev.debug="line-tables-only"', 'profile.dev.package."*".opt-level=1',
               'profile.dev.package."*".debug=false']
    build = subprocess.run(
        ["cargo", "build", "--offline", "-q", *[a for p in profile for a in ("--config", p)]],
        cwd=crate, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    assert build.returncode == 0, build.stderr[-4000:]
    binary = target / "debug" / "newcomer"
    q = names.queue("newcomer")
    w = workers([q], binary=str(binary))
    assert celery_app.send_task("newcomer.add", args=[2, 3], queue=q).get(timeout=30) == 5
    assert celery_app.send_task("newcomer.add", kwargs={"x": 40, "y": 2}, queue=q).get(
        timeout=30) == 42
    with pytest.raises(TypeError, match=r"add\(\) missing 1 required positional argument: 'y'"):
        celery_app.send_task("newcomer.add", args=[1], queue=q).get(timeout=30)
    # The worker's own name, not Maestro's, where the flags say nothing.
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "newcomer" in out.stdout
    assert w.proc.poll() is None
