"""maestro.discovery.scan for OpenStack, end to end against a local stand-in for an OpenStack
cloud (no emulator of OpenStack runs here): a Celery client sends the scans, the real
maestro-worker logs in to Keystone, reads every page of Nova, Cinder, Neutron and Octavia in
each region of the connection and keeps Maestro's inventory in step in MongoDB.

The stand-in is this test's own HTTP server (two listeners, one per region), named for what it
is: it answers in the shapes of the OpenStack API reference, trimmed
(https://docs.openstack.org/api-ref/identity/v3: Password authentication with scoped
authorization; /api-ref/compute: List Servers Detailed, Show Flavor Details, List Flavors With
Details, List Images With Details; /api-ref/block-storage/v3: List Accounts/Volumes/Snapshots
With Details; /api-ref/network/v2: networks, subnets, ports, routers, security groups;
/api-ref/load-balancer/v2: List Load Balancers) and checks what a real cloud checks: Keystone's
password-method body and project scope (401 `Unauthorized` otherwise), the issued token in
`X-Auth-Token` on every service call (401 otherwise), `limit` and a `marker` that names an item
(400 otherwise). It pages with `<list>_links` rel=next while more items remain. Its token's
catalogue has public and internal endpoints (only public ones may be used) for RegionOne (all
four services) and RegionTwo (no load balancing; block storage as `volumev3`)."""
import json
import re
import threading
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer

import pytest
from bson import ObjectId

from conftest import MONGODB_URI, JsonHandler, backend_url
from test_discovery import SECRETJWT, hs256, process

USER, PASSWORD = "maestro-scan", "os-pass-never-logged-7Qz"
PROJECT = "8e3b2c1d4f5a46b7a9c0d1e2f3a4b5c6"
DOMAIN = "b7f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
PAGE = 2  # --scan-qtd, sent as `limit`: RegionOne's five servers take three pages
DC = ObjectId("5f00000000000000000000d5")
LABELS = {"RegionOne": "RegionOne (main)", "RegionTwo": "RegionTwo (backup)"}
UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}
# Each region's endpoints, under that region's listener; RegionEvil's compute is at a private
# address (EVIL) the worker must refuse to reach.
SERVICES = {"RegionOne": {"compute": "/compute/v2.1", "network": "/network",
                          "load-balancer": "/load-balancer", "block-storage": f"/volume/v3/{PROJECT}"},
            "RegionTwo": {"compute": "/compute/v2.1", "network": "/network", "volumev3": f"/volume/v3/{PROJECT}"},
            "RegionEvil": {"compute": "/v2.1"}}
EVIL = "http://10.0.0.1:8774"
LISTS = {"/compute/v2.1/servers/detail": "servers", "/compute/v2.1/flavors/detail": "flavors",
         "/compute/v2.1/images/detail": "images", "/load-balancer/v2/lbaas/loadbalancers": "loadbalancers",
         f"/volume/v3/{PROJECT}/volumes/detail": "volumes", f"/volume/v3/{PROJECT}/snapshots/detail": "snapshots",
         "/network/v2.0/security-groups": "security_groups",
         **{f"/network/v2.0/{k}": k for k in ("networks", "subnets", "ports", "routers")}}


def fault(kind, code, message):
    """OpenStack's error body: Keystone's `error`, Nova's `itemNotFound` and `badRequest`."""
    return {kind: {"code": code, "message": message}}


def uid(kind, r, i):
    """An OpenStack UUID, readable: the kind (two hex digits), the region, the index."""
    return f"{kind}{r}{i:05d}-4d2b-4c3a-8f1e-5b7d8e9f0a1b"


