"""The image builds from what deploy/Dockerfile copies: every workspace member and the files
the build reads are in its context, the workspace resolves from those files alone (lock file
included, offline), and the binaries copied out are built by the packages it builds."""

import json
import pathlib
import re
import shutil
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def build_stage():
    """(sources copied into /src, `cargo build` arguments, binaries copied out of the build)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    copied, build_args, binaries = [], [], []
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"COPY\s+(?!--from)(.+)$", line)
        if m:
            *sources, _dest = m.group(1).split()
            copied += sources
        m = re.search(r"cargo build (.+)$", line)
        if m:
            build_args = m.group(1).split()
        m = re.match(r"COPY --from=build (.+)$", line)
        if m:
            *sources, _dest = m.group(1).split()
            binaries += [pathlib.Path(s).name for s in sources]
    return copied, build_args, binaries


def metadata(cwd, *extra):
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", *extra], cwd=cwd,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_every_member_and_the_lock_file_are_copied():
    copied, _, _ = build_stage()
    meta = metadata(ROOT, "--no-deps")
    members = {str(pathlib.Path(p["manifest_path"]).parent.relative_to(ROOT))
               for p in meta["packages"]}
    missing = (members | {"Cargo.toml", "Cargo.lock"}) - set(copied)
    assert not missing, f"deploy/Dockerfile does not copy {sorted(missing)}"


def test_the_workspace_resolves_from_the_image_context_alone():
    copied, _, _ = build_stage()
    with tempfile.TemporaryDirectory() as ctx:
        for src in copied:
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, pathlib.Path(ctx) / src,
                                ignore=shutil.ignore_patterns("target"))
            else:
                shutil.copy2(ROOT / src, pathlib.Path(ctx) / src)
        # --locked: the lock file copied is the one the workspace needs; --offline: nothing
        # beyond the crates a build here already fetched (the image's own platform only).
        target = subprocess.run(["rustc", "-vV"], check=True, capture_output=True,
                                text=True).stdout.split("host: ")[1].split()[0]
        meta = metadata(ctx, "--locked", "--offline", "--filter-platform", target)
        assert {p["name"] for p in meta["packages"]} >= {"maestro-catalogue", "maestro-api",
                                                        "maestro-beat"}


def test_the_binaries_copied_out_are_built():
    _, args, binaries = build_stage()
    assert "--locked" in args and "--release" in args, args
    packages = {args[i + 1] for i, a in enumerate(args) if a == "-p"}
    meta = metadata(ROOT, "--no-deps")
    built = {t["name"] for p in meta["packages"] if p["name"] in packages
             for t in p["targets"] if "bin" in t["kind"]}
    assert binaries and set(binaries) <= built, (
        f"the image copies {binaries}; `cargo build -p {sorted(packages)}` builds {sorted(built)}")


def default_queues():
    """The queues of Maestro's default routes (contract/src/routes.rs, names.rs)."""
    names = (ROOT / "contract" / "src" / "names.rs").read_text()
    consts = dict(re.findall(r'pub const (QUEUE_\w+): &str = "([^"]+)";', names))
    routes = (ROOT / "contract" / "src" / "routes.rs").read_text()
    table = routes[routes.index("DEFAULT_ROUTES"):routes.index("];")]
    used = set(re.findall(r"\b(QUEUE_\w+)\)", table))
    assert used and used <= set(consts), (used, consts)
    return {consts[c] for c in used}


def test_every_default_queue_has_workers_in_compose_and_kubernetes():
    compose = (ROOT / "deploy" / "compose.yml").read_text()
    k8s = (ROOT / "deploy" / "k8s" / "workers.yaml").read_text()
    for q in default_queues():
        assert f'"maestro-worker", "-Q", "{q}"' in compose, f"compose has no worker for {q}"
        assert f'args: ["-Q", "{q}"' in k8s, f"deploy/k8s/workers.yaml has no Deployment for {q}"
        assert f"queueName: {q}\n" in k8s, f"no KEDA trigger for {q}"
