#!/usr/bin/env python3
"""The Kubernetes manifests (scripts/deploy/k8s) and their image
(scripts/deploy/Dockerfile), checked two ways:

1. Statically: the server StatefulSet's replicas, PS_SERVERS, the headless
   Service, the container ports and the gRPC probes agree; the worker Job is
   Indexed with as many completions as PS_NUM_WORKERS says (on both sides);
   the --config path is where the ConfigMap is mounted; the Dockerfile copies
   every binary the pods run and installs a Debian package for every shared
   library those binaries load (dpkg -S of their ldd output).
2. Live, when network namespaces can be made (root and iproute2): each pod
   is a namespace on one bridge, with /etc/hosts giving the StatefulSet's DNS
   names (ip netns exec mounts /etc/netns/NAME/hosts). The manifests' own
   command lines run there -- binaries, config and volumes mapped to this
   build and temporary folders -- with the environment Kubernetes would set
   (HOSTNAME, JOB_COMPLETION_INDEX): the servers start, answer the health
   check the probes make and serve /metrics; the init containers generate the
   data; the workers train to the end and worker 0 evaluates.

    deploy_manifests_test.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

BUILD, ROOT = sys.argv[1], sys.argv[2]
K8S = os.path.join(ROOT, "scripts/deploy/k8s")
FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print("FAIL:", what)


def docs(name):
    with open(os.path.join(K8S, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError("no %s %s" % (kind, name))


def env_of(container):
    return {e["name"]: e["value"] for e in container.get("env", [])}


# --- 1. Static ---------------------------------------------------------------
kustomization = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
objs = []
for r in kustomization["resources"]:
    check(os.path.exists(os.path.join(K8S, r)), "kustomization resource %s" % r)
    objs += docs(r)
for gen in kustomization.get("configMapGenerator", []):
    for f in gen["files"]:
        check(os.path.exists(os.path.join(K8S, f)), "configMap file %s" % f)

service = find(objs, "Service", "ps-server")
sts = find(objs, "StatefulSet", "ps-server")
job = find(objs, "Job", "ps-worker")
server_c = sts["spec"]["template"]["spec"]["containers"][0]
worker_pod = job["spec"]["template"]["spec"]
worker_c = worker_pod["containers"][0]
server_env, worker_env = env_of(server_c), env_of(worker_c)

check(service["spec"].get("clusterIP") == "None", "the Service is headless")
check(sts["spec"]["serviceName"] == "ps-server", "serviceName is the Service")
replicas = sts["spec"]["replicas"]
endpoints = server_env["PS_SERVERS"].split(",")
check(worker_env["PS_SERVERS"] == server_env["PS_SERVERS"],
      "servers and workers get the same PS_SERVERS")
grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
check(endpoints == ["ps-server-%d.ps-server:%d" % (i, grpc_port)
                    for i in range(replicas)],
      "PS_SERVERS %s names the %d StatefulSet pods" % (endpoints, replicas))
ports = {p["name"]: p["containerPort"] for p in server_c["ports"]}
check(ports["grpc"] == grpc_port, "container port = Service port")
for probe in ("readinessProbe", "livenessProbe"):
    check(server_c[probe]["grpc"]["port"] == grpc_port, probe + " on the gRPC port")
server_cmd = server_c["args"][0]
check("--listen 0.0.0.0:%d" % grpc_port in server_cmd, "listens on the gRPC port")
check('PS_RANK="${HOSTNAME##*-}"' in server_cmd, "server rank from the pod ordinal")

num_workers = int(worker_env["PS_NUM_WORKERS"])
check(server_env["PS_NUM_WORKERS"] == worker_env["PS_NUM_WORKERS"],
      "servers and workers agree on PS_NUM_WORKERS")
check(job["spec"]["completionMode"] == "Indexed", "the worker Job is Indexed")
check(job["spec"]["completions"] == num_workers == job["spec"]["parallelism"],
      "completions = parallelism = PS_NUM_WORKERS")
worker_cmd = worker_c["args"][0]
check('PS_RANK="${JOB_COMPLETION_INDEX}"' in worker_cmd, "worker rank from the index")
init_cmd = worker_pod["initContainers"][0]["command"]

for pod, c in ((sts["spec"]["template"]["spec"], server_c), (worker_pod, worker_c)):
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(volumes["job"]["configMap"]["name"] == "ps-job", "the job ConfigMap")
    check("--config %s/job.pbtxt" % mounts["job"] in c["args"][0],
          "--config is the mounted ConfigMap's job.pbtxt")

dockerfile = open(os.path.join(ROOT, "scripts/deploy/Dockerfile")).read()
binaries = set(re.findall(r"/opt/ps/bin/(\w+)", server_cmd + worker_cmd + " ".join(init_cmd)))
for b in binaries:
    check(re.search(r"/%s\b" % b, dockerfile) is not None, "the image holds " + b)
packages = set(re.findall(r"\b(lib[\w.+-]+|zlib1g)\b", dockerfile.split("COPY")[0]))
where = {"ps_server": "server", "ps_ctl": "server", "ps_worker": "worker",
         "ps_datagen": "worker"}
libs = {}  # shared library -> a binary that loads it
for b in sorted(binaries | {"ps_ctl"}):
    out = subprocess.run(["ldd", os.path.join(BUILD, where[b], b)],
                         capture_output=True, text=True).stdout
    for lib in re.findall(r"=> (/\S+)", out):
        if not re.search(r"cuda|cublas|nvidia", lib):  # GPU images bring these
            libs.setdefault(lib, b)


def spellings(lib):
    """The paths dpkg may have recorded for `lib` (usrmerge, symlinks)."""
    real = os.path.realpath(lib)
    return {lib, real, lib.replace("/usr/lib", "/lib", 1),
            real.replace("/usr/lib", "/lib", 1)}


# One dpkg -S for every spelling of every library (it is slow per call).
owners = {}
r = subprocess.run(["dpkg", "-S"] + sorted(set().union(*map(spellings, libs))),
                   capture_output=True, text=True)
for line in r.stdout.splitlines():
    pkg, _, path = line.partition(": ")
    owners[path.strip()] = pkg.split(":")[0]
needed = {}
for lib, b in sorted(libs.items()):
    owner = next((owners[p] for p in spellings(lib) if p in owners), None)
    check(owner is not None, "%s (of %s) belongs to a Debian package" % (lib, b))
    if owner:
        needed[owner] = lib
for pkg, lib in sorted(needed.items()):
    if pkg in ("libc6", "libgcc-s1"):
        continue  # in debian:12-slim
    check(pkg in packages, "the Dockerfile installs %s (for %s)" % (pkg, lib))
print("static: %d server(s), %d worker(s), %d runtime packages checked"
      % (replicas, num_workers, len(needed)))

# --- 2. Live, on network namespaces -----------------------------------------
if FAILURES:
    sys.exit(1)
# Namespaces, veth pairs, bridges and `ip netns exec`, or no live part (a
# container or chroot without the privileges, a kernel without the modules):
# tests/testing/netns_probe.sh tries them all and says what failed.
probe_run = subprocess.run(
    ["bash", os.path.join(ROOT, "tests/testing/netns_probe.sh"), "--bridge"],
    capture_output=True, text=True)
if probe_run.returncode != 0:
    print("live part skipped: " + (probe_run.stdout.strip() or
                                   probe_run.stderr.strip()))
    sys.exit(0)

tag = os.getpid() % 10000
net = "10.232.%d" % (os.getpid() % 250)
pods = ["ps-server-%d" % i for i in range(replicas)] + \
       ["ps-worker-%d" % j for j in range(num_workers)]
ns = {p: "k8s%d%s" % (tag, p.replace("ps-", "").replace("-", "")) for p in pods}
ip_of = {p: "%s.%d" % (net, k + 1) for k, p in enumerate(pods)}
switch = "k8s%dsw" % tag
tmp = tempfile.mkdtemp()
procs = []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
    for name in list(ns.values()) + [switch]:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree("/etc/netns/" + name, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def run_in(pod, command, env, log):
    full_env = ["env"] + ["%s=%s" % kv for kv in sorted(env.items())]
    return subprocess.Popen(["ip", "netns", "exec", ns[pod]] + full_env + command,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def local(text, pod):
    """A manifest command with this build's binaries and local folders."""
    text = text.replace("/opt/ps/bin/ps_server", BUILD + "/server/ps_server")
    text = text.replace("/opt/ps/bin/ps_worker", BUILD + "/worker/ps_worker")
    text = text.replace("/opt/ps/bin/ps_datagen", BUILD + "/tools/ps_datagen")
    text = text.replace("/etc/ps/job.pbtxt", os.path.join(K8S, "job.pbtxt"))
    text = text.replace("/var/lib/ps", os.path.join(tmp, pod, "var"))
    return text.replace("/data", os.path.join(tmp, pod, "data"))


