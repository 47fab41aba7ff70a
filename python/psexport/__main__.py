"""python3 -m psexport predict --export_dir D --data F --output P
python3 -m psexport info --export_dir D

predict: scores every line of F (in the export's data format) with the
newest FULL export of D and the DELTAs after it, writing one probability
per line to P ("%.9g"), as `ps_worker --predict`. info: prints the loaded
model's step, files, tables and dense size. Exit status: 0 on success, 1 when
the export or the data cannot be read (the message names the file), 2 for
bad usage.
"""

import argparse
import sys

from .errors import DataError, ExportError
from .export import ExportedModel
from .predict import predict_file


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m psexport",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score a data file")
    p.add_argument("--export_dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--batch_size", type=int, default=1024)
    i = sub.add_parser("info", help="describe the loaded model")
    i.add_argument("--export_dir", required=True)
    args = parser.parse_args(argv)
    try:
        model = ExportedModel.load_dir(args.export_dir)
        if args.command == "info":
            print("step %d from %s" % (model.step, ", ".join(model.files)))
            print("model %s, data %s" % (model.config.model.type,
                                         model.config.data.format))
            for spec, table in zip(model.config.sparse_tables, model.tables):
                print("table '%s': dim %d, %d rows" %
                      (spec.name, table.dim, table.keys.size))
            print("dense: %d floats" % model.dense.size)
            return 0
        lines = predict_file(model, args.data, args.output, args.batch_size)
    except (ExportError, DataError) as e:
        print("psexport: %s" % e, file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print("psexport: %s" % e, file=sys.stderr)
        return 1
    print("psexport: scored %d lines of %s with the export of step %d into %s"
          % (lines, args.data, model.step, args.output), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
