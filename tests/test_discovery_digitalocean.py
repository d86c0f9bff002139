"""maestro.discovery.scan for DigitalOcean, end to end against a local stand-in for DigitalOcean's
public API v2 (no emulator of it exists): a Celery client sends the scans, the real
maestro-worker reads every page with the connection's token and keeps Maestro's inventory in
step in MongoDB.

The stand-in is this test's own HTTP server, named for what it is: it serves answers in the
shapes of DigitalOcean's API reference (https://docs.digitalocean.com/reference/api/api-reference/:
the example bodies of List All Droplets, Volumes, Images, Load Balancers, Snapshots, CDN Endpoints,
Kubernetes Clusters and Firewalls, trimmed) and checks what the real API checks: a bearer token
(401 `unauthorized` otherwise), `page` and `per_page` within 1..200, `private=true` for the
account's own images. It pages with `links.pages.next` and `meta.total` as the API does."""
import json
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest
from bson import ObjectId

from conftest import MONGODB_URI, JsonHandler, backend_url
from test_discovery import SECRETJWT, hs256, moto, process  # noqa: F401 (moto: a fixture)

TOKEN = "dop_v1_standin_token_never_logged_4f9a"
PAGE = 2  # --scan-qtd, so five droplets take three pages
DC = ObjectId("5f00000000000000000000d0")


def droplet(i, status="active", private=True):
    v4 = [{"ip_address": f"104.131.186.{i}", "netmask": "255.255.240.0",
           "gateway": "104.131.176.1", "type": "public"}]
    if private:
        v4.insert(0, {"ip_address": f"10.128.0.{i}", "netmask": "255.255.0.0",
                      "gateway": "10.128.0.1", "type": "private"})
    return {
        "id": 3164440 + i, "name": f"web-{i}.example.com", "memory": 1024, "vcpus": 1,
        "disk": 25, "locked": False, "status": status, "kernel": None,
        "created_at": "2020-07-21T18:37:44Z", "features": ["backups", "private_networking"],
        "backup_ids": [], "next_backup_window": None, "snapshot_ids": [],
        "image": {"id": 63663980, "name": "20.04 (LTS) x64", "distribution": "Ubuntu",
                  "slug": "ubuntu-20-04-x64", "public": True},
        "volume_ids": ["506f78a4-e098-11e5-ad9f-000f53306ae1"] if i == 1 else [],
        "size": {"slug": "s-1vcpu-1gb", "memory": 1024, "vcpus": 1, "disk": 25,
                 "price_monthly": 5, "price_hourly": 0.00743999984115362},
        "size_slug": "s-1vcpu-1gb",
        "networks": {"v4": v4, "v6": []},
        "region": {"name": "New York 3", "slug": "nyc3", "available": True},
        "tags": ["web"], "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
    }


