"""Discovery's imports (Maestro's File, Ansible and Terraform providers), end to end: a Celery
client sends maestro.discovery.scan, the real maestro-worker reads the connection's files (from a
directory served by this test's own OpenSSH sshd on loopback, over SFTP, or under a prefix of a
bucket in moto's S3) and keeps Maestro's inventory in step in MongoDB. The third method, files
uploaded to Maestro's server-app, reads them from server-app (`GET /users/upload/file`), a real
peer this suite does not run: only its refusals, made before any request, are tested here."""
import base64
import getpass
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
from types import SimpleNamespace

import pytest
from bson import ObjectId

from conftest import MONGODB_URI, backend_url, wait_for
from test_discovery import (AWS_ACCESS, AWS_SECRET, SECRETJWT, client, free_port, hs256,
                            moto, process)  # noqa: F401 (moto: a fixture)

SSHD = "/usr/sbin/sshd"
USER = getpass.getuser()
DC = ObjectId("5f00000000000000000000f1")


@pytest.fixture
def sshd():
    """OpenSSH's sshd on 127.0.0.1, with a fresh host key, an ed25519 and an RSA (PEM) client key
    authorized for the current user, and SFTP; stopped and removed afterwards."""
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} (Debian's openssh-server) is absent: the SSH imports need a real sshd")
    root, proc = pathlib.Path(tempfile.mkdtemp(prefix="maestro-sshd-")), None
    try:
        for name, kind in (("host_key", ["ed25519"]), ("client_ed25519", ["ed25519"]),
                           ("client_rsa", ["rsa", "-b", "2048", "-m", "PEM"])):
            subprocess.run(["ssh-keygen", "-q", "-N", "", "-f", str(root / name), "-t", *kind], check=True)
        (root / "authorized_keys").write_text(
            (root / "client_ed25519.pub").read_text() + (root / "client_rsa.pub").read_text())
        listing = subprocess.run(["ssh-keygen", "-lf", str(root / "host_key.pub")], check=True,
                                 capture_output=True, text=True).stdout  # "256 SHA256:... (ED25519)"
        port = free_port()
        (root / "sshd_config").write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            f"PidFile {root / 'sshd.pid'}", "Subsystem sftp internal-sftp", f"AllowUsers {USER}", ""]))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
        with open(root / "sshd.log", "w") as log:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                    stdout=log, stderr=subprocess.STDOUT)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return proc.poll() is not None

        wait_for(up, 20, 0.1, "sshd")
        assert proc.poll() is None, (root / "sshd.log").read_text()
        keys = {kind: (root / f"client_{kind}").read_text() for kind in ("ed25519", "rsa")}
        yield SimpleNamespace(root=root, port=port, fingerprint=listing.split()[1], keys=keys)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def ssh_claims(sshd, path, kind, pin=True):
    """The SSH method's credential claims as the UI sends them (the port as text)."""
    claims = {"host": "127.0.0.1", "port": str(sshd.port), "user": USER, "path": str(path),
              "key": sshd.keys[kind]}
    return {**claims, "host_key": sshd.fingerprint} if pin else claims


