"""maestro.discovery.scan for Azure, end to end against a local stand-in for Microsoft Entra ID
and Azure Resource Manager (no emulator of either exists): a Celery client sends the scans, the
real maestro-worker logs in as the connection's service principal, reads every page and keeps
Maestro's inventory in step in MongoDB.

The stand-in is this test's own HTTP server, named for what it is. It follows Microsoft's docs:
the Microsoft identity platform's OAuth 2.0 client-credentials flow
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: a form
POST to `/<tenant>/oauth2/v2.0/token`, `invalid_client` / AADSTS7000215 for a wrong secret) and
the ARM REST references (https://learn.microsoft.com/rest/api/): Virtual Machines - List All,
Disks - List, Snapshots - List, Images - List, Network Interfaces - List All / Get, Public IP
Addresses - List All / Get, Route Tables - List All, Virtual Networks - List All, their example
bodies trimmed. It checks what ARM checks: a bearer token it issued (401
`InvalidAuthenticationToken` otherwise), the resource's `api-version` (400
`InvalidApiVersionParameter`), the subscription (404 `SubscriptionNotFound`), and it pages with an
absolute `nextLink` carrying a `$skiptoken`, two items a page."""
import hashlib
import json
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest
from bson import ObjectId

from conftest import MONGODB_URI, JsonHandler, backend_url
from test_discovery import SECRETJWT, hs256, process

TENANT = "3c5a1f0e-7d2b-4e8a-9b61-0f4d2c8e7a15"
SUB = "8f0c3a2e-5b7d-4c1e-9a6f-2d4b8e0c1a37"
CLIENT = "b2d6e4f8-1a3c-4e5f-8a7b-9c0d1e2f3a4b"
SECRET = "standin~client~secret~never~logged~Qx7"
SCOPE = "https://management.azure.com/.default"
RG = "maestro-rg"
PAGE = 2  # items per stand-in page: five machines take three pages
DC = ObjectId("5f00000000000000000000a2")
VMS, DISKS = "Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks"
NICS, PIPS = "Microsoft.Network/networkInterfaces", "Microsoft.Network/publicIPAddresses"
VNETS = "Microsoft.Network/virtualNetworks"
API = {VMS: "2019-12-01", DISKS: "2019-11-01", "Microsoft.Compute/snapshots": "2019-11-01",
       "Microsoft.Compute/images": "2019-12-01", NICS: "2019-12-01", PIPS: "2019-12-01",
       "Microsoft.Network/routeTables": "2019-12-01", VNETS: "2019-12-01"}


def rid(kind, name):
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{kind}/{name}"


def uid(name):
    """Maestro's unique_id of an Azure resource."""
    return hashlib.sha1(f"{SUB}_{RG}_{name}".encode()).hexdigest()


def res(kind, name, properties, location="eastus", **extra):
    """One ARM resource: the envelope every one of them has."""
    return {"id": rid(kind, name), "name": name, "type": kind, "location": location, **extra,
            "properties": {"provisioningState": "Succeeded", **properties}}


def managed(kind, path, **more):
    return {"id": rid(kind, path), **more}


def vm(i, size="Standard_B1s", location="eastus", state="Succeeded"):
    os_disk = {"osType": "Linux", "name": f"vm-{i}-os", "createOption": "FromImage", "diskSizeGB": 30,
               "managedDisk": managed(DISKS, f"vm-{i}-os", storageAccountType="Standard_LRS")}
    data = [{"lun": 0, "name": "data-1", "createOption": "Empty", "diskSizeGB": 32,
             "managedDisk": managed(DISKS, "data-1", storageAccountType="Premium_LRS")}]
    return res(VMS, f"vm-{i}", {
        "vmId": f"0f9c2a7e-0000-4000-8000-00000000000{i}", "provisioningState": state,
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": {"publisher": "Canonical", "sku": "20_04-lts",
                                              "offer": "0001-com-ubuntu-server-focal", "version": "latest"},
                           "osDisk": os_disk, "dataDisks": data if i == 1 else []},
        "osProfile": {"computerName": f"vm-{i}", "adminUsername": "azureuser"},
        "networkProfile": {"networkInterfaces": [managed(NICS, f"nic-{i}", properties={"primary": True})]},
    }, location, tags={"environment": "production", "role": "web"} if i == 1 else {},
        **({"zones": ["1"]} if location == "westeurope" else {}))