RESOURCES = {
    "droplets": [droplet(i) for i in range(1, 5)] + [droplet(5, status="off")],
    "volumes": [{"id": "506f78a4-e098-11e5-ad9f-000f53306ae1", "name": "example",
                 "region": {"name": "New York 1", "slug": "nyc1", "available": True},
                 "droplet_ids": [], "size_gigabytes": 10, "description": "Block store for examples",
                 "created_at": "2020-03-02T17:00:49Z", "filesystem_type": "ext4",
                 "filesystem_label": "example", "tags": []}],
    "images": [{"id": 7555620, "name": "Nifty New Snapshot", "distribution": "Ubuntu",
                "slug": None, "public": False, "regions": ["nyc2", "nyc3"],
                "created_at": "2014-11-04T22:23:02Z", "type": "snapshot", "min_disk_size": 20,
                "size_gigabytes": 2.34, "description": "", "tags": [], "status": "available"}],
    "load_balancers": [{"id": "4de7ac8b-495b-4884-9a69-1050c6793cd6", "name": "example-lb-01",
                        "ip": "104.131.186.241", "algorithm": "round_robin", "status": "new",
                        "created_at": "2017-02-01T22:22:58Z",
                        "forwarding_rules": [{"entry_protocol": "http", "entry_port": 80,
                                              "target_protocol": "http", "target_port": 80}],
                        "health_check": {"protocol": "http", "port": 80, "path": "/"},
                        "sticky_sessions": {"type": "none"},
                        "region": {"name": "New York 3", "slug": "nyc3", "available": True},
                        "droplet_ids": [3164444, 3164445], "redirect_http_to_https": False}],
    "snapshots": [{"id": "6372321", "name": "web-01-1595954862243", "created_at": "2020-07-28T16:47:44Z",
                   "regions": ["nyc3", "sfo3"], "resource_id": "200776916",
                   "resource_type": "droplet", "min_disk_size": 25, "size_gigabytes": 2.34,
                   "tags": ["web", "env:prod"]}],
    "endpoints": [{"id": "19f06b6a-3ace-4315-b086-499a0e521b76",
                   "origin": "static-images.nyc3.digitaloceanspaces.com",
                   "endpoint": "static-images.nyc3.cdn.digitaloceanspaces.com",
                   "created_at": "2018-07-19T15:04:16Z", "ttl": 3600}],
    "kubernetes_clusters": [{"id": "bd5f5959-5e1e-4205-a714-a914373942af", "name": "prod-cluster-01",
                             "region": "nyc1", "version": "1.18.6-do.0",
                             "cluster_subnet": "10.244.0.0/16", "service_subnet": "10.245.0.0/16",
                             "ipv4": "68.183.121.157",
                             "endpoint": "https://bd5f5959-5e1e-4205-a714-a914373942af.k8s.ondigitalocean.com",
                             "node_pools": [{"id": "cdda885e-7663-40c8-bc74-3a036c66545d",
                                             "name": "worker-pool", "size": "s-1vcpu-2gb", "count": 3}],
                             "status": {"state": "running", "message": "Cluster is running"},
                             "created_at": "2018-11-15T16:00:11Z"}],
    "firewalls": [{"id": "fb6045f1-cf1d-4ca3-bfac-18832663025b", "name": "firewall",
                   "status": "succeeded",
                   "inbound_rules": [{"protocol": "tcp", "ports": "80",
                                      "sources": {"load_balancer_uids": ["4de7ac8b-495b-4884-9a69-1050c6793cd6"]}}],
                   "outbound_rules": [{"protocol": "tcp", "ports": "80",
                                       "destinations": {"addresses": ["0.0.0.0/0", "::/0"]}}],
                   "created_at": "2017-05-23T21:24:00Z", "droplet_ids": [8043964],
                   "tags": [], "pending_changes": []}],
}
PATHS = {"droplets": "droplets", "volumes": "volumes", "images": "images",
         "load_balancers": "load_balancers", "snapshots": "snapshots",
         "cdn/endpoints": "endpoints", "kubernetes/clusters": "kubernetes_clusters",
         "firewalls": "firewalls"}


