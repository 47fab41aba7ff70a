#!/usr/bin/env python3
"""Chaos harness: a job that survives processes dying, hanging and losing
acknowledgements, checked against an undisturbed run of the same job.

A supervisor starts the servers and workers of a generated job (as
run_local.sh does) and restarts any process that dies, with the same command
line, as Kubernetes would. It then injects faults on a seeded schedule:
kill -9 of a random process (server 0, the coordinator, included), SIGSTOP
of one for a while then SIGCONT, and, all along, servers that drop a share
of push acknowledgements after applying the push (ps_server
--fault_drop_push_acks). Before, it runs the same job undisturbed.

Checks (exit 1 when one fails):
  - the job finishes: every worker exits 0, every server exits 0;
  - eval AUC within --max_auc_gap (0.005) of the undisturbed run;
  - every server's push ledger (its checkpointed, exactly-once record)
    applied as many pushes from each worker as in the undisturbed run and
    reached the same last step: nothing lost, nothing applied twice (SYNC;
    an ASYNC job merges a timing-dependent number of steps per push, so
    there only the last step is compared);
  - with --mode SYNC --workers 1 --wal: the final model's predictions on the
    eval file equal the undisturbed run's bit for bit.
Prints a table of the faults and what each cost, and writes summary.json in
the run folder.

Usage: scripts/chaos.sh [--seed N] [--faults K] [--short] [--mode M]
                        [--workers N] [--wal] [--run-dir DIR] ...
"""

import argparse
import filecmp
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")  # --build-dir

JOB = """# Written by scripts/chaos.py.
cluster {{
  num_workers: {workers}
  heartbeat_ms: 500
  worker_timeout_ms: 5000
  server_retry_sec: 900
}}
sparse_tables {{
  name: "embedding"
  dim: 8
  optimizer {{ type: ADAGRAD learning_rate: 0.05 }}
  initializer {{ type: UNIFORM scale: 0.01 }}
}}
model {{
  type: DNN
  sparse_table: "embedding"
  hidden_units: 32
  dense_optimizer {{ type: ADAGRAD learning_rate: 0.01 }}
}}
data {{
  format: CRITEO
  batch_size: 512
  generate {{
    output_dir: "data"
    seed: 3
    train_rows: {rows}
    eval_rows: 20000
  }}
}}
training {{
  mode: {mode}
  epochs: {epochs}
  log_every_steps: 200
}}
checkpoint {{
  dir: "ckpt"
  every_steps: {every}
}}
{durability}
"""


def last_error(log):
    """The last glog E/F line of a log (else its last line), unprefixed."""
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    errors = [l for l in lines if re.match(r"^[EF]\d{4}", l)]
    line = (errors or lines or [""])[-1]
    return line.split("] ", 1)[-1]


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Proc:
    """One process of the job, restarted with the same command line."""

    def __init__(self, name, argv, log):
        self.name, self.argv, self.log = name, argv, log
        self.popen = None
        self.starts = 0
        self.exit_code = None  # set once it exited for good
        self.stopped_until = None  # SIGSTOPped until this time
        self.restarts_at = []  # when it was restarted (the last minute)

    def start(self):
        out = open(self.log, "a")
        out.write("== chaos: start %d at %s ==\n" % (self.starts + 1,
                                                     time.strftime("%X")))
        out.flush()
        self.popen = subprocess.Popen(self.argv, stdout=out,
                                      stderr=subprocess.STDOUT,
                                      cwd=ROOT)
        out.close()
        self.starts += 1

    def alive(self):
        return self.popen is not None and self.popen.poll() is None