def nic(i, public=True):
    ip = {"privateIPAddress": f"10.0.0.{3 + i}", "privateIPAllocationMethod": "Dynamic",
          "privateIPAddressVersion": "IPv4", "primary": True,
          "subnet": managed(VNETS, "vnet-1/subnets/default")}
    if public:
        ip["publicIPAddress"] = managed(PIPS, f"pip-{i}")
    return res(NICS, f"nic-{i}", {
        "macAddress": f"00-0D-3A-1B-C7-2{i}", "primary": True, "enableIPForwarding": False,
        "resourceGuid": f"6f2e1c0d-0000-4000-8000-00000000000{i}", "dnsSettings": {"dnsServers": []},
        "virtualMachine": managed(VMS, f"vm-{i}"),
        "ipConfigurations": [managed(NICS, f"nic-{i}/ipConfigurations/ipconfig1", name="ipconfig1",
                                     properties=ip)]})


def pip(i):
    return res(PIPS, f"pip-{i}", {
        "ipAddress": f"20.0.0.{i}", "publicIPAddressVersion": "IPv4", "publicIPAllocationMethod": "Dynamic",
        "ipConfiguration": managed(NICS, f"nic-{i}/ipConfigurations/ipconfig1")}, sku={"name": "Basic"})


def disk(name, size):
    return res(DISKS, name, {
        "timeCreated": "2020-03-02T17:00:49.4736785+00:00", "diskSizeGB": size, "diskIOPSReadWrite": 120,
        "diskMBpsReadWrite": 25, "diskState": "Attached"}, managedBy=rid(VMS, "vm-1"))


RESOURCES = {
    VMS: [vm(1), vm(2, size="Standard_D2s_v3", location="westeurope"), vm(3, size="Standard_F72s_v2"),
          vm(4), vm(5, state="Updating")],
    DISKS: [disk("vm-1-os", 30), disk("data-1", 32)],
    "Microsoft.Compute/snapshots": [res("Microsoft.Compute/snapshots", "snap-1", {
        "timeCreated": "2020-07-28T16:47:44+00:00", "osType": "Linux", "diskSizeGB": 32, "incremental": False,
        "creationData": {"createOption": "Copy", "sourceResourceId": rid(DISKS, "data-1")}})],
    "Microsoft.Compute/images": [res("Microsoft.Compute/images", "img-golden", {
        "sourceVirtualMachine": managed(VMS, "vm-1"), "hyperVGeneration": "V1",
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "diskSizeGB": 30},
                           "dataDisks": []}}, tags={"environment": "staging"})],
    # nic-5, vm-5's interface, is gone; nic-4 has no public IP.
    NICS: [nic(1), nic(2), nic(3), nic(4, public=False)],
    PIPS: [pip(1), pip(2), pip(3)],
    "Microsoft.Network/routeTables": [res("Microsoft.Network/routeTables", "rt-1", {
        "routes": [managed("Microsoft.Network/routeTables", "rt-1/routes/r1", name="r1", properties={
            "addressPrefix": "10.1.0.0/16", "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": "10.0.0.100"})],
        "subnets": [], "disableBgpRoutePropagation": True})],
    VNETS: [res(VNETS, "vnet-1", {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "dhcpOptions": {"dnsServers": []},
        "subnets": [managed(VNETS, "vnet-1/subnets/default", name="default",
                            properties={"addressPrefix": "10.0.0.0/24"})],
        "virtualNetworkPeerings": [], "enableDdosProtection": False, "enableVmProtection": False})],
}


