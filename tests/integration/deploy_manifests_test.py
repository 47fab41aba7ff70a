#!/usr/bin/env python3
"""The Kubernetes manifests (scripts/deploy/k8s) and their image
(scripts/deploy/Dockerfile), checked two ways:

1. Statically: the server StatefulSet's replicas, PS_SERVERS, the headless
   Service, the container ports and the probes agree; the worker Job is
   Indexed with as many completions as PS_NUM_WORKERS says (on both sides);
   the --config path is where the ConfigMap is mounted; the job has TLS and
   both tokens (the servers listen on 0.0.0.0), its files come from the
   Secret ps-secrets, all of it in the servers and only the CA and the auth
   token in the workers; the probes are `ps_ctl health` over TLS on
   127.0.0.1 (the kubelet's grpc probe cannot do TLS); the Dockerfile copies
   every binary the pods run and installs a Debian package for every shared
   library those binaries load (dpkg -S of their ldd output).
2. Live, when network namespaces can be made (root and iproute2): each pod
   is a namespace on one bridge, with /etc/hosts giving the StatefulSet's DNS
   names (ip netns exec mounts /etc/netns/NAME/hosts). The Secret's files are
   made at test time (scripts/deploy/make_secrets.sh, for the PS_SERVERS
   hosts, 127.0.0.1 and localhost). The manifests' own command lines run
   there -- binaries and every volume (the ConfigMap's files, the Secret's
   items, emptyDirs) mapped to this build and per-pod temporary folders --
   with the environment Kubernetes would set (HOSTNAME, JOB_COMPLETION_INDEX):
   the servers start with TLS and both tokens, answer the probes' own
   command and serve /metrics; a call without the token is refused and a
   worker's token cannot stop the job; the init containers generate the
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


def flag(command, name):
    """The value of `name` in an argument list (`name value` or name=value)."""
    for k, a in enumerate(command):
        if a == name and k + 1 < len(command):
            return command[k + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


# What scripts/deploy/make_secrets.sh makes, as README.md puts it in the
# Secret ps-secrets: one key per file.
SECRET = "ps-secrets"
SECRET_KEYS = ["ca.pem", "server.pem", "server.key", "token", "admin-token"]


def mounted_files(pod, c):
    """Path in container `c` -> (volume, key) for every ConfigMap and Secret
    file it sees."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        if "secret" in v:
            check(v["secret"]["secretName"] == SECRET,
                  "volume %s is the Secret %s" % (v["name"], SECRET))
            items = v["secret"].get("items") or [
                {"key": k, "path": k} for k in SECRET_KEYS]
        elif "configMap" in v:
            items = v["configMap"].get("items") or [
                {"key": os.path.basename(f), "path": os.path.basename(f)}
                for f in CONFIGMAP_FILES[v["configMap"]["name"]]]
        else:
            continue
        for i in items:
            files[os.path.join(m["mountPath"], i["path"])] = (v["name"], i["key"])
    return files


# --- 1. Static ---------------------------------------------------------------
kustomization = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
objs = []
for r in kustomization["resources"]:
    check(os.path.exists(os.path.join(K8S, r)), "kustomization resource %s" % r)
    objs += docs(r)
CONFIGMAP_FILES = {}  # ConfigMap name -> its files, here
for gen in kustomization.get("configMapGenerator", []):
    CONFIGMAP_FILES[gen["name"]] = [os.path.join(K8S, f) for f in gen["files"]]
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
server_cmd = server_c["args"][0]
check("--listen 0.0.0.0:%d" % grpc_port in server_cmd, "listens on the gRPC port")
# Beyond loopback, a server starts only with TLS and a token: the job's
# cluster.security names them all, and the operator token.
job_text = re.sub(r"#.*", "", open(os.path.join(K8S, "job.pbtxt")).read())
m = re.search(r"\bsecurity\s*\{([^}]*)\}", job_text)
security = dict(re.findall(r'(\w+)\s*:\s*"([^"]*)"', m.group(1))) if m else {}
for field in ("tls_cert_file", "tls_key_file", "tls_ca_file", "auth_token_file",
              "admin_token_file"):
    check(security.get(field, "").startswith("/"),
          "job.pbtxt's cluster.security.%s is set (an absolute path)" % field)
# The kubelet's grpc probe has no TLS: the probes run ps_ctl health over TLS
# on the pod's own 127.0.0.1, trusting the job's CA.
probe_cmds = []
for probe in ("readinessProbe", "livenessProbe"):
    cmd = server_c[probe].get("exec", {}).get("command", [])
    probe_cmds.append(cmd)
    check(cmd[:1] == ["/opt/ps/bin/ps_ctl"] and cmd[-1:] == ["health"],
          probe + " is an exec probe running ps_ctl health: %s" % cmd)
    check(flag(cmd, "--servers") == "127.0.0.1:%d" % grpc_port,
          probe + " checks 127.0.0.1 on the gRPC port")
    check(flag(cmd, "--tls_ca_file") == security.get("tls_ca_file"),
          probe + " trusts the job's CA (cluster.security.tls_ca_file)")
    check(flag(cmd, "--auth_token_file") is None and
          flag(cmd, "--admin_token_file") is None,
          probe + " carries no token (health needs none)")
    check(server_c[probe].get("timeoutSeconds", 1) >= 3,
          probe + " gives ps_ctl time: timeoutSeconds >= 3")
