#!/usr/bin/env python3
"""The portable export (python/psexport) against `ps_worker --predict`.

For every model type (LR, DNN, FM, FWFM, WIDE_DEEP, DEEPFM, DCN) on generated
Criteo data (ps_datagen), with both int_features modes, SUM, MEAN and SQRTN
pooling, the three activations and the three initializers, and for the
SLOT, AVAZU and MOVIELENS formats on small seeded files: trains a tiny job
(1 server, 1 worker, a checkpoint every 4 steps), exports a FULL export of
the first checkpoint and a DELTA of the last one (`ps_ctl export --delta`;
with --min_score for the jobs with an accessor, so the delta deletes keys
and their rows come from the initializer), scores the eval file with
`ps_worker --predict` and with psexport, and checks:
  - the same number of lines, and max |p_py - p_cpp| <= 1e-6;
  - the FULL + DELTA model psexport loads equals the FULL export of the
    last checkpoint (keys, rows and dense vector, bit for bit);
then that corrupt, truncated, newer, foreign and misplaced export files and
a malformed data line give the errors, naming the file, that the C++
reader gives (and `ps_worker --predict` fails on the same files).

    psexport_test.py BUILD_DIR SOURCE_DIR [--keep]
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BUILD, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
except ImportError:
    sys.exit("psexport_test: numpy is missing for %s: scripts/install_deps.sh "
             "installs Debian's python3-numpy" % sys.executable)
import psexport  # noqa: E402
import psexport_data  # noqa: E402
from psexport import ExportError, DataError  # noqa: E402
from psexport.predict import read_lines  # noqa: E402

TOLERANCE = 1e-6
SERVER = os.path.join(BUILD, "server/ps_server")
WORKER = os.path.join(BUILD, "worker/ps_worker")
CTL = os.path.join(BUILD, "tools/ps_ctl")
DATAGEN = os.path.join(BUILD, "tools/ps_datagen")

CRITEO = 'format: CRITEO train_files: "{tmp}/criteo/train.tsv"'
# (name, table options, model, data, eval file key, --min_score of the delta)
CASES = [
    ("criteo_lr", "dim: 1", "type: LR", CRITEO, "criteo", None),
    ("criteo_lr_normalize", "dim: 1 initializer { type: ZEROS }", "type: LR",
     CRITEO + " int_features: NORMALIZE", "criteo", None),
    ("criteo_dnn", "dim: 8 initializer { type: NORMAL scale: 0.05 }",
     "type: DNN hidden_units: 32 hidden_units: 16 activation: TANH "
     "pooling: MEAN", CRITEO + " int_features: NORMALIZE", "criteo", None),
    ("criteo_fm", "dim: 5 accessor { min_count: 1 }", "type: FM", CRITEO,
     "criteo", 0.5),
    ("criteo_wide_deep", "dim: 6",
     "type: WIDE_DEEP hidden_units: 16 activation: SIGMOID "
     "wide_slots: [0, 3, 5, 20, 30] deep_slots: [13, 14, 15, 2, 1]",
     CRITEO, "criteo", None),
    ("criteo_deepfm", "dim: 9 accessor { min_count: 1 }",
     "type: DEEPFM hidden_units: 16 hidden_units: 8", CRITEO, "criteo", 0.5),
    ("criteo_dcn", "dim: 8", "type: DCN hidden_units: 16 cross_layers: 3",
     CRITEO + " int_features: NORMALIZE", "criteo", None),
    ("criteo_fwfm", "dim: 5", "type: FWFM field_weight_init: 0.1", CRITEO,
     "criteo", None),
    ("criteo_dcn_cross_only", "dim: 4 initializer { type: NORMAL }",
     "type: DCN cross_layers: 2", CRITEO, "criteo", None),
    ("slot_dnn_mean", "dim: 6", "type: DNN hidden_units: 8 pooling: MEAN",
     'format: SLOT num_slots: 5 num_dense: 3 train_files: "{slot_train}"',
     "slot_eval", None),
    ("slot_deepfm_sqrtn", "dim: 5 accessor { min_count: 1 }",
     "type: DEEPFM hidden_units: 8 pooling: SQRTN",
     'format: SLOT num_slots: 5 num_dense: 3 train_files: "{slot_train}"',
     "slot_eval", 0.5),
    ("avazu_fm", "dim: 5", "type: FM",
     'format: AVAZU train_files: "{avazu_train}"', "avazu_eval", None),
    ("movielens_deepfm", "dim: 7",
     "type: DEEPFM hidden_units: 8 pooling: MEAN",
     'format: MOVIELENS train_files: "{ml_train}" '
     'movielens_user_file: "{ml_user}" movielens_item_file: "{ml_item}"',
     "ml_eval", None),
    # Several tables (model.slot_tables; the extra tables close and open
    # inside the template's sparse_tables block).
    ("criteo_dnn_mixed_dims",
     'dim: 8 } sparse_tables { name: "small" dim: 3 '
     'initializer { type: NORMAL scale: 0.05 }',
     'type: DNN hidden_units: 16 '
     'slot_tables { table: "small" slots: [1, 4, 7, 22, 25] }',
     CRITEO + " int_features: NORMALIZE", "criteo", None),
    ("criteo_wide_deep_three_tables",
     'dim: 4 } sparse_tables { name: "a" dim: 2 } '
     'sparse_tables { name: "b" dim: 7',
     'type: WIDE_DEEP hidden_units: 8 wide_slots: [0, 3, 5] '
     'deep_slots: [13, 3, 2, 1, 20] slot_tables { table: "a" slots: [3, 13] } '
     'slot_tables { table: "b" slots: [2, 20] }', CRITEO, "criteo", None),
    ("criteo_deepfm_two_tables",
     'dim: 5 accessor { min_count: 1 } } sparse_tables { name: "ids" dim: 5 '
     'accessor { min_count: 1 }',
     'type: DEEPFM hidden_units: 8 slot_tables { table: "ids" slots: '
     '[0, 2, 20] }', CRITEO, "criteo", 0.5),
    # FWFM's pair weights follow the pooled order, not the slot order.
    ("criteo_fwfm_two_tables",
     'dim: 4 } sparse_tables { name: "ids" dim: 4',
     'type: FWFM slot_tables { table: "ids" slots: [1, 7, 20] }', CRITEO,
     "criteo", None),
    ("movielens_dnn_tables",
     'dim: 4 } sparse_tables { name: "user" dim: 8 } '
     'sparse_tables { name: "item" dim: 8 } sparse_tables { name: "genre" '
     'dim: 3',
     'type: DNN hidden_units: 8 pooling: SQRTN '
     'slot_tables { table: "user" slots: [0] } '
     'slot_tables { table: "item" slots: [1] } '
     'slot_tables { table: "genre" slots: [6] }',
     'format: MOVIELENS train_files: "{ml_train}" '
     'movielens_user_file: "{ml_user}" movielens_item_file: "{ml_item}"',
     "ml_eval", None),
]

JOB = """# Written by tests/python/psexport_test.py.
sparse_tables {{ name: "emb" {table} }}
model {{ sparse_table: "emb" {model} }}
data {{ batch_size: 256 {data} }}
training {{ mode: SYNC epochs: 2 }}
checkpoint {{ dir: "{dir}/ckpt" every_steps: 4 keep: 1000 }}
"""

FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def run(argv, ok=True, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=300, **kw)
    if ok and p.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(argv), p.returncode,
                                                  p.stdout[-3000:]))
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(directory, config):
    """One server and one worker on loopback until the job ends."""
    servers = "127.0.0.1:%d" % free_port()
    common = ["--config", config, "--servers", servers, "--num_workers", "1",
              "--rank", "0"]
    with open(directory + "/server.log", "w") as log:
        server = subprocess.Popen([SERVER] + common, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        run([WORKER] + common)
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if server.returncode != 0:
        raise RuntimeError("ps_server exited %d (%s/server.log)" %
                           (server.returncode, directory))


def checkpoints(directory):
    ckpt = directory + "/ckpt"
    return sorted(os.path.join(ckpt, n) for n in os.listdir(ckpt)
                  if n.startswith("ckpt-"))


def export(checkpoint, out_dir, delta=False, min_score=None):
    argv = [CTL, "export", "--checkpoint", checkpoint, "--export_dir", out_dir]
    if delta:
        argv.append("--delta")
    if min_score is not None:
        argv += ["--min_score", str(min_score)]
    return run(argv).stdout


def cpp_predict(export_dir, data, output, ok=True):
    return run([WORKER, "--predict", "--export_dir", export_dir, "--data",
                data, "--output", output], ok=ok)


def read_probs(path):
    with open(path) as f:
        return np.array([float(line) for line in f], dtype=np.float64)


def same_model(a, b):
    if a.step != b.step or not np.array_equal(a.dense.view(np.uint32),
                                              b.dense.view(np.uint32)):
        return False
    return all(np.array_equal(x.keys, y.keys) and
               np.array_equal(x.rows.view(np.uint32), y.rows.view(np.uint32))
               for x, y in zip(a.tables, b.tables))


def run_case(tmp, files, case):
    name, table, model, data, eval_key, min_score = case
    d = os.path.join(tmp, name)
    os.makedirs(d)
    config = d + "/job.pbtxt"
    with open(config, "w") as f:
        f.write(JOB.format(table=table, model=model,
                           data=data.format(tmp=tmp, **files), dir=d))
    start = time.time()
    train(d, config)
    ckpts = checkpoints(d)
    check(len(ckpts) >= 3, "%s: %d checkpoints, want >= 3" % (name,
                                                             len(ckpts)))
    export(ckpts[0], d + "/exp")
    out = export(ckpts[-1], d + "/exp", delta=True, min_score=min_score)
    export(ckpts[-1], d + "/full", min_score=min_score)
    eval_file = files[eval_key]
    cpp_predict(d + "/exp", eval_file, d + "/p_cpp.txt")
    loaded = psexport.load_dir(d + "/exp")
    check(len(loaded.files) == 2, "%s: loaded %s, want a FULL and a DELTA" %
          (name, loaded.files))
    check(same_model(loaded, psexport.load_dir(d + "/full")),
          "%s: FULL + DELTA differs from the FULL export of %s" %
          (name, ckpts[-1]))
    lines = psexport.predict_file(loaded, eval_file, d + "/p_py.txt")
    cpp, py = read_probs(d + "/p_cpp.txt"), read_probs(d + "/p_py.txt")
    check(len(cpp) == len(py) == lines and lines > 0,
          "%s: %d C++ lines, %d Python lines" % (name, len(cpp), len(py)))
    diff = float(np.max(np.abs(cpp - py))) if len(cpp) == len(py) else 1.0
    check(diff <= TOLERANCE, "%s: max |p_py - p_cpp| = %.3g > %g" %
          (name, diff, TOLERANCE))
    deleted = out.split(" deleted")[0].rsplit(" ", 1)[-1]
    scorer = psexport.Scorer(loaded)
    examples = scorer.parse(read_lines(eval_file, 1 << 20), eval_file)
    keys, offsets = scorer.keys(examples)
    spec = scorer.spec
    slot_of_key = np.repeat(np.tile(np.arange(spec.num_slots), len(examples)),
                            np.diff(offsets))
    # Per table, the eval keys of its slots not in the export.
    missing, total = 0, 0
    for t in spec.tables:
        unique = np.unique(keys[np.isin(slot_of_key, t.slots)])
        missing += unique.size - loaded.lookup(t.table_id, unique)[1]
        total += unique.size
    if min_score is not None:
        check(deleted.isdigit() and int(deleted) > 0 and missing > 0,
              "%s: the delta deleted %s keys, %d eval keys use the "
              "initializer" % (name, deleted, missing))
    print("%-24s %5d lines  max |p_py - p_cpp| %.3g  (%d rows, %s deleted by "
          "the delta, %d of %d eval keys from the initializer, %.1f s)" %
          (name, lines, diff, sum(t.keys.size for t in loaded.tables),
           deleted, missing, total, time.time() - start), flush=True)
    return d, diff


def expect_error(what, fn, code, *needles):
    try:
        fn()
    except (ExportError, DataError) as e:
        got = getattr(e, "code", "DataError")
        text = str(e)
        check(got == code and all(n in text for n in needles),
              "%s: got %s %r, want %s naming %s" % (what, got, text, code,
                                                    needles))
        return
    check(False, "%s: no error" % what)


def corrupt_cases(tmp, d, eval_file):
    """Broken exports: psexport's error (code, file, problem), the CLI's exit
    status and message, and ps_worker --predict refusing the same folder."""
    full, delta = sorted(os.path.join(d + "/exp", n)
                         for n in os.listdir(d + "/exp"))

    def variant(name, edit):
        v = os.path.join(tmp, "broken", name)
        shutil.copytree(d + "/exp", v)
        edit(v)
        return v

    def flip(path, at):
        with open(path, "r+b") as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0x40]))

    def truncate(path):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 100)

    def path_in(v, p):
        return os.path.join(v, os.path.basename(p))

    cases = [
        ("flipped byte", lambda v: flip(path_in(v, delta),
                                        os.path.getsize(delta) // 2),
         delta, "DATA_LOSS", "checksum mismatch"),
        ("truncated", lambda v: truncate(path_in(v, full)), full, "DATA_LOSS",
         "truncated or corrupt"),
        ("newer version", lambda v: flip(path_in(v, full), 8), full,
         "FAILED_PRECONDITION", "format version 65"),
        ("other magic", lambda v: flip(path_in(v, delta), 0), delta,
         "INVALID_ARGUMENT", "is not a 'PSEXPORT' file"),
        ("no FULL", lambda v: os.remove(path_in(v, full)), None, "NOT_FOUND",
         "holds no FULL export"),
    ]
    for what, edit, bad, code, problem in cases:
        v = variant(what.replace(" ", "_"), edit)
        named = path_in(v, bad) if bad else v
        expect_error(what, lambda: psexport.load_dir(v), code, named, problem)
        cli = run([sys.executable, "-m", "psexport", "predict", "--export_dir",
                   v, "--data", eval_file, "--output", v + "/p.txt"], ok=False,
                  env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")))
        check(cli.returncode == 1 and named in cli.stdout,
              "%s: the CLI exited %d saying %r" % (what, cli.returncode,
                                                   cli.stdout))
        c = cpp_predict(v, eval_file, v + "/p_cpp.txt", ok=False)
        check(c.returncode != 0 and named in c.stdout,
              "%s: ps_worker --predict exited %d" % (what, c.returncode))
    # A DELTA over another step than the FULL before it.
    v = os.path.join(tmp, "broken", "wrong_base")
    export(checkpoints(d)[1], v)
    shutil.copy(delta, v)
    expect_error("wrong base", lambda: psexport.load_dir(v),
                 "FAILED_PRECONDITION", path_in(v, delta), "is a DELTA over step")
    expect_error("delta alone", lambda: psexport.load_file(delta),
                 "FAILED_PRECONDITION", delta, "load its FULL base first")
    # A malformed data line.
    bad_data = os.path.join(tmp, "broken", "bad.tsv")
    with open(eval_file, "rb") as src, open(bad_data, "wb") as dst:
        lines = src.read().split(b"\n")
        lines[2] = lines[2].replace(b"\t", b"\tx", 1)
        dst.write(b"\n".join(lines))
    model = psexport.load_dir(d + "/exp")
    expect_error("bad line", lambda: psexport.predict_file(
        model, bad_data, bad_data + ".p"), "DataError", bad_data + ":3:",
        "(I1)")
    check(not os.path.exists(bad_data + ".p"), "bad line: an output was left")


def main():
    keep = "--keep" in sys.argv
    tmp = tempfile.mkdtemp(prefix="psexport_test.")
    start = time.time()
    try:
        gen = tmp + "/gen.pbtxt"
        with open(gen, "w") as f:
            f.write('sparse_tables { name: "emb" dim: 1 }\n'
                    'model { type: LR sparse_table: "emb" }\n'
                    'data { generate { seed: 3 train_rows: 3000 eval_rows: 800'
                    ' vocab_size: 300 } }\n')
        run([DATAGEN, "--config", gen, "--data_dir", tmp + "/criteo"])
        files = psexport_data.make_all(tmp)
        files["criteo"] = tmp + "/criteo/eval.tsv"
        gz = tmp + "/criteo/eval.tsv.gz"
        run(["gzip", "-k", files["criteo"]])
        dirs = {}
        for case in CASES:
            dirs[case[0]], _ = run_case(tmp, files, case)
        # A gzip-compressed eval file, through the CLI.
        d = dirs["criteo_deepfm"]
        cpp_predict(d + "/exp", gz, d + "/p_cpp_gz.txt")
        run([sys.executable, "-m", "psexport", "predict", "--export_dir",
             d + "/exp", "--data", gz, "--output", d + "/p_py_gz.txt"],
            env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")))
        diff = np.max(np.abs(read_probs(d + "/p_cpp_gz.txt") -
                             read_probs(d + "/p_py_gz.txt")))
        check(diff <= TOLERANCE, "gzip via the CLI: max diff %.3g" % diff)
        corrupt_cases(tmp, d, files["criteo"])
    finally:
        if keep or FAILURES:
            print("psexport_test: files kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("psexport_test: %d cases, %d failures, %.1f s" %
          (len(CASES), len(FAILURES), time.time() - start))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
