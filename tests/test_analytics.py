"""maestro.analytics.graph end to end: server-app's `POST /graph` to maestro-api (its private
JWT), the real maestro-worker drawing the business map from an inventory in MongoDB, and the
SVG delivered to a local **analytics-front stand-in**.

The stand-in is this test's own HTTP server, named for what it is (the real analytics-front is
a Maestro service this suite does not run): it takes `POST /graphs` form-urlencoded with fields
`payload` (the SVG) and `total`, and checks `Authorization: JWT <token>` as the real front
does: HS256 with the private secret, claims `token == MAESTRO_NOAUTH`, `graph_id` and
`owner_id` (401 otherwise). It keeps what it was sent, so the test reads the maps back.

Every map's geometry is checked by parsing the SVG: no two `rect.box` overlap and no edge
passes through a box. The small (the e2e inventory), medium (50) and large (500 applications,
cycles included, generated deterministically) maps are rendered to PNG with resvg; with
MAESTRO_WRITE_MAP_PNGS=1 the PNGs are written to docs/analytics/, otherwise to tmp_path.
"""
import base64
import bisect
import hashlib
import hmac
import json
import os
import re
import struct
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import ThreadingHTTPServer

import pytest
import resvg_py
from bson import ObjectId
from celery import Celery

from conftest import BROKER_URL, MONGODB_URI, ROOT, JsonHandler, backend_url, wait_for
from test_api import NOAUTH, SECRET, apis, b64url  # noqa: F401  (apis: a fixture)
from test_server_app_calls import call

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DIR = ROOT / "docs" / "analytics"
PIXELS_MAX = 5_000_000  # a larger map is scaled down to this many pixels (its PNG under 2 MB)


def b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verified_claims(token):
    """The claims of an HS256 token signed with the private secret, else None."""
    try:
        head, body, sig = token.split(".")
        if json.loads(b64decode(head)).get("alg") != "HS256":
            return None
        want = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        return json.loads(b64decode(body)) if hmac.compare_digest(b64url(want), sig) else None
    except ValueError:
        return None