class StandIn:
    """Entra ID's token endpoint and ARM as this test's local stand-in (see the module docs)."""

    def __init__(self):
        self.resources = json.loads(json.dumps(RESOURCES))
        self.logins, self.requests = [], []
        self.tokens, self.issued = [], set()  # every token issued; those ARM still honours
        self.next_link = None  # when set, every list answer's nextLink (a redirect elsewhere)
        stand_in = self

        class Handler(JsonHandler):
            content_type = "application/json; charset=utf-8"

            def arm_error(self, status, code, message):
                self.answer(status, {"error": {"code": code, "message": message}})

            def do_POST(self):
                form = dict(urllib.parse.parse_qsl(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()))
                stand_in.logins.append((self.path, form))
                if self.path != f"/{TENANT}/oauth2/v2.0/token":
                    return self.answer(400, {"error": "invalid_request", "error_codes": [90002],
                                             "error_description": "AADSTS90002: Tenant not found."})
                if (not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
                        or form.get("grant_type") != "client_credentials" or form.get("scope") != SCOPE):
                    return self.answer(400, {"error": "invalid_request",
                                             "error_description": "AADSTS900144: bad grant request."})
                if form.get("client_id") != CLIENT:
                    return self.answer(400, {"error": "unauthorized_client", "error_description":
                                             "AADSTS700016: Application not found in the directory."})
                if form.get("client_secret") != SECRET:
                    return self.answer(401, {"error": "invalid_client", "error_codes": [7000215],
                                             "error_description": "AADSTS7000215: Invalid client secret "
                                             "provided. Ensure the secret being sent in the request is "
                                             "the client secret value, not the client secret ID."})
                token = f"eyJ0eXAiOiJKV1QifQ.standin-arm-{len(stand_in.logins)}"
                stand_in.tokens.append(token)
                stand_in.issued.add(token)
                self.answer(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": token})

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                auth = self.headers.get("Authorization", "")
                stand_in.requests.append((url.path, query, auth))
                if not auth.startswith("Bearer ") or auth[7:] not in stand_in.issued:
                    return self.arm_error(401, "InvalidAuthenticationToken",
                                          "The access token is invalid.")
                parts = url.path.split("/")
                if len(parts) < 3 or parts[1] != "subscriptions" or parts[2] != SUB:
                    return self.arm_error(404, "SubscriptionNotFound", "The subscription was not found.")
                if len(parts) == 6 and parts[3] == "providers":  # a list of the subscription
                    kind, name = f"{parts[4]}/{parts[5]}", None
                elif len(parts) == 9 and parts[3] == "resourceGroups" and parts[5] == "providers":
                    kind, name = f"{parts[6]}/{parts[7]}", url.path
                else:
                    return self.arm_error(400, "InvalidResourceType", "no such path")
                if kind not in API:
                    return self.arm_error(400, "InvalidResourceType", f"{kind} is not served")
                if query.get("api-version") != API[kind]:
                    return self.arm_error(400, "InvalidApiVersionParameter",
                                          f"The api-version '{query.get('api-version')}' is invalid.")
                items = stand_in.resources[kind]
                if name is not None:  # Network Interfaces - Get, Public IP Addresses - Get
                    found = [r for r in items if r["id"].lower() == name.lower()]
                    if not found:
                        return self.arm_error(404, "ResourceNotFound",
                                              f"The Resource '{kind}/{parts[8]}' was not found.")
                    return self.answer(200, found[0])
                start = int(query.get("$skiptoken", "0"))
                body = {"value": items[start:start + PAGE]}
                if start + PAGE < len(items):
                    body["nextLink"] = (f"{stand_in.url}/subscriptions/{SUB}/providers/{kind}"
                                        f"?api-version={API[kind]}&%24skiptoken={start + PAGE}")
                if stand_in.next_link:
                    body["nextLink"] = stand_in.next_link
                self.answer(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self, kind):
        return [(q, a) for p, q, a in self.requests if p == f"/subscriptions/{SUB}/providers/{kind}"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def azure():
    s = StandIn()
    yield s
    s.close()


def start_worker(workers, names, mongo, azure):
    q = names.queue("discovery")
    w = workers([q], args=[
        "--routes", f"maestro.notify={names.queue('notify')}",
        "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI,
        "--mongo-database", mongo.name, "--secretjwt", SECRETJWT,
        "--azure-endpoint", azure.url, "--azure-login-endpoint", azure.url])
    return q, w


def connection(mongo, secret=SECRET, sub=SUB):
    """An Azure connection as server-app's `POST /connections` stores it: no region picker, so
    `regions: ["all"]`."""
    owner = ObjectId()
    doc = {"_id": ObjectId(), "name": "azure-prod", "provider": "Azure", "service": "sub_azure",
           "dc": "azure-dc", "dc_id": str(DC), "regions": ["all"],
           "conn": hs256({"client": CLIENT, "secret": secret, "tenant": TENANT, "sub": sub}, SECRETJWT),
           "status": "enabled", "active": True,
           "owner_user": {"_id": owner, "name": "Ana", "email": "ana@example.com"},
           "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(doc)
    return doc


def scan(app, q, conn, task, timeout=90):
    r = app.send_task("maestro.discovery.scan", queue=q,
                      kwargs={"provider": "Azure", "conn_id": str(conn["_id"]), "task": task})
    return r, r.get(timeout=timeout, propagate=False)


def test_every_azure_task_scans_pages_and_retires(names, workers, mongo, mongo_app, azure):
    q, w = start_worker(workers, names, mongo, azure)
    conn = connection(mongo)
    # Maestro's Azure flavors ({size, vcpu, memory_gib}); Standard_F72s_v2 is not among them.
    mongo.flavors_public.insert_many([{"size": "Standard_B1s", "vcpu": 1, "memory_gib": 1},
                                      {"size": "Standard_D2s_v3", "vcpu": 2, "memory_gib": 8}])

    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert (result["seen"], result["written"], result["pages"]) == (5, 5, 3), result
    pages = azure.calls(VMS)
    assert [qy.get("$skiptoken") for qy, _ in pages] == [None, "2", "4"]
    assert all(qy["api-version"] == "2019-12-01" for qy, _ in pages)
    gets = sorted(p.rsplit("/", 1)[1] for p, qy, _ in azure.requests if "/resourceGroups/" in p)
    assert gets == ["nic-1", "nic-2", "nic-3", "nic-4", "nic-5", "pip-1", "pip-2", "pip-3"], gets
    assert len(azure.logins) == 1, "one login for every page and lookup"
    assert {a for *_, a in azure.requests} == {f"Bearer {t}" for t in azure.issued}

    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {uid(f"vm-{i}") for i in range(1, 6)}
    one = servers[uid("vm-1")]
    assert one["name"] == "vm-1" and one["status"] == "Active" and one["active"] is True
    assert one["ipv4_private"] == "10.0.0.4" and one["ipv4_public"] == "20.0.0.1"
    assert one["cpu"] == 1 and one["memory"] == 1.0
    assert one["os"] == {"base": "Linux", "dist": "0001-com-ubuntu-server-focal", "version": "20_04-lts"}
    assert [s["unique_id"] for s in one["storage"]] == [uid("data-1"), uid("vm-1-os")]
    assert one["storage"][0]["storage_account_type"] == "Premium_LRS" and one["storage"][0]["size"] == 32
    assert one["tags"] == [{"key": "environment", "value": "production"}, {"key": "role", "value": "web"}]
    assert one["environment"] == "production" and one["role"] == "web"
    assert one["network_interface"][0]["id"] == rid(NICS, "nic-1")
    dc = one["datacenters"]
    assert dc["region"] == "eastus" and dc["instance"] == "Standard_B1s" and dc["type"] == "Virtual"
    assert dc["provider"] == "Azure" and dc["_id"] == DC and dc["name"] == "azure-dc"
    assert dc["resource"] == VMS and dc["instance_id"].startswith("0f9c2a7e")
    assert one["roles"] == conn["roles"] and one["accountant"] == [str(conn["_id"])]
    two = servers[uid("vm-2")]
    assert two["datacenters"]["region"] == "westeurope" and two["datacenters"]["zones"] == ["1"]
    assert (two["cpu"], two["memory"], two["ipv4_public"]) == (2, 8.0, "20.0.0.2")
    assert "cpu" not in servers[uid("vm-3")], "no flavor for Standard_F72s_v2"
    four = servers[uid("vm-4")]
    assert four["ipv4_private"] == "10.0.0.7" and "ipv4_public" not in four
    # vm-5's interface is gone (404): no address, still stored, matched by its unique_id.
    five = servers[uid("vm-5")]
    assert "ipv4_private" not in five and "ipv4_public" not in five
    assert five["status"] == "Avaliable", "Maestro's spelling when not Succeeded"
    assert process(mongo, conn, "server-list")["state"] == "success"

    expected = {"volumes-list": ("volumes", {}, 2), "snapshot-list": ("snapshots", {}, 1),
                "images-list": ("images", {}, 1), "network-list": ("networks", {}, 9)}
    for task, (coll, query, count) in expected.items():
        r, result = scan(mongo_app, q, conn, task)
        assert r.state == "SUCCESS", (task, r.traceback, w.log()[-2000:])
        assert result["seen"] == count and result["written"] == count, (task, result)
        assert process(mongo, conn, task)["state"] == "success", task
        assert mongo[coll].count_documents({"accountant": str(conn["_id"])}) == count, task
    for kind, version in API.items():
        assert {qy["api-version"] for qy, _ in azure.calls(kind)} == {version}, kind
    assert len(azure.logins) == 1, "the token is kept between scans"

    vol = mongo.volumes.find_one({"unique_id": uid("data-1")})
    assert (vol["name"], vol["size"], vol["status"], vol["active"]) == ("data-1", 32, "Active", True)
    assert vol["disk_iops_read_write"] == 120 and vol["disk_mbps_read_write"] == 25
    assert vol["managed_by"] == rid(VMS, "vm-1")
    assert vol["type"] == DISKS and vol["datacenters"]["region"] == "eastus"
    assert vol["datacenters"]["_id"] == DC and vol["roles"] == conn["roles"]
    snap = mongo.snapshots.find_one()
    assert snap["unique_id"] == uid("snap-1") and snap["volume_id"] == uid("data-1")
    assert snap["os_type"] == "Linux" and snap["size"] == 32
    image = mongo.images.find_one()
    assert (image["unique_id"], image["status"], image["active"]) == (uid("img-golden"), "Active", True)
    assert image["environment"] == "staging" and image["type"] == "Microsoft.Compute/images"
    families = {f: mongo.networks.count_documents({"family": f}) for f in
                ("NetworkInterface", "PublicIpAddress", "RouteTables", "VirtualNetwork")}
    assert families == {"NetworkInterface": 4, "PublicIpAddress": 3, "RouteTables": 1, "VirtualNetwork": 1}
    n = mongo.networks.find_one({"unique_id": uid("nic-1")})
    assert n["family"] == "NetworkInterface" and n["mac_address"] == "00-0D-3A-1B-C7-21"
    assert n["ip_configurations"][0]["properties"]["privateIPAddress"] == "10.0.0.4"
    assert "enable_ip_forwarding" not in n, "Maestro's rules dropped false values"
    assert mongo.networks.find_one({"unique_id": uid("pip-2")})["ip_address"] == "20.0.0.2"
    rt = mongo.networks.find_one({"family": "RouteTables"})
    assert rt["routes"][0]["properties"]["nextHopIpAddress"] == "10.0.0.100"
    assert rt["disable_bgp_route_propagation"] is True
    vnet = mongo.networks.find_one({"family": "VirtualNetwork"})
    assert vnet["address_space"] == {"addressPrefixes": ["10.0.0.0/16"]}
    assert vnet["datacenters"]["region"] == "eastus" and vnet["active"] is True

    # ARM stops honouring the kept token: one new login, and the unchanged rescan writes nothing.
    azure.issued.clear()
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-2000:])
    assert result["written"] == 0 and result["deactivated"] == 0, result
    assert len(azure.logins) == 2
    # A disk is deleted: the next volumes scan retires it.
    azure.resources[DISKS].pop(1)
    r, result = scan(mongo_app, q, conn, "volumes-list")
    assert r.state == "SUCCESS", r.traceback
    assert (result["seen"], result["written"], result["deactivated"]) == (1, 0, 1), result
    assert mongo.volumes.find_one({"unique_id": uid("data-1")})["active"] is False
    assert mongo.volumes.find_one({"unique_id": uid("vm-1-os")})["active"] is True
    log = w.log()
    assert SECRET not in log and SECRETJWT not in log
    assert len(azure.tokens) == 2 and not any(t in log for t in azure.tokens)


def test_azure_refusals_fail_the_scan_clearly(names, workers, mongo, mongo_app, azure):
    q, w = start_worker(workers, names, mongo, azure)

    # A wrong client secret: Entra ID's AADSTS answer, and no ARM request.
    wrong = connection(mongo, secret="wrong~secret~Zz9")
    r, _ = scan(mongo_app, q, wrong, "volumes-list")
    assert r.state == "FAILURE" and "PermissionError" in r.traceback, r.traceback
    p = process(mongo, wrong, "volumes-list")
    assert p["state"] == "danger" and "AADSTS7000215" in p["msg"], p
    assert azure.requests == [] and len(azure.logins) == 1

    # A nextLink that leaves ARM or the subscription is not followed: the token never goes there.
    trap = StandIn()
    try:
        conn = connection(mongo)
        elsewhere = f"/subscriptions/{SUB}/providers/{DISKS}?api-version=2019-11-01"
        other_sub = f"{azure.url}{elsewhere}".replace(SUB, "00000000-0000-4000-8000-000000000000")
        for link in (f"http://169.254.169.254{elsewhere}&%24skiptoken=2", f"{trap.url}{elsewhere}",
                     other_sub):
            azure.next_link = link
            before = len(azure.requests)
            r, _ = scan(mongo_app, q, conn, "volumes-list")
            assert r.state == "FAILURE" and "nextLink" in str(r.result), (link, r.result)
            assert len(azure.requests) == before + 1, "the first page only"
            p = process(mongo, conn, "volumes-list")
            assert p["state"] == "danger" and "nextLink" in p["msg"], p
        assert trap.requests == [] and trap.logins == []
    finally:
        trap.close()
    azure.next_link = None

    # A subscription id that is not a GUID never becomes part of a URL.
    seen = (len(azure.requests), len(azure.logins))
    bad = connection(mongo, sub="../../x")
    r, _ = scan(mongo_app, q, bad, "server-list")
    assert r.state == "FAILURE" and "not a GUID" in str(r.result), r.result
    assert (len(azure.requests), len(azure.logins)) == seen
    assert process(mongo, bad, "server-list")["state"] == "danger"
    log = w.log()
    assert SECRET not in log and "wrong~secret~Zz9" not in log and SECRETJWT not in log