def connection(mongo, provider, service, claims, owner=None):
    """An import connection as server-app stores it: every method field inside the `conn` JWT,
    `regions: ["all"]` (the UI's for a provider without regions)."""
    owner = owner or ObjectId()
    doc = {"_id": ObjectId(), "name": f"imports-dc - {provider}[{service}]", "provider": provider,
           "service": service, "dc": "imports-dc", "dc_id": str(DC), "regions": ["all"],
           "conn": hs256(claims, SECRETJWT), "status": "enabled", "active": True,
           "owner_user": {"_id": owner, "name": "Ana", "email": "ana@example.com"},
           "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(doc)
    return doc


def start(workers, names, mongo, aws=None):
    # SSH hosts are egress-checked: the test's sshd is on loopback.
    args = ["--routes", f"maestro.notify={names.queue('notify')}", "--result-backend",
            backend_url(mongo), "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
            "--secretjwt", SECRETJWT, "--egress-allow", "127.0.0.1"]
    return workers([names.queue("discovery")], args=args + (["--aws-endpoint", aws] if aws else []))


def scan(app, names, conn, task, timeout=90):
    r = app.send_task("maestro.discovery.scan", queue=names.queue("discovery"), kwargs={
        "provider": conn["provider"], "conn_id": str(conn["_id"]), "task": task})
    return r, r.get(timeout=timeout, propagate=False)


def failed(r, mongo, conn, task, exc, text):
    assert r.state == "FAILURE", (task, r.state, r.result)
    assert exc in r.traceback and text in str(r.result), (r.traceback, r.result)
    p = process(mongo, conn, task)
    assert p["state"] == "danger" and text in p["msg"], p


def secrets_not_logged(log, *secrets):
    for s in secrets:  # nor any line of a private key
        assert not [line for line in [s, *s.splitlines()] if (line == s or len(line) > 40) and line in log]


def write(path, doc):
    path.write_text(json.dumps(doc, indent=2))


# --- File: Maestro's JSON inventory --------------------------------------------------------------

FORGED = ObjectId()
INVENTORY = {
    "servers": [
        {"name": "web-1", "hostname": "web-1.corp.example", "ipv4_private": "10.0.0.11",
         "ipv4_public": "203.0.113.11", "role": "Application", "environment": "Production",
         "cpu": 4, "memory": 8, "os": {"base": "Linux", "dist": "Debian", "version": "12"},
         "tags": [{"key": "team", "value": "shop"}], "services": [{"name": "nginx"}],
         "datacenters": {"zone": "rack-a", "region": "sp-1", "_id": "forged", "name": "forged"},
         # Never taken from a file: ids, ownership, ACL, state.
         "_id": str(FORGED), "roles": [{"_id": str(FORGED), "refs": "users", "role": 7}],
         "owner": {"_id": str(FORGED), "refs": "users"}, "accountant": ["x"], "active": False,
         "checksum": "0"},
        {"unique_id": "asset-0042", "name": "db-1", "ipv4_private": "10.0.0.12", "cpu": 8},
        {"name": "no address and no id"},
    ],
    "applications": [{"name": "shop", "family": "Application", "language": "Python",
                      "roles": [{"_id": str(FORGED), "refs": "users", "role": 7}]},
                     {"name": "billing", "unique_id": "app-billing-7", "environment": "Production"}],
    "volumes": [{"name": "data-web-1", "unique_id": "vol-file-01", "size": 100, "volume_type": "ssd"}],
}
MORE = {"servers": [{"name": "cache-1", "ipv4_private": "10.0.0.13", "cpu": 2}],
        "volumes": [{"name": "logs", "size": 20}]}


def test_file_inventory_over_ssh(names, workers, mongo, mongo_app, sshd):
    inv = sshd.root / "inventory"
    (inv / "site-b").mkdir(parents=True)
    write(inv / "hosts.json", INVENTORY), write(inv / "site-b" / "more.json", MORE)
    (inv / "README.md").write_text("# Exported for Maestro: one file per site\n")
    (inv / ".draft.json").write_text("{ hidden, never read")
    w = start(workers, names, mongo)
    conn = connection(mongo, "File", "ssh_file", ssh_claims(sshd, inv, "ed25519"))

    r, result = scan(mongo_app, names, conn, "server-import")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert (result["collection"], result["seen"], result["written"]) == ("servers", 3, 3), result
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    # Its own unique_id, else the match key (ipv4_private); with neither, left out.
    assert set(servers) == {"10.0.0.11", "asset-0042", "10.0.0.13"}
    web = servers["10.0.0.11"]
    assert (web["name"], web["hostname"], web["ipv4_public"], web["cpu"], web["memory"]) \
        == ("web-1", "web-1.corp.example", "203.0.113.11", 4, 8)
    assert web["os"] == INVENTORY["servers"][0]["os"] and web["services"] == [{"name": "nginx"}]
    assert web["tags"] == [{"key": "team", "value": "shop"}] and web["role"] == "Application"
    assert web["datacenters"] == {"zone": "rack-a", "region": "sp-1", "provider": "File",
                                  "name": "imports-dc", "_id": DC}
    assert web["_id"] != FORGED and web["active"] is True and web["checksum"] != "0"
    assert web["roles"] == conn["roles"] and web["accountant"] == [str(conn["_id"])]
    assert web["owner"] == {"refs": "connections", "name": "imports-dc", "_id": conn["_id"]}
    assert servers["asset-0042"]["name"] == "db-1" and servers["10.0.0.13"]["name"] == "cache-1"
    assert process(mongo, conn, "server-import")["state"] == "success"

    r, result = scan(mongo_app, names, conn, "applications-import")
    assert r.state == "SUCCESS" and result["seen"] == 2, (r.traceback, result)
    apps = {d["unique_id"]: d for d in mongo.applications.find()}
    assert set(apps) == {"shop", "app-billing-7"} and apps["shop"]["language"] == "Python"
    assert apps["shop"]["roles"] == conn["roles"]
    r, result = scan(mongo_app, names, conn, "volumes-import")
    assert r.state == "SUCCESS" and result["seen"] == 2, (r.traceback, result)
    vols = {d["unique_id"]: d for d in mongo.volumes.find()}
    assert set(vols) == {"vol-file-01", "logs"} and vols["vol-file-01"]["size"] == 100

    r, result = scan(mongo_app, names, conn, "server-import")
    assert r.state == "SUCCESS" and (result["seen"], result["written"]) == (3, 0), result

    # A truncated file fails the scan, naming it; nothing is retired.
    (inv / "site-b" / "broken.json").write_text('{"servers": [{"name": "web-9", ')
    r, _ = scan(mongo_app, names, conn, "server-import")
    failed(r, mongo, conn, "server-import", "RuntimeError", "broken.json")
    assert "not JSON" in str(r.result) and mongo.servers.count_documents({"active": True}) == 3
    # A directory with nothing to import (a wrong path, files moved away) fails the same way.
    for f in (inv / "hosts.json", inv / "site-b" / "more.json", inv / "site-b" / "broken.json"):
        f.unlink()
    r, _ = scan(mongo_app, names, conn, "server-import")
    failed(r, mongo, conn, "server-import", "RuntimeError", "no file to import")
    assert mongo.servers.count_documents({"active": True}) == 3
    secrets_not_logged(w.log(), sshd.keys["ed25519"], SECRETJWT, conn["conn"])


# --- Ansible: the setup module's --tree output, one file per host ----------------------------------

def device(size, model, ids, partitions, host="", sectors="41943040", vendor=None):
    """A disk as Ansible's setup module reports it (`ansible_devices`)."""
    return {"holders": [], "host": host, "links": {"ids": ids, "labels": [], "masters": [], "uuids": []},
            "model": model, "partitions": partitions, "removable": "0", "rotational": "0",
            "sas_address": None, "sas_device_handle": None, "scheduler_mode": "none",
            "sectors": sectors, "sectorsize": "512", "size": size, "support_discard": "0",
            "vendor": vendor, "virtual": 1}


def partition(size, uuid, ids=()):
    return {"holders": [], "links": {"ids": list(ids), "labels": [], "masters": [], "uuids": [uuid]},
            "sectors": "41734111", "sectorsize": 512, "size": size, "start": "2048", "uuid": uuid}


def nvme(vol, part_uuid):
    """An EBS disk of an AWS Nitro machine."""
    ebs = f"nvme-Amazon_Elastic_Block_Store_vol{vol}"
    return device("20.00 GB", "Amazon Elastic Block Store", [ebs, f"nvme-nvme.1d0f-766f6c{vol}-00000001"],
                  {"nvme0n1p1": partition("19.90 GB", part_uuid, [f"{ebs}-part1"])},
                  host="Non-Volatile memory controller: Amazon.com, Inc. NVMe EBS Controller")


LOOP = device("0.00 Bytes", None, [], {}, sectors="0")
QEMU = device("40.00 GB", "QEMU HARDDISK", ["scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-0"],
              {"sda1": partition("39.90 GB", "b3c1-77")}, vendor="QEMU", sectors="83886080",
              host="SCSI storage controller: Red Hat, Inc. Virtio SCSI")


def facts(host, ip, machine_id, devices, mem_mb, product, vendor, mounts):
    return {"ansible_facts": {
        "ansible_all_ipv4_addresses": [ip], "ansible_architecture": "x86_64", "ansible_bios_date": "10/16/2017",
        "ansible_default_ipv4": {"address": ip, "alias": "eth0", "gateway": "10.0.1.1", "interface": "eth0",
                                 "netmask": "255.255.255.0", "type": "ether"},
        "ansible_default_ipv6": {}, "ansible_devices": devices,
        "ansible_distribution": "Ubuntu", "ansible_distribution_file_path": "/etc/os-release",
        "ansible_distribution_file_variety": "Debian", "ansible_distribution_major_version": "22",
        "ansible_distribution_release": "jammy", "ansible_distribution_version": "22.04",
        "ansible_hostname": host.split(".")[0], "ansible_nodename": host,
        "ansible_interfaces": ["lo", "eth0"], "ansible_kernel": "5.15.0-1051-aws",
        "ansible_machine_id": machine_id, "ansible_memtotal_mb": mem_mb, "ansible_mounts": mounts,
        "ansible_pkg_mgr": "apt", "ansible_processor_vcpus": 2, "ansible_product_name": product,
        "ansible_python_version": "3.10.12", "ansible_service_mgr": "systemd",
        "ansible_system": "Linux", "ansible_system_vendor": vendor, "ansible_user_id": "ubuntu",
        "ansible_virtualization_type": "kvm", "gather_subset": ["all"], "module_setup": True},
        "changed": False}


ROOT_MOUNT = {"block_available": 3865404, "block_size": 4096, "block_total": 5016931,
              "device": "/dev/nvme0n1p1", "fstype": "ext4", "mount": "/", "options": "rw,relatime,discard",
              "size_available": 15832694784, "size_total": 20549349376, "uuid": "2f1a-web1"}
UNREACHABLE = "10.0.9.9"
HOSTS = {
    "web-1.corp.example": facts("web-1.corp.example", "10.0.1.11", "ec2a51f0web1",
                                {"nvme0n1": nvme("0a1b2c3d4e5f60718", "2f1a-web1"), "loop0": LOOP},
                                3936, "t3.medium", "Amazon EC2", [ROOT_MOUNT]),
    "db-1.corp.example": facts("db-1.corp.example", "10.0.1.12", "4c4c4544db1",
                               {"sda": QEMU}, 7953, "Standard PC (Q35 + ICH9, 2009)", "QEMU", []),
    "web-2.corp.example": facts("web-2.corp.example", "10.0.1.13", "ec2a51f0web2",
                                {"nvme0n1": nvme("0f9e8d7c6b5a43210", "2f1a-web2")},
                                1963, "t3.small", "Amazon EC2", []),
    UNREACHABLE: {"changed": False, "unreachable": True, "msg": "Failed to connect to the host via "
                 "ssh: ssh: connect to host 10.0.9.9 port 22: No route to host"},
}


def test_ansible_facts_over_ssh(names, workers, mongo, mongo_app, sshd):
    tree = sshd.root / "ansible-facts"
    tree.mkdir()
    for host, doc in HOSTS.items():
        write(tree / host, doc)
    w = start(workers, names, mongo)
    # An RSA key in PEM, and no pinned host key (the form has no such field).
    conn = connection(mongo, "Ansible", "ssh_ansible", ssh_claims(sshd, tree, "rsa", pin=False))

    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert (result["seen"], result["written"], result["pages"]) == (3, 3, 1), result
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {"ec2a51f0web1", "4c4c4544db1", "ec2a51f0web2"}
    web = servers["ec2a51f0web1"]
    assert (web["name"], web["hostname"], web["ipv4_private"], web["cpu"], web["memory"]) \
        == ("web-1.corp.example", "web-1.corp.example", "10.0.1.11", 2, 4)
    assert servers["4c4c4544db1"]["memory"] == 8, "MB in thousands, rounded"
    assert web["os"] == {"base": "Linux", "dist": "Ubuntu", "file_path": "/etc/os-release",
                         "variety": "Debian", "major_version": "22", "version": "22.04"}
    disks = {s["name"]: s for s in web["storage"]}
    assert web["storage_count"] == 2 and set(disks) == {"nvme0n1", "loop0"}
    # The EBS volume id from the disk's links, so it meets the volume AWS discovery stored.
    assert disks["nvme0n1"]["unique_id"] == "vol-0a1b2c3d4e5f60718"
    assert disks["nvme0n1"]["partitions"] == [{
        "name": "nvme0n1p1", "size": 19.9, "uuid": "2f1a-web1", "device": "/dev/nvme0n1p1",
        "mount": "/", "ftype": "ext4", "options": "rw,relatime,discard"}]
    assert web["auth"] == [{"username": "ubuntu"}] and web["services"][0]["version"] == "3.10.12"
    dc = web["datacenters"]
    assert (dc["instance"], dc["vendor"], dc["provider"], dc["_id"]) == ("t3.medium", "Amazon EC2", "Ansible", DC)

    r, result = scan(mongo_app, names, conn, "volumes-list")
    assert r.state == "SUCCESS" and result["seen"] == 3, (r.traceback, result)
    vols = {d["unique_id"]: d for d in mongo.volumes.find()}
    # Disks of no size (loop0) are not volumes.
    assert set(vols) == {"vol-0a1b2c3d4e5f60718", "scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-0",
                         "vol-0f9e8d7c6b5a43210"}
    v = vols["vol-0a1b2c3d4e5f60718"]
    assert (v["name"], v["size"], v["model"]) == ("web-1.corp.example:nvme0n1", 20.0, "Amazon Elastic Block Store")
    assert vols["scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-0"]["size"] == 40.0

    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS" and (result["written"], result["deactivated"]) == (0, 0), result
    # While a host is unreachable, a host gone from the facts is not retired: the scan cannot
    # tell a host that is down from one that is gone.
    (tree / "web-2.corp.example").unlink()
    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS" and (result["seen"], result["deactivated"]) == (2, 0), result
    # Once every host answers, the one gone from the facts is retired, with its disk.
    (tree / UNREACHABLE).unlink()
    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS" and (result["seen"], result["deactivated"]) == (2, 1), result
    assert mongo.servers.find_one({"unique_id": "ec2a51f0web2"})["active"] is False
    assert mongo.servers.count_documents({"active": True}) == 2
    r, result = scan(mongo_app, names, conn, "volumes-list")
    assert r.state == "SUCCESS" and result["deactivated"] == 1, result
    assert mongo.volumes.find_one({"unique_id": "vol-0f9e8d7c6b5a43210"})["active"] is False
    secrets_not_logged(w.log(), sshd.keys["rsa"], SECRETJWT, conn["conn"])


# --- Terraform: state files (format 4) under an S3 prefix --------------------------------------

AWS = 'provider["registry.terraform.io/hashicorp/aws"]'
BUCKET = "maestro-tf-states"


def state(resources, serial=1):
    return {"version": 4, "terraform_version": "1.6.6", "serial": serial, "lineage": "8b7c2f36-1c3e-4d0e",
            "outputs": {}, "resources": resources, "check_results": None}


def resource(kind, name, attributes, mode="managed"):
    counted = len(attributes) > 1
    return {"mode": mode, "type": kind, "name": name, "provider": AWS, "instances": [
        {**({"index_key": i} if counted else {}), "schema_version": 1, "attributes": a,
         "sensitive_attributes": [], "private": "eyJzY2hlbWFfdmVyc2lvbiI6IjEifQ=="}
        for i, a in enumerate(attributes)]}


def block(device, vol, size, kind, delete, encrypted=False, iops=100):
    return {"delete_on_termination": delete, "device_name": device, "encrypted": encrypted,
            "iops": iops, "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/1a2b" if encrypted
            else "", "snapshot_id": "", "tags": {}, "throughput": 0, "volume_id": vol,
            "volume_size": size, "volume_type": kind}


def instance(n, status, ebs=()):
    ip_public = f"54.80.1.{n}" if status == "running" else ""
    tags = {"Name": f"web-{n}", "env": "prod", "role": "frontend"}
    return {"ami": "ami-0c7217cdde317cfec", "arn": f"arn:aws:ec2:us-east-1:123456789012:instance/i-0web{n}",
            "availability_zone": "us-east-1a", "cpu_core_count": 1, "cpu_threads_per_core": 2,
            "ebs_block_device": list(ebs), "ebs_optimized": False, "id": f"i-0web{n}", "instance_state": status,
            "instance_type": "t3.micro", "key_name": "deploy", "private_ip": f"10.20.1.{n}",
            "public_dns": f"ec2-54-80-1-{n}.compute-1.amazonaws.com" if ip_public else "",
            "public_ip": ip_public, "root_block_device": [block("/dev/xvda", f"vol-0root{n}", 8, "gp2", True)],
            "subnet_id": "subnet-0a1b2c3d", "tags": tags, "tags_all": tags,
            "vpc_security_group_ids": ["sg-0123456789abcdef0"]}


def ebs_volume(vol, name, size=100):
    tags = {"Name": name}
    return {"arn": f"arn:aws:ec2:us-east-1:123456789012:volume/{vol}", "availability_zone": "us-east-1a",
            "encrypted": True, "final_snapshot": False, "id": vol, "iops": 3000, "kms_key_id": "",
            "multi_attach_enabled": False, "outpost_arn": "", "size": size, "snapshot_id": "",
            "tags": tags, "tags_all": tags, "throughput": 125, "timeouts": None, "type": "gp3"}


def main_state(web2=True, serial=1):
    web1 = instance(1, "running", [block("/dev/sdf", "vol-0ebs1", 50, "gp3", False, True, 3000)])
    return state([
        resource("aws_instance", "bastion", [{"id": "i-0bastion", "private_ip": "10.20.0.5",
                                              "instance_state": "running"}], mode="data"),
        resource("aws_instance", "web", [web1] + ([instance(2, "stopped")] if web2 else [])),
        resource("aws_ebs_volume", "data", [ebs_volume("vol-0data", "data-shop")]),
        resource("aws_volume_attachment", "data", [{"id": "vai-1", "volume_id": "vol-0data"}]),
    ], serial)


def test_terraform_states_in_s3(names, workers, mongo, mongo_app, moto):
    s3 = client(moto, "s3", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    put = lambda key, doc: s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(doc).encode())  # noqa: E731
    for key, body in (("states/", b""), ("states/README.md", b"# one state per stack\n")):  # not read
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    put("states/main/terraform.tfstate", main_state())
    put("states/main/terraform.tfstate.backup", state([resource("aws_instance", "old", [instance(9, "running")])]))
    # 16 more stacks: 17 states, more than a page of files (16).
    for i in range(16):
        put(f"states/team-{i:02}/terraform.tfstate",
            state([resource("aws_ebs_volume", "scratch", [ebs_volume(f"vol-0team{i:02}", f"scratch-{i}", 10)])]))
    w = start(workers, names, mongo, aws=moto)
    claims = {"bucket": BUCKET, "path": "/states/", "access": AWS_ACCESS, "secret": AWS_SECRET}
    conn = connection(mongo, "Terraform", "s3_terraform", claims)

    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert (result["seen"], result["written"], result["pages"]) == (2, 2, 2), result
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {"i-0web1", "i-0web2"}, "no data source, no backup state"
    web = servers["i-0web1"]
    assert (web["name"], web["role"], web["environment"], web["cpu"], web["status"], web["ipv4_private"],
            web["ipv4_public"]) == ("web-1", "frontend", "prod", 1, "Active", "10.20.1.1", "54.80.1.1")
    assert web["auth"] == [{"name": "deploy", "type": "PKI"}] and "ebs_optimized" not in web
    assert {"key": "Name", "value": "web-1"} in web["tags"] and web["roles"] == conn["roles"]
    assert web["storage"] == [{"device_name": "/dev/sdf", "unique_id": "vol-0ebs1"},
                              {"device_name": "/dev/xvda", "delete_termination": True,
                               "unique_id": "vol-0root1"}]
    assert web["datacenters"] == {
        "zone": "us-east-1a", "instance": "t3.micro", "instance_id": "i-0web1",
        "vpc_security_group_ids": ["sg-0123456789abcdef0"], "subnet_id": "subnet-0a1b2c3d",
        "arn": "arn:aws:ec2:us-east-1:123456789012:instance/i-0web1",
        "image_id": "ami-0c7217cdde317cfec", "provider": "Terraform", "name": "imports-dc", "_id": DC}
    stopped = servers["i-0web2"]
    assert (stopped["status"], stopped["active"], "ipv4_public" in stopped) == ("Stopped", True, False)

    r, result = scan(mongo_app, names, conn, "volumes-list")
    assert r.state == "SUCCESS" and (result["seen"], result["pages"]) == (3, 2), (r.traceback, result)
    disks = {d["unique_id"]: d for d in mongo.volumes.find({"family": "TFInstance"})}
    assert set(disks) == {"vol-0ebs1", "vol-0root1", "vol-0root2"}
    root = disks["vol-0root1"]
    assert (root["name"], root["size"], root["volume_type"], root["delete_on_termination"],
            root["datacenters"]["zone"]) == ("vol-0root1", 8, "gp2", True, "us-east-1a")
    assert disks["vol-0ebs1"]["encrypted"] is True and disks["vol-0ebs1"]["iops"] == 3000

    r, result = scan(mongo_app, names, conn, "storage-list")
    assert r.state == "SUCCESS" and (result["seen"], result["pages"]) == (17, 2), (r.traceback, result)
    ebs = {d["unique_id"]: d for d in mongo.volumes.find({"family": "TFEbs"})}
    assert set(ebs) == {"vol-0data"} | {f"vol-0team{i:02}" for i in range(16)}
    data = ebs["vol-0data"]
    assert (data["name"], data["size"], data["volume_type"], data["encrypted"], data["tags"]) \
        == ("data-shop", 100, "gp3", True, [{"key": "Name", "value": "data-shop"}])
    assert data["datacenters"]["instance_id"] == "vol-0data"

    r, result = scan(mongo_app, names, conn, "storage-list")
    assert r.state == "SUCCESS" and (result["written"], result["deactivated"]) == (0, 0), result
    # web-2 destroyed: the instance and its root disk are retired; the EBS volumes (another
    # family of the same collection) are not.
    put("states/main/terraform.tfstate", main_state(web2=False, serial=2))
    r, result = scan(mongo_app, names, conn, "server-list")
    assert r.state == "SUCCESS" and (result["seen"], result["deactivated"]) == (1, 1), result
    assert mongo.servers.find_one({"unique_id": "i-0web2"})["active"] is False
    r, result = scan(mongo_app, names, conn, "volumes-list")
    assert r.state == "SUCCESS" and result["deactivated"] == 1, result
    assert mongo.volumes.find_one({"unique_id": "vol-0root2"})["active"] is False
    assert mongo.volumes.count_documents({"family": "TFEbs", "active": True}) == 17

    # A prefix with nothing under it fails and retires nothing.
    mongo.connections.update_one({"_id": conn["_id"]}, {"$set": {
        "conn": hs256({**claims, "path": "archive/"}, SECRETJWT)}})
    r, _ = scan(mongo_app, names, conn, "storage-list")
    failed(r, mongo, conn, "storage-list", "RuntimeError", "no file to import")
    assert mongo.volumes.count_documents({"family": "TFEbs", "active": True}) == 17
    secrets_not_logged(w.log(), AWS_SECRET, SECRETJWT, conn["conn"])


# --- Refusals ------------------------------------------------------------------------------------

def test_import_refusals(names, workers, mongo, mongo_app, sshd):
    inv = sshd.root / "inventory"
    inv.mkdir()
    write(inv / "hosts.json", MORE)
    w = start(workers, names, mongo)

    # A server that does not present the pinned host key is not logged in to.
    other = base64.b64encode(hashlib.sha256(b"another host").digest()).decode().rstrip("=")
    pinned = connection(mongo, "File", "ssh_file", {**ssh_claims(sshd, inv, "ed25519"), "host_key": f"SHA256:{other}"})
    r, _ = scan(mongo_app, names, pinned, "server-import")
    failed(r, mongo, pinned, "server-import", "PermissionError", "pinned host key")

    # A key the server refuses (a user sshd does not allow).
    refused = connection(mongo, "File", "ssh_file", {**ssh_claims(sshd, inv, "rsa"), "user": "maestro-nobody"})
    r, _ = scan(mongo_app, names, refused, "server-import")
    failed(r, mongo, refused, "server-import", "PermissionError", "refused the key")

    # An address the egress policy does not allow is refused before any connection (one would
    # time out and be retried, not fail).
    private = connection(mongo, "Ansible", "ssh_ansible",
                         {**ssh_claims(sshd, inv, "ed25519"), "host": "10.1.2.3", "port": "22"})
    r, _ = scan(mongo_app, names, private, "server-list")
    failed(r, mongo, private, "server-list", "PermissionError", "destination refused")

    # Uploads: another user's folder is refused before server-app is asked. (The upload method
    # reads from Maestro's server-app, a real peer this suite does not run: its reads are not
    # tested end to end here, only its refusals.)
    owner, stranger = ObjectId(), ObjectId()
    upload = connection(mongo, "File", "upload_file",
                        {"artifacts": [f"users/{stranger}/x.json"]}, owner=owner)
    r, _ = scan(mongo_app, names, upload, "server-import")
    failed(r, mongo, upload, "server-import", "PermissionError",
           "not one of the connection's owners' files")
    # The owner's own file passes that check, and then needs server-app (not configured here).
    own = connection(mongo, "File", "upload_file", {"artifacts": [f"users/{owner}/x.json"]}, owner=owner)
    r, _ = scan(mongo_app, names, own, "server-import")
    failed(r, mongo, own, "server-import", "RuntimeError", "--server-uri")

    assert mongo.servers.count_documents({}) == 0
    secrets_not_logged(w.log(), sshd.keys["ed25519"], sshd.keys["rsa"], SECRETJWT)