class FrontStandIn:
    """analytics-front's `POST /graphs`, as this test's local stand-in (see the module docs)."""

    def __init__(self):
        self.maps = []  # {graph_id, owner_id, payload, total} as accepted
        self.refused = []
        self.status = 200  # what to answer a valid request with
        stand_in = self

        class Handler(JsonHandler):

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/graphs":
                    return self.answer(404, {"error": "Not found"})
                auth = self.headers.get("Authorization", "")
                claims = verified_claims(auth[4:]) if auth.startswith("JWT ") else None
                if not claims or claims.get("token") != NOAUTH or not claims.get("graph_id") \
                        or not claims.get("owner_id"):
                    stand_in.refused.append(auth)
                    return self.answer(401, {"error": "Unauthorized"})
                if not self.headers.get("Content-Type", "").startswith(
                        "application/x-www-form-urlencoded"):
                    return self.answer(415, {"error": "urlencoded only"})
                form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
                if stand_in.status != 200:
                    return self.answer(stand_in.status, {"error": "refused by the stand-in"})
                stand_in.maps.append({"graph_id": claims["graph_id"],
                                      "owner_id": claims["owner_id"],
                                      "payload": form["payload"][0], "total": form["total"][0]})
                self.answer(200, {"_id": claims["graph_id"], "status": "finished",
                                  "updated_at": "2026-01-01T00:00:00.000Z"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front():
    s = FrontStandIn()
    yield s
    s.close()


class Analytics:
    """maestro-api routing the map to the test's `analytics` queue, and (once asked for) the
    worker consuming it; the worker's notifications go to the test's `notify` queue."""

    def __init__(self, names, apis, workers, mongo, front):
        self.q, self.notify = names.queue("analytics"), names.queue("notify")
        self.api = apis(["--routes", f"maestro.analytics.graph={self.q}"])
        self.args = ["--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
                     "--result-backend", backend_url(mongo), "--secret-jwt-private", SECRET,
                     "--noauth", NOAUTH, "--analytics-front-uri", front.url,
                     "--routes", f"maestro.notify={self.notify}"]
        self.workers, self.w = workers, None
        self.results = Celery(f"analytics-{names.run}", broker=BROKER_URL,
                              backend=backend_url(mongo))

    def start(self):
        self.w = self.w or self.workers([self.q], args=self.args)
        return self

    def draw(self, body, timeout=180):
        """POST /graph as server-app sends it; the task's result once it ran."""
        status, task_id = call(self.api, "POST", "/graph", body)
        assert status == 201 and isinstance(task_id, str) and len(task_id) == 36, (status, task_id)
        r = self.results.AsyncResult(task_id)
        r.get(timeout=timeout, propagate=False)
        return r


@pytest.fixture
def analytics(names, apis, workers, mongo, front):
    a = Analytics(names, apis, workers, mongo, front)
    yield a
    a.results.close()


def roles(owner):
    return [{"_id": owner, "refs": "users", "role": 7}]


def new_graph(mongo, owner, name="map", roles_of=None):
    """The graph document as server-app inserts it before calling analytics."""
    gid = ObjectId()
    mongo.graphs.insert_one({"_id": gid, "name": name, "type": "bussiness", "status": "process",
                             "roles": roles(roles_of or owner), "owner": {"_id": owner},
                             "active": True})
    return gid


def request(gid, owner, systems):
    return {"_id": str(gid), "owner_id": str(owner), "type": "bussiness",
            "systems": [{"_id": str(s["_id"]), "name": s["name"]} for s in systems]}


def small_inventory(mongo):
    """Two clients; `shop` with its entry, `billing` without (the family ranking picks its
    load balancer), `empty` with neither; a cycle (catalog-api <-> events), a dependency on an
    id that exists nowhere and one on another tenant's application; servers with providers."""
    owner, other = ObjectId(), ObjectId()
    i = {k: ObjectId() for k in ("acme", "globex", "shop", "billing", "empty", "web", "api",
                                 "queue", "cache", "db", "lb", "bill", "ledger", "cron",
                                 "foreign", "ghost")}
    shop, billing = {"_id": i["shop"], "name": "shop"}, {"_id": i["billing"], "name": "billing"}
    acme, globex = {"_id": i["acme"], "name": "Acme"}, {"_id": i["globex"], "name": "Globex"}
    mongo.clients.insert_many([{**acme, "roles": roles(owner), "active": True},
                               {**globex, "roles": roles(owner), "active": True}])
    mongo.systems.insert_many([
        {**shop, "entry": [{"_id": i["web"], "name": "storefront", "family": "Application"}],
         "clients": [acme], "roles": roles(owner), "active": True},
        {**billing, "entry": [], "clients": [acme, globex], "roles": roles(owner),
         "active": True},
        {"_id": i["empty"], "name": "empty", "clients": [], "roles": roles(owner),
         "active": True}])

    def app(key, name, family, systems, deps=(), owner_=owner, provider=None):
        return {"_id": i[key], "name": name, "family": family, "system": systems,
                "deps": [{"_id": i[d], "endpoint": e} if e else {"_id": i[d]} for d, e in deps],
                "datacenters": {"provider": provider} if provider else {},
                "roles": roles(owner_), "active": True}
    mongo.applications.insert_many([
        app("web", "storefront", "Application", [shop],
            [("api", "https://catalog.internal/v1"), ("cache", None)]),
        app("api", "catalog-api", "Application", [shop],
            [("db", None), ("queue", "amqp://events"), ("ghost", None), ("foreign", None)]),
        app("queue", "events", "Broker", [shop], [("api", None)]),
        app("cache", "sessions", "Cache", [shop]),
        app("db", "orders-db", "Database", [shop, billing]),
        app("lb", "billing-lb", "Loadbalance", [billing], [("bill", None)], provider="AWS"),
        app("bill", "billing-app", "Application", [billing], [("db", None), ("ledger", None)]),
        app("ledger", "ledger-db", "Database", [billing]),
        app("cron", "billing-cron", "Application", [billing]),  # not an entry, not a dep
        app("foreign", "foreign-secret", "Database", [], owner_=other)])

    def server(apps, provider, owner_=owner, active=True):
        return {"_id": ObjectId(), "hostname": f"h-{ObjectId()}", "roles": roles(owner_),
                "active": active, "applications": [{"_id": i[a]} for a in apps],
                "datacenters": {"provider": provider}}
    mongo.servers.insert_many([
        server(["web", "api"], "AWS"), server(["web"], "AWS"), server(["db"], "OpenStack"),
        server(["bill"], "Azure"), server(["web"], "AWS", owner_=other),
        server(["db"], "AWS", active=False)])
    return owner, other, i, (shop, billing, {"_id": i["empty"], "name": "empty"})


def generated_inventory(mongo, tiers, tag):
    """A layered platform of sum(tiers) applications, from a fixed linear congruential
    sequence: every application of a tier is a dependency of one in the tier before, each has
    up to two more into the next two tiers, and every tenth depends back on its parent (a
    cycle). The first tier is the system's entry."""
    owner, seed = ObjectId(f"{tag:08x}{0:016x}"), [42]

    def rnd(m):
        seed[0] = (seed[0] * 6364136223846793005 + 1442695040888963407) % 2**64
        return (seed[0] >> 33) % m
    families = ["Loadbalance", "ApiGateway", "Application", "Application", "Serverless",
                "Cache", "Database", "ObjectStorage"]
    prefixes = ["edge", "gw", "svc", "core", "fn", "cache", "db", "store"]
    providers = ["AWS", "OpenStack", "Azure", "Digital Ocean", None]
    ids = [[ObjectId(f"{tag:08x}{(t + 1) * 1000 + j:016x}") for j in range(n)]
           for t, n in enumerate(tiers)]
    system = {"_id": ObjectId(f"{tag:08x}{1:016x}"), "name": f"platform-{sum(tiers)}"}
    deps = {a: [] for tier in ids for a in tier}
    for t in range(len(tiers) - 1):
        for j, a in enumerate(ids[t + 1]):
            deps[ids[t][j % tiers[t]]].append(a)
            if j % 10 == 9:
                deps[a].append(ids[t][j % tiers[t]])  # back to its parent: a cycle
        for a in ids[t]:
            for _ in range(rnd(3)):
                nt = min(t + 1 + rnd(2), len(tiers) - 1)
                deps[a].append(ids[nt][rnd(tiers[nt])])
    docs, k = [], 0
    for t, tier in enumerate(ids):
        for j, a in enumerate(tier):
            k += 1
            p = providers[k % len(providers)]
            docs.append({"_id": a, "name": f"{prefixes[t % 8]}-{t}-{j:03d}",
                         "family": families[t % 8], "system": [system],
                         "deps": [{"_id": d} for d in dict.fromkeys(deps[a])],
                         "datacenters": {"provider": p} if p else {},
                         "roles": roles(owner), "active": True})
    mongo.applications.insert_many(docs)
    mongo.systems.insert_one({**system, "entry": [{"_id": a} for a in ids[0]], "clients": [],
                              "roles": roles(owner), "active": True})
    return owner, system, len(docs)


def notifications(amqp, q, n=1):
    got = []

    def more():
        if amqp.ready(q):
            got.extend(json.loads(body)[1] for _, props, body in amqp.get_all(q)
                       if props.headers["task"] == "maestro.notify")
        return len(got) >= n
    wait_for(more, 20, what=f"{n} notification(s) on {q}")
    return got


def parse_map(svg):
    """Boxes by app id, the root ids, and each edge's points (M/L/C: every point and control
    point, in order)."""
    root = ET.fromstring(svg)
    boxes, roots, edges = {}, set(), []
    for g in root.iter(f"{SVG}g"):
        classes = g.get("class", "").split()
        if "app" in classes:
            (r,) = [r for r in g.findall(f"{SVG}rect") if r.get("class") == "box"]
            boxes[g.get("id")] = tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
            if "root" in classes:
                roots.add(g.get("id"))
    for p in root.iter(f"{SVG}path"):
        if "conector" in p.get("class", "").split():
            tokens = re.findall(r"[MLC]|-?\d+(?:\.\d+)?", p.get("d"))
            nums = [float(t) for t in tokens if t not in "MLC"]
            assert len(nums) % 2 == 0 and tokens[0] == "M", p.get("d")
            edges.append(list(zip(nums[::2], nums[1::2])))
    return boxes, roots, edges


def check_geometry(svg):
    """No two boxes overlap; no sampled point of an edge lies strictly inside a box (boxes
    shrunk by 1 unit). Returns the boxes and edges."""
    boxes, roots, edges = parse_map(svg)
    rects = sorted(boxes.values())
    for a_i, (ax, ay, aw, ah) in enumerate(rects):
        for bx, by, bw, bh in rects[a_i + 1:]:
            if bx >= ax + aw:
                break
            assert not (ay < by + bh and by < ay + ah), ("boxes overlap", (ax, ay), (bx, by))
    columns = {}  # boxes by column (x, width): their tops and heights, sorted
    for x, y, w, h in rects:
        columns.setdefault((x, w), ([], []))
        columns[(x, w)][0].append(y)
        columns[(x, w)][1].append(h)
    cols = sorted(columns.items())
    starts = [x for (x, _), _ in cols]

    def inside(px, py):
        c = bisect.bisect_right(starts, px) - 1
        if c < 0:
            return False
        (x, w), (tops, heights) = cols[c]
        r = bisect.bisect_right(tops, py) - 1
        return x + 1 < px < x + w - 1 and r >= 0 and tops[r] + 1 < py < tops[r] + heights[r] - 1
    for points in edges:
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for k in range(21):
                px, py = x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20
                assert not inside(px, py), ("an edge crosses a box", points, (px, py))
    return boxes, roots, edges


def render(name, svg, tmp_path):
    """The map as PNG; to docs/analytics/ with MAESTRO_WRITE_MAP_PNGS=1, else to tmp_path.
    A map over PIXELS_MAX is scaled down to it (the PNG stays under 2 MB)."""
    root = ET.fromstring(svg)
    area = float(root.get("width")) * float(root.get("height"))
    zoom = min(1.0, (PIXELS_MAX / area) ** 0.5)
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg, zoom=zoom, background="#fbfbfb"))
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000, len(png)
    width, height = struct.unpack(">II", png[16:24])
    folder = PNG_DIR if os.environ.get("MAESTRO_WRITE_MAP_PNGS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.png").write_bytes(png)
    return width, height, len(png)