class StandIn:
    """DigitalOcean's API v2 as this test's local stand-in (see the module docs)."""

    def __init__(self):
        self.resources = json.loads(json.dumps(RESOURCES))
        self.requests = []
        # Answers of 429 (with Retry-After: 1) still to give, as DigitalOcean's rate limit does.
        self.throttle = 0
        stand_in = self

        class Handler(JsonHandler):

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                stand_in.requests.append((url.path, query, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"id": "unauthorized",
                                             "message": "Unable to authenticate you"})
                if stand_in.throttle > 0:
                    stand_in.throttle -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = url.path.removeprefix("/v2/")
                if path not in PATHS:
                    return self.answer(404, {"id": "not_found",
                                             "message": "The resource you were accessing could not be found."})
                try:
                    page, per_page = int(query.get("page", "1")), int(query.get("per_page", "20"))
                except ValueError:
                    return self.answer(400, {"id": "bad_request", "message": "page is not a number"})
                if page < 1 or not 1 <= per_page <= 200:
                    return self.answer(400, {"id": "bad_request", "message": "per_page must be 1..200"})
                if path == "images" and query.get("private") != "true":
                    return self.answer(400, {"id": "bad_request",
                                             "message": "the stand-in serves only private=true"})
                key = PATHS[path]
                items = stand_in.resources[key]
                chunk = items[(page - 1) * per_page: page * per_page]
                pages = {}
                base = f"https://api.digitalocean.com/v2/{path}?per_page={per_page}"
                if page * per_page < len(items):
                    pages["next"] = f"{base}&page={page + 1}"
                    pages["last"] = f"{base}&page={(len(items) + per_page - 1) // per_page}"
                if page > 1:
                    pages["prev"] = f"{base}&page={page - 1}"
                self.answer(200, {key: chunk, "links": {"pages": pages} if pages else {},
                                  "meta": {"total": len(items)}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def digitalocean():
    s = StandIn()
    yield s
    s.close()


def connection(mongo, token):
    """A DigitalOcean connection as server-app's `POST /connections` stores it: the UI sends
    `regions: ["all"]` for a provider without regions."""
    owner = ObjectId()
    doc = {"_id": ObjectId(), "name": "do-prod", "provider": "Digital Ocean",
           "service": "token_do", "dc": "do-dc", "dc_id": str(DC), "regions": ["all"],
           "conn": token, "status": "enabled", "active": True,
           "owner_user": {"_id": owner, "name": "Ana", "email": "ana@example.com"},
           "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(doc)
    return doc


def scan(app, q, conn, task, timeout=90):
    r = app.send_task("maestro.discovery.scan", queue=q,
                      kwargs={"provider": "Digital Ocean", "conn_id": str(conn["_id"]), "task": task})
    return r, r.get(timeout=timeout, propagate=False)


def test_every_digitalocean_task_scans_pages_and_retires(names, workers, mongo, mongo_app, digitalocean):
    q = names.queue("discovery")
    w = workers([q], args=[
        "--routes", f"maestro.notify={names.queue('notify')}",
        "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI,
        "--mongo-database", mongo.name, "--secretjwt", SECRETJWT,
        "--digitalocean-endpoint", digitalocean.url, "--scan-qtd", str(PAGE)])
    conn = connection(mongo, hs256({"token": TOKEN}, SECRETJWT))

    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert result["seen"] == 5 and result["written"] == 5, result
    droplet_pages = [qy for path, qy, _ in digitalocean.requests if path == "/v2/droplets"]
    assert droplet_pages == [{"page": str(p), "per_page": str(PAGE)} for p in (1, 2, 3)]
    assert {auth for *_, auth in digitalocean.requests} == {f"Bearer {TOKEN}"}
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {str(3164440 + i) for i in range(1, 6)}
    one = servers["3164441"]
    assert one["name"] == "web-1.example.com" and one["cpu"] == 1 and one["memory"] == 1.024
    assert one["ipv4_private"] == "10.128.0.1" and one["ipv4_public"] == "104.131.186.1"
    assert one["active"] is True and servers["3164445"]["active"] is False
    assert one["storage"][0]["unique_id"] == "506f78a4-e098-11e5-ad9f-000f53306ae1"
    assert one["storage"][-1] == {"size": 25, "name": "v-built", "status": "Active"}
    dc = one["datacenters"]
    assert dc["region"] == "nyc3" and dc["instance"] == "s-1vcpu-1gb" and dc["price_monthly"] == 5
    assert dc["provider"] == "Digital Ocean" and dc["_id"] == DC and dc["name"] == "do-dc"
    assert dc["backups"] is True and "monitoring" not in dc
    assert one["roles"] == conn["roles"] and one["accountant"] == [str(conn["_id"])]
    assert process(mongo, conn, "server-list")["state"] == "success"

    expected = {"volumes-list": ("volumes", {}), "images-list": ("images", {}),
                "snapshot-list": ("snapshots", {}),
                "loadbalance-list": ("applications", {"family": "Loadbalance"}),
                "cdns-list": ("applications", {"family": "CDN"}),
                "container-orchestration-list": ("applications", {"family": "ContainerOrchestration"}),
                "network-list": ("networks", {"family": "Firewall"})}
    for task, (coll, query) in expected.items():
        # The first call of the first of them is throttled once: the request is tried again
        # after Retry-After, within the scan.
        digitalocean.throttle = 1 if task == "volumes-list" else 0
        r, result = scan(mongo_app, q, conn, task)
        assert r.state == "SUCCESS", (task, r.traceback, w.log()[-2000:])
        assert result["seen"] == 1 and process(mongo, conn, task)["state"] == "success", task
        assert mongo[coll].count_documents({**query, "accountant": str(conn["_id"])}) == 1, task
    volume_calls = [qy for path, qy, _ in digitalocean.requests if path == "/v2/volumes"]
    assert len(volume_calls) == 2, "throttled once, then answered"
    images_query = [qy for path, qy, _ in digitalocean.requests if path == "/v2/images"]
    assert images_query[0]["private"] == "true"
    vol = mongo.volumes.find_one()
    assert (vol["name"], vol["size"], vol["fftype"], vol["status"]) == ("example", 10, "ext4", "Active")
    assert vol["datacenters"]["region"] == "nyc1"
    image = mongo.images.find_one()
    assert image["status"] == "Available" and image["regions"] == ["nyc2", "nyc3"]
    assert "public" not in image, "Maestro's rules dropped false values"
    lb = mongo.applications.find_one({"family": "Loadbalance"})
    assert lb["provider"] == "LB (DigitalOcean)" and lb["own"] == 1 and lb["status"] == "New"
    assert lb["role"]["algorithm"] == "round_robin" and lb["role"]["droplet_ids"] == [3164444, 3164445]
    cdn = mongo.applications.find_one({"family": "CDN"})
    assert cdn["name"] == "static-images.nyc3.cdn.digitaloceanspaces.com" and cdn["type"] == "Web"
    assert cdn["role"]["origins"] == "static-images.nyc3.digitaloceanspaces.com"
    k8s = mongo.applications.find_one({"family": "ContainerOrchestration"})
    assert k8s["status"] == "Running" and k8s["provider"] == "Kubernetes (DigitalOcean)"
    assert k8s["role"]["node_pools"][0]["count"] == 3
    fw = mongo.networks.find_one()
    assert fw["status"] == "Succeeded" and fw["inbound_rules"][0]["ports"] == "80"

    # Unchanged: nothing written. Then a droplet is destroyed and one renamed.
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS" and result["written"] == 0 and result["deactivated"] == 0, result
    digitalocean.resources["droplets"].pop(1)
    digitalocean.resources["droplets"][0]["name"] = "renamed.example.com"
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", r.traceback
    assert result["seen"] == 4 and result["written"] == 1 and result["deactivated"] == 1, result
    assert mongo.servers.find_one({"unique_id": "3164442"})["active"] is False
    assert mongo.servers.find_one({"unique_id": "3164441"})["name"] == "renamed.example.com"
    assert TOKEN not in w.log() and SECRETJWT not in w.log()


def test_a_refused_token_fails_the_scan_clearly(names, workers, mongo, mongo_app, digitalocean):
    q = names.queue("discovery")
    workers([q], args=[
        "--routes", f"maestro.notify={names.queue('notify')}",
        "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI,
        "--mongo-database", mongo.name, "--secretjwt", SECRETJWT,
        "--digitalocean-endpoint", digitalocean.url])
    revoked = connection(mongo, hs256({"token": "dop_v1_revoked"}, SECRETJWT))
    r, _ = scan(mongo_app, q, revoked, "volumes-list")
    assert r.state == "FAILURE" and "PermissionError" in r.traceback, r.traceback
    p = process(mongo, revoked, "volumes-list")
    assert p["state"] == "danger" and "Unable to authenticate you" in p["msg"], p
    # A task DigitalOcean does not have is refused before any request.
    before = len(digitalocean.requests)
    r, _ = scan(mongo_app, q, revoked, "dbs-list")
    assert r.state == "FAILURE" and "dbs-list" in str(r.result)
    assert len(digitalocean.requests) == before
    assert mongo.volumes.count_documents({}) == 0


def test_spaces_lists_each_regions_buckets(names, workers, mongo, mongo_app, moto):
    """DigitalOcean Spaces is S3-compatible: moto_server (an S3 emulator) stands in for one
    region's Spaces endpoint, and the worker signs ListBuckets with the connection's Spaces
    keys as it would for https://nyc3.digitaloceanspaces.com."""
    from test_discovery import AWS_ACCESS, AWS_SECRET, client
    s3 = client(moto, "s3", "us-east-1")
    for bucket in ("static-images", "backups-2026"):
        s3.create_bucket(Bucket=bucket)
    q = names.queue("discovery")
    w = workers([q], args=[
        "--routes", f"maestro.notify={names.queue('notify')}",
        "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI,
        "--mongo-database", mongo.name, "--secretjwt", SECRETJWT, "--spaces-endpoint", moto])
    owner = ObjectId()
    conn = {"_id": ObjectId(), "name": "spaces", "provider": "Spaces", "service": "spaces_do",
            "dc": "do-dc", "dc_id": str(DC), "regions": ["nyc3 (New York)"],
            "conn": hs256({"access": AWS_ACCESS, "secret": AWS_SECRET}, SECRETJWT),
            "status": "enabled", "active": True,
            "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(conn)

    def spaces_scan(c):
        r = mongo_app.send_task("maestro.discovery.scan", queue=q, kwargs={
            "provider": "Spaces", "conn_id": str(c["_id"]), "task": "storage-object-list"})
        return r, r.get(timeout=90, propagate=False)

    r, result = spaces_scan(conn)
    assert r.state == "SUCCESS", (r.traceback, w.log()[-2000:])
    assert result["seen"] == 2 and result["written"] == 2, result
    buckets = {d["unique_id"]: d for d in mongo.applications.find({"family": "ObjectStorage"})}
    assert set(buckets) == {"static-images", "backups-2026"}
    b = buckets["static-images"]
    assert b["provider"] == "Spaces (DigitalOcean)" and b["own"] == 1 and b["active"] is True
    assert b["datacenters"]["region"] == "nyc3 (New York)" and b["datacenters"]["_id"] == DC
    assert "status" not in b and b["created_at"]

    s3.delete_bucket(Bucket="backups-2026")
    r, result = spaces_scan(conn)
    assert r.state == "SUCCESS" and result["deactivated"] == 1, result
    assert mongo.applications.find_one({"unique_id": "backups-2026"})["active"] is False

    # A region label that is not a datacenter slug never becomes part of a host name.
    bad = {**conn, "_id": ObjectId(), "regions": ["nyc3.attacker.example (New York)"]}
    mongo.connections.insert_one(bad)
    r, _ = spaces_scan(bad)
    assert r.state == "FAILURE" and "not a DigitalOcean region" in str(r.result), r.result
    assert AWS_SECRET not in w.log()