check('PS_RANK="${HOSTNAME##*-}"' in server_cmd, "server rank from the pod ordinal")

num_workers = int(worker_env["PS_NUM_WORKERS"])
check(server_env["PS_NUM_WORKERS"] == worker_env["PS_NUM_WORKERS"],
      "servers and workers agree on PS_NUM_WORKERS")
check(job["spec"]["completionMode"] == "Indexed", "the worker Job is Indexed")
check(job["spec"]["completions"] == num_workers == job["spec"]["parallelism"],
      "completions = parallelism = PS_NUM_WORKERS")
worker_cmd = worker_c["args"][0]
check('PS_RANK="${JOB_COMPLETION_INDEX}"' in worker_cmd, "worker rank from the index")
init_c = worker_pod["initContainers"][0]
init_cmd = init_c["command"]

server_pod = sts["spec"]["template"]["spec"]
for pod, c in ((server_pod, server_c), (worker_pod, worker_c)):
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(volumes["job"]["configMap"]["name"] == "ps-job", "the job ConfigMap")
    check("--config %s/job.pbtxt" % mounts["job"] in c["args"][0],
          "--config is the mounted ConfigMap's job.pbtxt")
# Servers see every file of cluster.security; workers only the CA and the
# auth token (never the operator token or the servers' key).
server_files = mounted_files(server_pod, server_c)
worker_files = mounted_files(worker_pod, worker_c)
for field, path in sorted(security.items()):
    check(path in server_files, "servers see %s %s" % (field, path))
secret_seen = {p for p, (v, _) in worker_files.items()
               if "secret" in {x["name"]: x for x in worker_pod["volumes"]}[v]}
check(secret_seen == {security.get("tls_ca_file"), security.get("auth_token_file")},
      "workers get the CA and the auth token of the Secret, nothing else: %s"
      % sorted(secret_seen))

dockerfile = open(os.path.join(ROOT, "scripts/deploy/Dockerfile")).read()
binaries = set(re.findall(r"/opt/ps/bin/(\w+)", " ".join(
    [server_cmd, worker_cmd] + init_cmd + sum(probe_cmds, []))))
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
# Tokens reach the processes only through the mounted files.
for var in ("PS_AUTH_TOKEN", "PS_ADMIN_TOKEN"):
    os.environ.pop(var, None)
BIN = {"ps_server": BUILD + "/server/ps_server", "ps_ctl": BUILD + "/tools/ps_ctl",
       "ps_worker": BUILD + "/worker/ps_worker", "ps_datagen": BUILD + "/tools/ps_datagen"}


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


def localizer(pod, pod_spec, c):
    """A function that rewrites manifest paths for container `c` of `pod`:
    the image's binaries to this build's, each of c's mount paths to its
    volume's folder. The pod's volumes are made on first use: a ConfigMap's
    files (their paths rewritten for the pod's mounts), a Secret's items
    (from secrets_dir), an empty folder for an emptyDir."""
    def rewriter(mounts):
        alternatives = ["/opt/ps/bin/ps_\\w+"] + [
            re.escape(p) for p in sorted(mounts, key=len, reverse=True)]
        pattern = re.compile(r"(?<![\w./-])(%s)(?![\w.-])" % "|".join(alternatives))
        return lambda text: pattern.sub(
            lambda m: BIN[m.group(1).rsplit("/", 1)[1]]
            if m.group(1).startswith("/opt/ps/bin/") else mounts[m.group(1)], text)

    def folder(volume):
        return os.path.join(tmp, pod, "vol", volume)

    containers = pod_spec.get("initContainers", []) + pod_spec["containers"]
    pod_local = rewriter({m["mountPath"]: folder(m["name"])
                          for x in containers for m in x.get("volumeMounts", [])})
    for v in pod_spec["volumes"]:
        d = folder(v["name"])
        if os.path.isdir(d):
            continue  # made for another container of the pod
        os.makedirs(d)
        if "configMap" in v:
            for f in CONFIGMAP_FILES[v["configMap"]["name"]]:
                open(os.path.join(d, os.path.basename(f)), "w").write(
                    pod_local(open(f).read()))
        elif "secret" in v:
            items = v["secret"].get("items") or [
                {"key": k, "path": k} for k in SECRET_KEYS]
            for i in items:
                shutil.copy(os.path.join(secrets_dir, i["key"]),
                            os.path.join(d, i["path"]))
    return rewriter({m["mountPath"]: folder(m["name"])
                     for m in c.get("volumeMounts", [])})