class Run:
    def __init__(self, args, run_dir, config, ports, drop_acks):
        self.args, self.run_dir = args, run_dir
        servers = ",".join("127.0.0.1:%d" % p for p in ports)
        build = BUILD
        common = ["--config", config, "--servers", servers,
                  "--num_workers", str(args.workers),
                  "--checkpoint_dir", os.path.join(run_dir, "ckpt")]
        self.servers, self.workers = [], []
        for i in range(args.servers):
            # --resume from the start: a restarted server comes back with
            # the command line it started with.
            argv = [build + "/server/ps_server"] + common + [
                "--rank", str(i), "--resume",
                "--metrics_dir", os.path.join(run_dir, "metrics"),
                "--storage_dir", os.path.join(run_dir, "tables")]
            if drop_acks > 0:
                argv += ["--fault_drop_push_acks", str(drop_acks)]
            self.servers.append(Proc("server %d" % i, argv,
                                     os.path.join(run_dir, "server_%d.log" % i)))
        for j in range(args.workers):
            argv = [build + "/worker/ps_worker"] + common + [
                "--rank", str(j), "--data_dir", args.data_dir,
                "--result_file", os.path.join(run_dir, "worker_%d.json" % j),
                "--metrics_dir", os.path.join(run_dir, "metrics")]
            self.workers.append(Proc("worker %d" % j, argv,
                                     os.path.join(run_dir, "worker_%d.log" % j)))
        self.procs = self.servers + self.workers
        self.crash_loop = ""  # set when a process keeps dying: the run fails

    def start(self):
        for p in self.procs:
            p.start()
        self.t0 = time.time()

    def supervise_once(self):
        """Restarts what died; returns True once the job is over."""
        now = time.time()
        for p in self.procs:
            if p.stopped_until is not None and now >= p.stopped_until:
                if p.alive():
                    p.popen.send_signal(signal.SIGCONT)
                p.stopped_until = None
            if p.exit_code is not None or p.alive():
                continue
            rc = p.popen.returncode
            if rc == 0 or (p in self.servers and self.workers_done()):
                p.exit_code = rc
                continue
            # Died (killed, or failed): restart it as an orchestrator would,
            # giving up on a crash loop (as Kubernetes backs off).
            p.restarts_at = [t for t in p.restarts_at if now - t < 60]
            if len(p.restarts_at) >= 10:
                self.crash_loop = "%s exited %s 10 times within 60 s: %s" % (
                    p.name, rc, last_error(p.log))
                self.log(self.crash_loop)
                return True
            p.restarts_at.append(now)
            self.log("%s exited %s; restarting it" % (p.name, rc))
            p.start()
        return all(p.exit_code is not None for p in self.procs)

    def workers_done(self):
        return all(w.exit_code == 0 for w in self.workers)

    def training(self):
        return not self.workers_done()

    def log(self, text):
        line = "chaos %7.1f s: %s" % (time.time() - self.t0, text)
        print(line, flush=True)
        with open(os.path.join(self.run_dir, "chaos.log"), "a") as f:
            f.write(line + "\n")

    def stop_all(self):
        for p in self.procs:
            if p.alive():
                if p.stopped_until is not None:
                    p.popen.send_signal(signal.SIGCONT)
                p.popen.kill()
                p.popen.wait()


def write_config(args, run_dir, wal):
    durability = "durability { wal: true }" if wal else ""
    path = os.path.join(run_dir, "job.pbtxt")
    with open(path, "w") as f:
        f.write(JOB.format(workers=args.workers, rows=args.rows,
                           mode=args.mode, epochs=args.epochs,
                           every=args.checkpoint_every,
                           durability=durability))
    return path


def ledger(run_dir, servers):
    """Per server, per worker: (applied, repeats, last_step) at exit."""
    out = {}
    pat = re.compile(r"server (\d+): push ledger: worker (\d+) applied (\d+) "
                     r"repeats (\d+) last_step (-?\d+)")
    for i in range(servers):
        last = {}
        with open(os.path.join(run_dir, "server_%d.log" % i),
                  errors="replace") as f:
            for line in f:
                m = pat.search(line)
                if m:
                    last[int(m.group(2))] = tuple(int(x) for x in
                                                  m.group(3, 4, 5))
        out[i] = last  # the last process's lines win
    return out


def worker_result(run_dir, rank):
    with open(os.path.join(run_dir, "worker_%d.json" % rank)) as f:
        return json.load(f)