def server(r, i, status="ACTIVE", flavor="1"):
    mac = f"fa:16:3e:00:0{r}:0{i}"
    return {
        "id": uid("5e", r, i), "name": f"web-{r}-{i}", "status": status, "tenant_id": PROJECT,
        "user_id": "9a4c1f0e", "hostId": f"c0ffee{r}", "created": "2024-03-01T10:00:00Z",
        "updated": "2024-03-02T10:00:00Z", "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-STS:vm_state": status.lower(), "OS-SRV-USG:terminated_at": None,
        "key_name": "deploy" if i == 1 else None, "metadata": {"environment": "prod", "role": "web"},
        "addresses": {"private": [
            {"version": 4, "addr": f"10.{r}.0.{i}", "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac},
            {"version": 4, "addr": f"172.24.{r}.{i}", "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac}]},
        "flavor": {"id": flavor, "links": [{"rel": "bookmark", "href": f"http://cloud/flavors/{flavor}"}]},
        "image": {"id": uid("1a", r, 1), "links": [{"rel": "bookmark", "href": "http://cloud/images"}]},
        "os-extended-volumes:volumes_attached": [{"id": uid("0a", r, 1)}] if (r, i) == (1, 1) else [],
        "security_groups": [{"name": "default"}], "config_drive": ""}


def flavor(fid, name, vcpus, ram, disk):
    return {"id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "swap": "", "rxtx_factor": 1.0,
            "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True, "links": []}


def region(r, servers, flavors, volume_status, lb):
    """One region's resources (RegionOne: r=1, with more of everything)."""
    own = {"tenant_id": PROJECT, "project_id": PROJECT, "description": ""}
    net = {"id": uid("7a", r, 1), "name": f"private-{r}", "status": "ACTIVE", "subnets": [uid("7b", r, 1)],
           "mtu": 1450, "admin_state_up": True, "shared": False, "port_security_enabled": True,
           "ipv4_address_scope": None, "availability_zones": ["nova"], **own}
    subnet = {"id": uid("7b", r, 1), "name": f"private-subnet-{r}", "network_id": net["id"],
              "cidr": f"10.{r}.0.0/24", "ip_version": 4, "gateway_ip": f"10.{r}.0.254", "enable_dhcp": True,
              "allocation_pools": [{"start": f"10.{r}.0.2", "end": f"10.{r}.0.200"}], **own}
    group = uid("6a", r, 1)
    data = {
        "servers": servers, "flavors": flavors,
        "images": [{"id": uid("1a", r, 1), "name": f"cirros-{r}", "status": "ACTIVE", "progress": 100,
                    "minDisk": 1, "minRam": 0, "metadata": {}, "created": "2024-01-01T00:00:00Z",
                    "OS-EXT-IMG-SIZE:size": 21430272, "links": []}],
        "volumes": [{"id": uid("0a", r, 1), "name": "data-1" if r == 1 else "", "status": volume_status,
                     "size": 10 * r, "availability_zone": "nova", "volume_type": "lvmdriver-1",
                     "snapshot_id": None, "source_volid": None, "encrypted": False, "attachments": [],
                     "created_at": "2024-02-01T00:00:00.000000", "os-vol-tenant-attr:tenant_id": PROJECT}],
        "snapshots": [{"id": uid("5a", 1, 1), "name": "data-1-snap", "status": "available", "size": 10,
                       "volume_id": uid("0a", 1, 1), "created_at": "2024-02-02T00:00:00.000000",
                       "os-extended-snapshot-attributes:progress": "100%",
                       "os-extended-snapshot-attributes:project_id": PROJECT}] if r == 1 else [],
        "security_groups": [{"id": group, "name": "default" if r == 1 else "web", **own, "security_group_rules": [
            {"id": uid("6b", r, 1), "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
             "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0",
             "remote_group_id": None, "security_group_id": group}]}],
        "networks": [net], "subnets": [subnet],
        "ports": [{"id": uid("7c", 1, i), "name": "", "network_id": net["id"], "mac_address": f"fa:16:3e:00:01:0{i}",
                   "status": "ACTIVE" if i < 3 else "DOWN", "device_id": uid("5e", 1, i),
                   "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": f"10.1.0.{i}"}],
                   "device_owner": "compute:nova", "security_groups": [group], **own}
                  for i in (1, 2, 3)] if r == 1 else [],
        "routers": [{"id": uid("7d", 1, 1), "name": "router1", "status": "ACTIVE", "routes": [],
                     "external_gateway_info": {"network_id": uid("7e", 1, 1), "enable_snat": True,
                                               "external_fixed_ips": [{"ip_address": "172.24.4.2"}]},
                     "availability_zones": ["nova"], "availability_zone_hints": [], "flavor_id": None,
                     **own}] if r == 1 else [],
    }
    if lb:
        data["loadbalancers"] = [{"id": uid("1b", r, 1), "name": "lb-web", "provisioning_status": "ACTIVE",
                                  "operating_status": "ONLINE", "admin_state_up": True, "project_id": PROJECT,
                                  "created_at": "2024-02-03T00:00:00", "updated_at": "2024-02-04T00:00:00",
                                  "vip_address": "10.1.0.100", "listeners": [], "pools": [], "provider": "amphora"}]
    return data


def cloud():
    return {"RegionOne": region(1, [server(1, i) for i in (1, 2, 3)]
                                + [server(1, 4, "SHUTOFF", "2"), server(1, 5, "ERROR", "2")],
                                [flavor("1", "m1.small", 1, 2048, 20), flavor("2", "m1.medium", 2, 4096, 40)],
                                "in-use", lb=True),
            "RegionTwo": region(2, [server(2, 1, flavor="3")], [flavor("3", "m1.large", 4, 8192, 80)],
                                "available", lb=False)}


class StandIn:
    """An OpenStack cloud as this test's local stand-in (see the module docs)."""

    def __init__(self):
        self.data = cloud()
        self.requests, self.logins, self.tokens = [], [], set()  # logins: whether each was accepted
        stand_in = self

        class Handler(JsonHandler):
            region = None

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append((self.region, "POST", self.path, {}, None))
                if self.path != "/identity/v3/auth/tokens" or self.region != "RegionOne":
                    return self.answer(404, fault("error", 404, "The resource could not be found."))
                try:
                    auth = json.loads(raw)["auth"]
                    identity, scope = auth["identity"], auth["scope"]["project"]
                    user = identity["password"]["user"]
                except (ValueError, KeyError, TypeError):
                    return self.answer(400, fault("error", 400, "Expecting to find auth in request body."))
                ok = (identity.get("methods") == ["password"] and user.get("name") == USER
                      and user.get("domain") == {"id": DOMAIN} and user.get("password") == PASSWORD
                      and scope == {"id": PROJECT})
                stand_in.logins.append(ok)
                if not ok:
                    return self.answer(401, UNAUTHORIZED)
                token, now, stamp = f"gAAAAAB-standin-{uuid.uuid4().hex}", datetime.now(timezone.utc), "%Y-%m-%dT%H:%M:%S.%fZ"
                stand_in.tokens.add(token)
                self.answer(201, {"token": {
                    "methods": ["password"], "expires_at": (now + timedelta(hours=1)).strftime(stamp),
                    "issued_at": now.strftime(stamp),
                    "user": {"id": "9a4c1f0e", "name": USER, "domain": {"id": DOMAIN, "name": "maestro"}},
                    "project": {"id": PROJECT, "name": "maestro", "domain": {"id": DOMAIN, "name": "maestro"}},
                    "roles": [{"id": "51cc68287d524c759f47c811e6463340", "name": "reader"}],
                    "catalog": stand_in.catalog()}}, [("X-Subject-Token", token)])

            def do_GET(self):
                url, token = urllib.parse.urlsplit(self.path), self.headers.get("X-Auth-Token")
                query = dict(urllib.parse.parse_qsl(url.query))
                stand_in.requests.append((self.region, "GET", url.path, query, token))
                if token not in stand_in.tokens:
                    return self.answer(401, UNAUTHORIZED)
                data = stand_in.data[self.region]
                one = re.fullmatch(r"/compute/v2\.1/flavors/([^/]+)", url.path)
                if one and one[1] != "detail":
                    found = [f for f in data["flavors"] if f["id"] == one[1]]
                    if not found:
                        return self.answer(404, fault("itemNotFound", 404, f"Flavor {one[1]} could not be found."))
                    return self.answer(200, {"flavor": found[0]})
                key = LISTS.get(url.path)
                if key not in data:
                    return self.answer(404, fault("itemNotFound", 404, "The resource could not be found."))
                items, ids = data[key], [i["id"] for i in data[key]]
                limit, marker = query.get("limit", "1000"), query.get("marker")
                if not limit.isdigit() or not 0 < int(limit) <= 1000:
                    return self.answer(400, fault("badRequest", 400, "Invalid limit"))
                if marker is not None and marker not in ids:
                    return self.answer(400, fault("badRequest", 400, f"marker [{marker}] not found"))
                start = ids.index(marker) + 1 if marker else 0
                chunk = items[start:start + int(limit)]
                body = {key: chunk}  # the next page is linked while more items remain
                if start + int(limit) < len(items):
                    href = f"{stand_in.bases[self.region]}{url.path}?limit={limit}&marker={chunk[-1]['id']}"
                    body[f"{key}_links"] = [{"rel": "next", "href": href}]
                self.answer(200, body)

        self.servers, self.bases = [], {}
        for name in ("RegionOne", "RegionTwo"):
            srv = ThreadingHTTPServer(("127.0.0.1", 0), type(name, (Handler,), {"region": name}))
            self.servers.append(srv)
            self.bases[name] = f"http://127.0.0.1:{srv.server_address[1]}"
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.url = self.bases["RegionOne"]

    def catalog(self):
        """Keystone's catalogue: per service type, each region's internal endpoint (listed
        first, never to be used) and public one; identity in RegionOne."""
        bases = {**self.bases, "RegionEvil": EVIL}
        by_type = {"identity": [("RegionOne", "/identity")]}
        for name, services in SERVICES.items():
            for stype, path in services.items():
                by_type.setdefault(stype, []).append((name, path))
        return [{"type": stype, "name": stype, "id": uuid.uuid4().hex, "endpoints": [
            {"id": uuid.uuid4().hex, "interface": interface, "region": name, "region_id": name,
             "url": bases[name] + ("/internal" if interface == "internal" else "") + path}
            for name, path in endpoints for interface in ("internal", "public")]}
            for stype, endpoints in by_type.items()]

    def calls(self, path=None):
        return [(r, q.get("limit"), q.get("marker")) for r, m, p, q, _ in self.requests
                if m == "GET" and (path is None or p == path)]

    def close(self):
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def openstack():
    s = StandIn()
    yield s
    s.close()  # stops both listeners


def start_worker(workers, names, mongo):
    q = names.queue("discovery")
    w = workers([q], args=[
        "--routes", f"maestro.notify={names.queue('notify')}",
        "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
        "--secretjwt", SECRETJWT, "--scan-qtd", str(PAGE), "--egress-allow", "127.0.0.1"])
    return q, w


def connection(mongo, url, password=PASSWORD, regions=tuple(LABELS.values())):
    """An OpenStack connection as server-app's `POST /connections` stores it: the Keystone URL,
    project and user domain at the top level, the user and password in the credential JWT."""
    owner = ObjectId()
    doc = {"_id": ObjectId(), "name": "os-prod", "provider": "OpenStack", "service": "OpenStack",
           "dc": "os-dc", "dc_id": str(DC), "regions": list(regions), "url": url, "project": PROJECT,
           "user_domain_id": DOMAIN, "api_version": "3", "status": "enabled", "active": True,
           "conn": hs256({"username": USER, "password": password}, SECRETJWT),
           "owner_user": {"_id": owner, "name": "Ana", "email": "ana@example.com"},
           "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(doc)
    return doc


def scan(app, q, conn, task, timeout=90):
    r = app.send_task("maestro.discovery.scan", queue=q,
                      kwargs={"provider": "OpenStack", "conn_id": str(conn["_id"]), "task": task})
    return r, r.get(timeout=timeout, propagate=False)


def test_every_openstack_task_scans_each_region_pages_and_retires(names, workers, mongo, mongo_app, openstack):
    q, w = start_worker(workers, names, mongo)
    conn = connection(mongo, f"{openstack.url}/identity/v3")
    one_ids = [s["id"] for s in openstack.data["RegionOne"]["servers"]]
    two_id = openstack.data["RegionTwo"]["servers"][0]["id"]

    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert (result["seen"], result["written"], result["pages"]) == (6, 6, 4), result
    assert result["regions"] == list(LABELS.values()) and result["unsupported"] == [], result
    assert process(mongo, conn, "server-list")["state"] == "success"
    assert openstack.calls("/compute/v2.1/servers/detail") == [
        ("RegionOne", "2", None), ("RegionOne", "2", one_ids[1]), ("RegionOne", "2", one_ids[3]),
        ("RegionTwo", "2", None)]
    # Each server's flavor is read from Nova (once per page) for its cpu and memory.
    lookups = {(reg, p.rsplit("/", 1)[1], tuple(qy)) for reg, m, p, qy, _ in openstack.requests
               if p.startswith("/compute/v2.1/flavors/")}
    assert lookups == {("RegionOne", "1", ()), ("RegionOne", "2", ()), ("RegionTwo", "3", ())}
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {*one_ids, two_id}
    first = servers[one_ids[0]]
    assert (first["name"], first["cpu"], first["memory"]) == ("web-1-1", 1, 2.048)
    assert (first["ipv4_private"], first["ipv4_public"]) == ("10.1.0.1", "172.24.1.1")
    assert (first["environment"], first["role"], first["status"]) == ("prod", "web", "Active")
    assert first["tags"] == [{"key": "environment", "value": "prod"}, {"key": "role", "value": "web"}]
    assert first["auth"] == [{"name": "deploy", "type": "PKI"}] and "auth" not in servers[one_ids[1]]
    assert first["storage"] == [{"name": "vol-0a1", "unique_id": uid("0a", 1, 1)}]
    assert first["metas"] == {"addresses": openstack.data["RegionOne"]["servers"][0]["addresses"]}
    dc = first["datacenters"]
    assert (dc["region"], dc["_id"], dc["provider"], dc["name"]) == (LABELS["RegionOne"], DC, "OpenStack", "os-dc")
    assert (dc["instance"], dc["instance_id"], dc["zone"], dc["type"]) == ("1", one_ids[0], "nova", "Virtual")
    assert (dc["project_id"], dc["image_id"], dc["host_id"]) == (PROJECT, uid("1a", 1, 1), "c0ffee1")
    assert dc["security_groups"] == [{"name": "default"}] and "terminated_at" not in dc
    stopped, failed = servers[one_ids[3]], servers[one_ids[4]]
    assert (stopped["status"], stopped["active"], stopped["cpu"], stopped["memory"]) == ("Stopped", True, 2, 4.096)
    assert (failed["status"], failed["active"], first["active"]) == ("Active", False, True)
    other = servers[two_id]
    assert other["datacenters"]["region"] == LABELS["RegionTwo"] and other["ipv4_private"] == "10.2.0.1"
    assert (other["cpu"], other["memory"]) == (4, 8.192) and "storage" not in other
    assert first["roles"] == conn["roles"] and first["accountant"] == [str(conn["_id"])]
    assert first["owner"] == {"refs": "connections", "name": "os-dc", "_id": conn["_id"]}

    expected = {"flavor-list": ("flavors", {}, 3), "images-list": ("images", {}, 2), "volumes-list": ("volumes", {}, 2),
                "snapshot-list": ("snapshots", {}, 1),
                "loadbalance-list": ("applications", {"family": "Loadbalance"}, 1),
                "security-list": ("networks", {"family": "SecurityGroup"}, 2),
                "network-list": ("networks", {"family": {"$ne": "SecurityGroup"}}, 8)}
    for task, (coll, query, count) in expected.items():
        r, result = scan(mongo_app, q, conn, task)
        assert r.state == "SUCCESS", (task, r.traceback, w.log()[-2000:])
        assert result["seen"] == count and process(mongo, conn, task)["state"] == "success", (task, result)
        assert mongo[coll].count_documents({**query, "accountant": str(conn["_id"])}) == count, task
        # RegionTwo's catalogue has no load balancing: that region is skipped, and said so.
        unsupported = ["GET lbaas/loadbalancers"] if task == "loadbalance-list" else []
        assert result["unsupported"] == unsupported, (task, result)
    assert "Not answered by the endpoint" in process(mongo, conn, "loadbalance-list")["msg"]
    # Full pages without a next link are followed until a short one.
    assert openstack.calls("/compute/v2.1/flavors/detail") == [
        ("RegionOne", "2", None), ("RegionOne", "2", "2"), ("RegionTwo", "2", None)]
    assert openstack.calls("/network/v2.0/ports") == [
        ("RegionOne", "2", None), ("RegionOne", "2", uid("7c", 1, 2)), ("RegionTwo", "2", None)]
    assert [c[0] for c in openstack.calls("/load-balancer/v2/lbaas/loadbalancers")] == ["RegionOne"]
    assert [c[0] for c in openstack.calls(f"/volume/v3/{PROJECT}/volumes/detail")] == ["RegionOne", "RegionTwo"]

    small = mongo.flavors.find_one({"unique_id": "1"})
    assert (small["name"], small["api_name"], small["vcpus"], small["memory"], small["disk"], small["is_public"],
            small["provider"]) == ("m1.small", "m1.small", 1, 2.048, 20, True, "OpenStack")
    assert "ephemeral" not in small and "own" not in small
    assert small["datacenters"]["region"] == LABELS["RegionOne"] and small["datacenters"]["_id"] == DC
    image = mongo.images.find_one({"unique_id": uid("1a", 1, 1)})
    assert (image["name"], image["status"], image["size"], image["progress"], image["min_disk"], image["own"]) == (
        "cirros-1", "Active", 21430272, 100, 1, 1)
    vol = mongo.volumes.find_one({"unique_id": uid("0a", 1, 1)})
    assert (vol["name"], vol["status"], vol["size"], vol["volume_type"], vol["project_id"]) == (
        "data-1", "Active", 10, "lvmdriver-1", PROJECT)
    assert "encrypted" not in vol and vol["own"] == 1 and vol["active"] is True
    unnamed = mongo.volumes.find_one({"unique_id": uid("0a", 2, 1)})
    assert (unnamed["name"], unnamed["status"], unnamed["datacenters"]["region"]) == (
        uid("0a", 2, 1), "Available", LABELS["RegionTwo"])
    snap = mongo.snapshots.find_one()
    assert (snap["volume_size"], snap["status"], snap["progress"], snap["volume_id"], snap["project_id"]) == (
        10, "Available", "100%", uid("0a", 1, 1), PROJECT)
    lb = mongo.applications.find_one({"family": "Loadbalance"})
    assert (lb["name"], lb["provider"], lb["own"], lb["unique_id"]) == ("lb-web", "OpenStack (HaProxy)", 1, uid("1b", 1, 1))
    assert lb["datacenters"]["region"] == LABELS["RegionOne"] and lb["active"] is True
    group = mongo.networks.find_one({"family": "SecurityGroup", "unique_id": uid("6a", 1, 1)})
    assert group["ip_permissions"] == openstack.data["RegionOne"]["security_groups"][0]["security_group_rules"]
    assert (group["name"], group["project_id"], group["own"]) == ("default", PROJECT, 1)
    assert (group["datacenters"]["type"], group["datacenters"]["instance_id"]) == ("Virtual", uid("6a", 1, 1))
    net = mongo.networks.find_one({"family": "Network", "unique_id": uid("7a", 1, 1)})
    assert (net["status"], net["subnet_ids"], net["mtu"], net["is_port_security_enabled"]) == (
        "Active", [uid("7b", 1, 1)], 1450, True)
    assert net["datacenters"]["zone"] == ["nova"] and "ipv4_address_scope_id" not in net
    subnet = mongo.networks.find_one({"family": "Subnet", "unique_id": uid("7b", 2, 1)})
    assert (subnet["cidr_block"], subnet["is_dhcp_enabled"], subnet["gateway_ip"]) == ("10.2.0.0/24", True, "10.2.0.254")
    port = mongo.networks.find_one({"family": "Ports", "unique_id": uid("7c", 1, 3)})
    assert (port["status"], port["mac_address"], port["security_group_ids"]) == ("Down", "fa:16:3e:00:01:03", [uid("6a", 1, 1)])
    assert port["fixed_ips"] == [{"subnet_id": uid("7b", 1, 1), "ip_address": "10.1.0.3"}] and "name" not in port
    router = mongo.networks.find_one({"family": "RouteTable"})
    assert router["status"] == "Active" and router["external_gateway_info"]["enable_snat"] is True

    # Unchanged: nothing written (Keystone revoked the token meanwhile: the worker logs in again
    # once). Then a server is deleted and one renamed.
    revoked, before = set(openstack.tokens), len(openstack.requests)
    openstack.tokens.clear()
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS" and (result["written"], result["deactivated"]) == (0, 0), result
    openstack.data["RegionOne"]["servers"].pop(1)
    openstack.data["RegionOne"]["servers"][0]["name"] = "renamed"
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", r.traceback
    assert (result["seen"], result["written"], result["deactivated"]) == (5, 1, 1), result
    assert mongo.servers.find_one({"unique_id": one_ids[1]})["active"] is False
    assert mongo.servers.find_one({"unique_id": one_ids[0]})["name"] == "renamed"
    assert mongo.servers.find_one({"unique_id": two_id})["active"] is True

    # One login served every page of the eight first scans, one more after the revocation; only
    # public endpoints were used.
    assert openstack.logins == [True, True] and len(openstack.tokens) == 1
    assert {tok for _, m, *_, tok in openstack.requests if m == "GET"} == openstack.tokens | revoked
    assert [(m, p) for _, m, p, _, tok in openstack.requests[before:] if tok in revoked] == [
        ("GET", "/compute/v2.1/servers/detail")], "refused once, then the new token"
    assert not [p for _, _, p, _, _ in openstack.requests if p.startswith("/internal")]
    log = w.log()
    assert PASSWORD not in log and SECRETJWT not in log and not [t for t in openstack.tokens | revoked if t in log]


def test_refusals_are_clear_and_reach_nothing(names, workers, mongo, mongo_app, openstack):
    q, w = start_worker(workers, names, mongo)
    wrong_password = "wrong-pass-never-logged-3Xv"

    def refused(conn, task, *texts):
        r, _ = scan(mongo_app, q, conn, task)
        assert r.state == "FAILURE" and "PermissionError" in r.traceback, r.traceback
        p = process(mongo, conn, task)
        assert p["state"] == "danger" and all(t in p["msg"] for t in texts), p

    # Keystone refuses the password: its message is the reason, and no service is asked.
    refused(connection(mongo, f"{openstack.url}/identity/v3", password=wrong_password), "server-list",
            "Keystone refused", UNAUTHORIZED["error"]["message"])
    assert openstack.logins == [False] and openstack.calls() == []
    # A Keystone URL at the cloud's metadata address is refused before any request.
    refused(connection(mongo, "http://169.254.169.254/v3"), "volumes-list", "destination refused")
    assert len(openstack.requests) == 1
    # A catalogue endpoint at a private address: the login is made, the endpoint never asked.
    evil = connection(mongo, f"{openstack.url}/identity/v3", regions=["RegionEvil (lab)"])
    refused(evil, "server-list", "destination refused", "10.0.0.1")
    assert openstack.logins == [False, True] and openstack.calls() == []
    assert mongo.servers.count_documents({}) == 0 and mongo.volumes.count_documents({}) == 0
    log = w.log()
    assert PASSWORD not in log and wrong_password not in log and not [t for t in openstack.tokens if t in log]