try:
    # The Secret's files: a throwaway CA and a certificate for the hosts of
    # PS_SERVERS and for the probes' 127.0.0.1, as README.md makes them.
    secrets_dir = os.path.join(tmp, "secrets")
    names = [e.rsplit(":", 1)[0] for e in endpoints] + ["127.0.0.1", "localhost"]
    r = subprocess.run([os.path.join(ROOT, "scripts/deploy/make_secrets.sh"),
                        secrets_dir] + names, capture_output=True, text=True)
    check(r.returncode == 0, "make_secrets.sh: " + r.stdout + r.stderr)
    if FAILURES:
        raise SystemExit(1)
    sh("ip", "netns", "add", switch)
    sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", switch, "link", "set", "br0", "up")
    hosts = "127.0.0.1 localhost\n" + "".join(
        "%s %s.ps-server\n" % (ip_of[p], p) for p in pods if "server" in p)
    for k, p in enumerate(pods):
        sh("ip", "netns", "add", ns[p])
        os.makedirs("/etc/netns/" + ns[p], exist_ok=True)
        open("/etc/netns/%s/hosts" % ns[p], "w").write(hosts)
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
        local = localizer(pod, server_pod, server_c)
        env = dict(server_env, HOSTNAME=pod)
        procs.append(run_in(pod, ["/bin/sh", "-c", local(server_cmd)], env,
                            os.path.join(tmp, pod + ".log")))
    # The readiness probe's own command, in each server pod.
    for i in range(replicas):
        pod = "ps-server-%d" % i
        local = localizer(pod, server_pod, server_c)
        probe = [local(a) for a in server_c["readinessProbe"]["exec"]["command"]]
        deadline = time.time() + 30
        while True:
            r = subprocess.run(["ip", "netns", "exec", ns[pod]] + probe,
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            check(time.time() < deadline and procs[i].poll() is None,
                  "%s ready: %s\nlast probe: %s" % (
                      pod, open(os.path.join(tmp, pod + ".log")).read()[-500:],
                      r.stdout + r.stderr))
            if FAILURES:
                raise SystemExit(1)
            time.sleep(0.2)
        log = open(os.path.join(tmp, pod + ".log")).read()
        check("TLS, auth token required, admin token for admin calls" in log,
              "%s listens with TLS and both tokens" % pod)
    # What Prometheus would scrape, from a worker pod, by DNS name.
    r = subprocess.run(
        ["ip", "netns", "exec", ns["ps-worker-0"], "python3", "-c",
         "import urllib.request;print(urllib.request.urlopen("
         "'http://ps-server-1.ps-server:9100/metrics',timeout=5).read().decode())"],
        capture_output=True, text=True)
    check('ps_sparse_rows{server="1",table="embedding"} 0' in r.stdout,
          "server 1's /metrics by DNS name: " + (r.stdout + r.stderr)[-300:])

    # From a worker pod, with its files: no token, no call; its token pulls
    # stats but cannot stop the job (that needs the operator token).
    local = localizer("ps-worker-0", worker_pod, worker_c)
    ctl = ["ip", "netns", "exec", ns["ps-worker-0"], BIN["ps_ctl"], "--servers",
           server_env["PS_SERVERS"], "--tls_ca_file", local(security["tls_ca_file"])]
    token = ["--auth_token_file", local(security["auth_token_file"])]
    check(not os.path.exists(local(security["admin_token_file"])),
          "a worker pod has no operator token")
    r = subprocess.run(ctl + ["stats"], capture_output=True, text=True)
    check(r.returncode != 0 and "no auth token" in r.stderr,
          "a call without the token is refused: %d %s" % (r.returncode, r.stderr[-300:]))
    r = subprocess.run(ctl + token + ["stats"], capture_output=True, text=True)
    check(r.returncode == 0, "stats with the workers' token: " + r.stderr[-300:])
    r = subprocess.run(ctl + token + ["stop"], capture_output=True, text=True)
    check(r.returncode != 0 and "operator token" in r.stderr,
          "the workers' token cannot stop the job: %d %s" % (r.returncode, r.stderr[-300:]))

    workers = []
    for j in range(num_workers):
        pod = "ps-worker-%d" % j
        init = [localizer(pod, worker_pod, init_c)(a) for a in init_cmd]
        rc = subprocess.run(["ip", "netns", "exec", ns[pod]] + init,
                            capture_output=True, text=True)
        check(rc.returncode == 0, "%s's init container: %s" % (pod, rc.stderr[-300:]))
        local = localizer(pod, worker_pod, worker_c)
        env = dict(worker_env, HOSTNAME=pod, JOB_COMPLETION_INDEX=str(j))
        workers.append(run_in(pod, ["/bin/sh", "-c", local(worker_cmd)], env,
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
    print("live: %d servers and %d workers on a pod network, TLS and tokens; "
          "worker 0 AUC %.4f" % (replicas, num_workers, auc))
finally:
    cleanup()
sys.exit(1 if FAILURES else 0)