def test_a_business_map_end_to_end(analytics, mongo, front, amqp, tmp_path):
    owner, other, i, (shop, billing, _) = small_inventory(mongo)
    gid = new_graph(mongo, owner, "shop and billing")
    r = analytics.start().draw(request(gid, owner, [shop, billing]))
    assert r.state == "SUCCESS", (r.traceback, r.result, analytics.w.log()[-3000:])
    assert r.result["apps"] == 8 and r.result["edges"] == 8 and r.result["missing"] == 2, r.result

    (sent,) = front.maps
    assert (sent["graph_id"], sent["owner_id"], sent["total"]) == (str(gid), str(owner), "8")
    assert front.refused == []
    g = mongo.graphs.find_one({"_id": gid})
    missing = "2 dependencies name applications that do not exist (left out)"
    assert g["status"] == "finished" and g["msg"] == f"Finish: {missing}", g
    # Columns: the entries, then what they call, then the stores (the cycle reversed).
    assert g["info"] == {"histograms": {"0": 2, "1": 3, "2": 3}, "density": "0.14",
                         "conections": 8}, g["info"]
    assert g["ifamilies"] == {"items": {"Application": 3, "Broker": 1, "Cache": 1,
                                        "Database": 2, "Loadbalance": 1}, "total": 8}
    assert g["isystems"] == {"items": [billing, shop], "total": 2}, g["isystems"]
    # Server links of the mapped applications: web 2, catalog-api 1, orders-db 1, billing-app
    # 1; the other tenant's and the inactive server are not counted.
    assert g["iservers"] == {"total": 4}, "servers, each once"
    assert g["iclients"] == {"items": [{"_id": i["acme"], "name": "Acme"},
                                       {"_id": i["globex"], "name": "Globex"}], "total": 2}
    assert g["roles"] == roles(owner) and g["name"] == "shop and billing"

    svg = sent["payload"]
    boxes, roots, edges = check_geometry(svg)
    drawn = {str(i[k]) for k in ("web", "api", "queue", "cache", "db", "lb", "bill", "ledger")}
    assert set(boxes) == drawn and roots == {str(i["web"]), str(i["lb"])}
    assert len(edges) == 8 and 'class="conector back' in svg, "the cycle is drawn back"
    # Owner scoping: the other tenant's application named in deps, and the id that exists
    # nowhere, are not on the map; nor is billing-cron (neither entry nor dependency).
    for absent in (str(i["foreign"]), "foreign-secret", str(i["ghost"]), str(i["cron"])):
        assert absent not in svg, absent
    assert "via https://catalog.internal/v1" in svg and "2 servers" in svg

    (note,) = notifications(amqp, analytics.notify)
    assert note["channel"] == "ws" and note["owner_id"] == str(owner), note
    assert note["notify"] == {"title": "Finish Graph", "msg": f"({gid})", "type": "success"}
    assert note["event"]["caller"] == ["analytics-update", f"analytics-{gid}"]
    width, height, size = render("small", svg, tmp_path)
    print(f"small map: {len(boxes)} apps, {len(edges)} edges, {width}x{height} px, {size} B")


