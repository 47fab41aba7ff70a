"""psexport: read `.psx` exports of the parameter server (FULL and DELTA, as
common/export_format.h writes them) and score data files with them, in
numpy, as `ps_worker --predict` does. numpy is the only dependency.

    from psexport import load_dir, predict_file
    model = load_dir("exports/")          # newest FULL + the DELTAs after it
    predict_file(model, "eval.tsv", "p.txt")

or `python3 -m psexport predict --export_dir D --data F --output P` (with
this folder, python/, on PYTHONPATH). The format, for readers in any
language: docs/export_format.md.
"""

from .errors import DataError, ExportError
from .export import ExportedModel
from .predict import Scorer, predict_file

load_dir = ExportedModel.load_dir
load_file = ExportedModel.load_file

__all__ = ["DataError", "ExportError", "ExportedModel", "Scorer", "load_dir",
           "load_file", "predict_file"]