try:
    sh("ip", "netns", "add", switch)
    sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", switch, "link", "set", "br0", "up")
    hosts = "127.0.0.1 localhost\n" + "".join(
        "%s %s.ps-server\n" % (ip_of[p], p) for p in pods if "server" in p)
    for k, p in enumerate(pods):
        sh("ip", "netns", "add", ns[p])
        os.makedirs("/etc/netns/" + ns[p], exist_ok=True)
        open("/etc/netns/%s/hosts" % ns[p], "w").write(hosts)
        os.makedirs(os.path.join(tmp, p, "data"))
        veth = "k%dv%d" % (tag, k)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        sh("ip", "link", "set", veth, "netns", ns[p])
        sh("ip", "link", "set", veth + "p", "netns", switch)
        sh("ip", "-n", switch, "link", "set", veth + "p", "master", "br0", "up")
        sh("ip", "-n", ns[p], "addr", "add", ip_of[p] + "/24", "dev", veth)
        sh("ip", "-n", ns[p], "link", "set", veth, "up")
        sh("ip", "-n", ns[p], "link", "set", "lo", "up")

    for i in range(replicas):
        pod = "ps-server-%d" % i
        env = dict(server_env, HOSTNAME=pod)
        procs.append(run_in(pod, ["/bin/sh", "-c", local(server_cmd, pod)], env,
                            os.path.join(tmp, pod + ".log")))
    # The readiness probe: gRPC health on the pod's own address.
    for i in range(replicas):
        pod = "ps-server-%d" % i
        deadline = time.time() + 30
        while True:
            r = subprocess.run(["ip", "netns", "exec", ns[pod],
                                BUILD + "/tools/ps_ctl", "--servers",
                                "%s:%d" % (ip_of[pod], grpc_port), "health"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            check(time.time() < deadline and procs[i].poll() is None,
                  "%s ready: %s" % (pod, open(os.path.join(tmp, pod + ".log")).read()[-500:]))
            if FAILURES:
                raise SystemExit(1)
            time.sleep(0.2)
    # What Prometheus would scrape, from a worker pod, by DNS name.
    r = subprocess.run(
        ["ip", "netns", "exec", ns["ps-worker-0"], "python3", "-c",
         "import urllib.request;print(urllib.request.urlopen("
         "'http://ps-server-1.ps-server:9100/metrics',timeout=5).read().decode())"],
        capture_output=True, text=True)
    check('ps_sparse_rows{server="1",table="embedding"} 0' in r.stdout,
          "server 1's /metrics by DNS name: " + (r.stdout + r.stderr)[-300:])

    workers = []
    for j in range(num_workers):
        pod = "ps-worker-%d" % j
        init = [local(a, pod) for a in init_cmd]
        rc = subprocess.run(["ip", "netns", "exec", ns[pod]] + init,
                            capture_output=True, text=True)
        check(rc.returncode == 0, "%s's init container: %s" % (pod, rc.stderr[-300:]))
        env = dict(worker_env, HOSTNAME=pod, JOB_COMPLETION_INDEX=str(j))
        workers.append(run_in(pod, ["/bin/sh", "-c", local(worker_cmd, pod)], env,
                              os.path.join(tmp, pod + ".log")))
        procs.append(workers[-1])
    for j, w in enumerate(workers):
        check(w.wait(timeout=180) == 0,
              "worker %d finished: %s" % (j, open(os.path.join(
                  tmp, "ps-worker-%d.log" % j)).read()[-500:]))
    for i in range(replicas):
        check(procs[i].wait(timeout=30) == 0, "server %d stopped cleanly" % i)
    log0 = open(os.path.join(tmp, "ps-worker-0.log")).read()
    m = re.search(r"eval after epoch \d+: auc ([0-9.]+)", log0)
    auc = float(m.group(1)) if m else 0.0
    check(auc > 0.7, "worker 0's eval AUC %.4f > 0.7" % auc)
    print("live: %d servers and %d workers on a pod network; worker 0 AUC %.4f"
          % (replicas, num_workers, auc))
finally:
    cleanup()
sys.exit(1 if FAILURES else 0)