def test_bad_input_never_leaves_a_graph_in_process(analytics, mongo, front, amqp):
    owner, other, i, (shop, billing, empty) = small_inventory(mongo)
    gid = new_graph(mongo, owner)
    # Refused by maestro-api, naming the field; nothing enqueued (no worker yet to take it).
    for bad, field in [({"type": "in fra"}, "type"), ({"_id": "not-an-id"}, "_id"),
                       ({"owner_id": str(owner)[:20]}, "owner_id"),
                       ({"systems": [{"_id": "zz", "name": "x"}]}, "systems")]:
        status, body = call(analytics.api, "POST", "/graph",
                            {**request(gid, owner, [shop]), **bad})
        assert status == 422 and body["field"] == field, (bad, status, body)
    assert amqp.ready(analytics.q) in (None, 0)
    analytics.start()

    # An infrastructure map, which Maestro never drew: a warning on the graph, not a 422
    # (server-app created the graph before asking; it would stay in process).
    r = analytics.draw({**request(gid, owner, [shop]), "type": "infra"})
    assert r.state == "SUCCESS" and r.result["status"] == "warning", (r.result, r.traceback)
    g = mongo.graphs.find_one({"_id": gid})
    assert g["status"] == "warning" and "business maps" in g["msg"], g

    # Another owner's graph: the task fails and writes nothing, tells nobody.
    theirs = new_graph(mongo, other, roles_of=other)
    r = analytics.draw(request(theirs, owner, [shop]))
    assert r.state == "FAILURE" and "LookupError" in f"{r.traceback}{r.result!r}", r.traceback
    assert mongo.graphs.find_one({"_id": theirs}, {"_id": 0, "name": 1, "status": 1}) == {
        "name": "map", "status": "process"}
    assert "info" not in mongo.graphs.find_one({"_id": theirs}) and front.maps == []

    # A system with no entry and no applications: warning "Empty entry point".
    r = analytics.draw(request(gid, owner, [empty]))
    assert r.state == "SUCCESS" and r.result["status"] == "warning", (r.result, r.traceback)
    g = mongo.graphs.find_one({"_id": gid})
    assert (g["status"], g["msg"]) == ("warning", "Empty entry point") and front.maps == []

    # analytics-front refusing the map: status error, the task fails (not stuck in process).
    front.status = 400
    r = analytics.draw(request(gid, owner, [shop, billing]))
    assert r.state == "FAILURE" and "HTTPError" in f"{r.traceback}{r.result!r}", r.traceback
    g = mongo.graphs.find_one({"_id": gid})
    assert g["status"] == "error" and "HTTP 400" in g["msg"], g
    assert g["ifamilies"]["total"] == 8, "the statistics were written before the delivery"
    kinds = [n["notify"]["type"] for n in notifications(amqp, analytics.notify, 3)]
    assert kinds == ["warning", "warning", "danger"], kinds
    assert front.maps == [] and front.refused == []