def predictions(args, run_dir):
    """Scores the eval file with the final checkpoint's model."""
    ckpt = os.path.join(run_dir, "ckpt")
    with open(os.path.join(ckpt, "LATEST")) as f:
        latest = f.read().strip()
    export = os.path.join(run_dir, "export")
    subprocess.run([BUILD + "/tools/ps_ctl", "export", "--checkpoint",
                    os.path.join(ckpt, os.path.basename(latest)),
                    "--export_dir", export], check=True,
                   stdout=subprocess.DEVNULL)
    out = os.path.join(run_dir, "predictions.txt")
    subprocess.run([BUILD + "/worker/ps_worker", "--predict",
                    "--export_dir", export,
                    "--data", os.path.join(args.data_dir, "eval.tsv"),
                    "--output", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def run_job(args, run_dir, faults, drop_acks):
    # A run starts from nothing: the servers' --resume would otherwise take up
    # an earlier run's checkpoints.
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    config = write_config(args, run_dir, args.wal)
    ports = free_ports(args.servers)
    run = Run(args, run_dir, config, ports, drop_acks)
    rng = random.Random(args.seed)
    schedule = []
    if faults:
        t = args.first_fault
        for k in range(faults):
            kind = rng.choice(args.kinds)
            schedule.append((t, kind, rng.random()))
            t += args.fault_every * (0.5 + rng.random())
    injected = []
    run.start()
    deadline = time.time() + args.timeout
    try:
        while not run.supervise_once():
            if time.time() > deadline:
                run.log("timed out after %d s" % args.timeout)
                return None, injected
            now = time.time() - run.t0
            while schedule and schedule[0][0] <= now and run.training():
                _, kind, u = schedule.pop(0)
                injected.append(inject(run, kind, u, args))
            time.sleep(0.1)
    finally:
        run.stop_all()
    if run.crash_loop:
        return {"crash_loop": run.crash_loop}, injected
    elapsed = time.time() - run.t0
    codes = {p.name: p.exit_code for p in run.procs}
    return {"elapsed": elapsed, "codes": codes,
            "restarts": {p.name: p.starts - 1 for p in run.procs}}, injected


def inject(run, kind, u, args):
    """One fault; u in [0, 1) picks the victim among the processes that can
    take it (kill -9 also ends a stopped process; a stop needs a running
    one)."""
    if kind == "kill_server0":
        group = run.servers[:1]
    elif kind == "kill_server":
        group = run.servers
    elif kind == "kill_worker":
        group = run.workers
    else:  # stop: any process
        group = run.procs
    eligible = [p for p in group if p.alive() and
                (kind != "stop" or p.stopped_until is None)]
    t = time.time() - run.t0
    if not eligible:
        run.log("%s: no process can take it now, skipped" % kind)
        return {"t": t, "kind": kind, "victim": "-", "skipped": True}
    victim = eligible[int(u * len(eligible))]
    if kind == "stop":
        victim.popen.send_signal(signal.SIGSTOP)
        victim.stopped_until = time.time() + args.stop_sec
        run.log("SIGSTOP %s for %d s" % (victim.name, args.stop_sec))
    else:
        victim.popen.kill()
        victim.popen.wait()
        victim.stopped_until = None
        run.log("kill -9 %s" % victim.name)
    return {"t": t, "kind": kind, "victim": victim.name, "skipped": False}


def rollbacks(run_dir, servers):
    n = 0
    for i in range(servers):
        with open(os.path.join(run_dir, "server_%d.log" % i),
                  errors="replace") as f:
            n += sum(1 for line in f if "coordinator: job rolled back to" in line)
    return n


def main():
    # A SIGTERM unwinds like Ctrl-C: every process of the job is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", type=int, default=20)
    ap.add_argument("--short", action="store_true",
                    help="a small job and 4 faults with 3 s stops (CI)")
    ap.add_argument("--mode", default="SYNC", choices=["SYNC", "ASYNC"])
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--wal", action="store_true",
                    help="durability { wal: true } on every server")
    ap.add_argument("--rows", type=int, default=3000000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--checkpoint_every", type=int, default=100)
    ap.add_argument("--drop_acks", type=float, default=0.02)
    ap.add_argument("--stop_sec", type=int, default=90)
    ap.add_argument("--first_fault", type=float, default=5.0)
    ap.add_argument("--fault_every", type=float, default=8.0)
    ap.add_argument("--kinds", default="kill_server0,kill_server,kill_worker,"
                    "kill_worker,stop",
                    help="comma-separated fault kinds to draw from")
    ap.add_argument("--max_auc_gap", type=float, default=0.005)
    ap.add_argument("--timeout", type=int, default=1500)
    ap.add_argument("--run-dir", dest="run_dir", default="")
    ap.add_argument("--no-build", dest="build", action="store_false")
    ap.add_argument("--build-dir", dest="build_dir", default="",
                    help="where the binaries are (default: build/; implies "
                    "--no-build)")
    args = ap.parse_args()
    global BUILD
    if args.build_dir:
        BUILD = os.path.abspath(args.build_dir)
        args.build = False
    if args.short:
        args.rows, args.epochs, args.faults = 1000000, 1, 4
        args.stop_sec, args.first_fault, args.fault_every = 3, 2.0, 2.5
        args.checkpoint_every = 50
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not args.run_dir:
        args.run_dir = os.path.join(ROOT, "runs", "chaos-%s-seed%d" % (
            time.strftime("%Y%m%d-%H%M%S"), args.seed))
    os.makedirs(args.run_dir, exist_ok=True)
    if args.build:
        subprocess.run([ROOT + "/scripts/build.sh"], check=True)

    args.data_dir = os.path.join(args.run_dir, "data")
    config = write_config(args, args.run_dir, args.wal)
    if not os.path.exists(os.path.join(args.data_dir, "oracle.json")):
        subprocess.run([BUILD + "/tools/ps_datagen", "--config", config,
                        "--data_dir", args.data_dir], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    calm_dir = os.path.join(args.run_dir, "calm")
    print("chaos: undisturbed run in %s" % calm_dir, flush=True)
    calm, _ = run_job(args, calm_dir, 0, 0.0)
    chaos_dir = os.path.join(args.run_dir, "chaos")
    print("chaos: disturbed run in %s (seed %d, %d faults)" %
          (chaos_dir, args.seed, args.faults), flush=True)
    chaos, injected = run_job(args, chaos_dir, args.faults, args.drop_acks)

    failures = []
    summary = {"seed": args.seed, "mode": args.mode, "wal": args.wal,
               "faults": injected}
    for name, r in (("undisturbed", calm), ("disturbed", chaos)):
        if r is not None and "crash_loop" in r:
            failures.append("the %s run: %s" % (name, r["crash_loop"]))
    if failures:
        pass
    elif calm is None or any(c != 0 for c in calm["codes"].values()):
        failures.append("the undisturbed run failed: %s" %
                        (calm and calm["codes"]))
    elif chaos is None:
        failures.append("the disturbed run did not finish")
    elif any(c != 0 for c in chaos["codes"].values()):
        failures.append("the disturbed run did not end cleanly: %s" %
                        chaos["codes"])
    if not failures:
        auc_calm = worker_result(calm_dir, 0)["eval_auc"]
        auc_chaos = worker_result(chaos_dir, 0)["eval_auc"]
        summary.update(auc_calm=auc_calm, auc_chaos=auc_chaos,
                       seconds_calm=calm["elapsed"],
                       seconds_chaos=chaos["elapsed"],
                       restarts=chaos["restarts"],
                       rollbacks=rollbacks(chaos_dir, args.servers))
        if abs(auc_chaos - auc_calm) > args.max_auc_gap:
            failures.append("eval AUC %.4f, undisturbed %.4f: gap above %.3f"
                            % (auc_chaos, auc_calm, args.max_auc_gap))
        l_calm = ledger(calm_dir, args.servers)
        l_chaos = ledger(chaos_dir, args.servers)
        repeats = 0
        for s in range(args.servers):
            for w in range(args.workers):
                a = l_calm.get(s, {}).get(w)
                b = l_chaos.get(s, {}).get(w)
                if a is None or b is None:
                    failures.append("server %d has no ledger of worker %d" %
                                    (s, w))
                    continue
                repeats += b[1]
                if args.mode == "SYNC" and a[0] != b[0]:
                    failures.append(
                        "server %d applied %d pushes of worker %d, the "
                        "undisturbed run %d" % (s, b[0], w, a[0]))
                if a[2] != b[2]:
                    failures.append(
                        "server %d: last step of worker %d is %d, "
                        "undisturbed %d" % (s, w, b[2], a[2]))
        summary["repeats_acknowledged"] = repeats
        summary["ledger"] = {str(s): l_chaos[s] for s in l_chaos}
        if args.mode == "SYNC" and args.workers == 1 and args.wal:
            same = filecmp.cmp(predictions(args, calm_dir),
                               predictions(args, chaos_dir), shallow=False)
            summary["predictions_bit_equal"] = same
            if not same:
                failures.append("the final model's predictions differ from "
                                "the undisturbed run's")
    summary["failures"] = failures
    with open(os.path.join(args.run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    print("\nchaos: seed %d, %s, %d servers, %d workers%s" % (
        args.seed, args.mode, args.servers, args.workers,
        ", WAL" if args.wal else ""))
    print("  %-8s %-14s %-10s" % ("at (s)", "fault", "process"))
    for f in injected:
        print("  %-8.1f %-14s %-10s%s" % (f["t"], f["kind"], f["victim"],
                                          "  (not running)" if f["skipped"]
                                          else ""))
    if "auc_calm" in summary:
        print("  eval AUC %.4f (undisturbed %.4f); %.0f s (undisturbed %.0f s):"
              " %.0f s lost to %d faults, %d rollbacks, %d repeated pushes "
              "acknowledged" % (
                  summary["auc_chaos"], summary["auc_calm"],
                  summary["seconds_chaos"], summary["seconds_calm"],
                  summary["seconds_chaos"] - summary["seconds_calm"],
                  sum(1 for f in injected if not f["skipped"]),
                  summary["rollbacks"], summary["repeats_acknowledged"]))
    for failure in failures:
        print("  FAILED: " + failure)
    print("  details  %s/summary.json, chaos.log and the logs there" %
          args.run_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