@pytest.mark.parametrize("size,tiers", [("medium", [3, 8, 12, 12, 10, 5]),
                                        ("large", [10, 40, 80, 100, 100, 90, 50, 30])])
def test_medium_and_large_maps_are_readable(analytics, mongo, front, tmp_path, size, tiers):
    owner, system, n = generated_inventory(mongo, tiers, tag=len(tiers) * 100 + sum(tiers))
    gid = new_graph(mongo, owner, f"{size} map")
    r = analytics.start().draw(request(gid, owner, [system]), timeout=300)
    assert r.state == "SUCCESS", (r.traceback, r.result, analytics.w.log()[-3000:])
    assert r.result["apps"] == n == sum(tiers) and r.result["missing"] == 0, r.result
    (sent,) = front.maps
    assert sent["total"] == str(n)
    g = mongo.graphs.find_one({"_id": gid})
    assert g["status"] == "finished" and g["msg"] == "Finish", g["msg"]
    assert g["ifamilies"]["total"] == n and sum(g["info"]["histograms"].values()) == n
    boxes, roots, edges = check_geometry(sent["payload"])
    assert len(boxes) == n and len(roots) == tiers[0] and len(edges) == r.result["edges"]
    assert 'class="conector back' in sent["payload"], "the cycles are drawn back"
    width, height, png_bytes = render(size, sent["payload"], tmp_path)
    assert png_bytes < 2_000_000, png_bytes
    print(f"{size} map: {n} apps, {len(edges)} edges, {width}x{height} px, {png_bytes} B")
