"""jordanlab.experiments: the pipelines over runs that produce the README's kernel results.

The mathematics lives in :mod:`jordanlab.kernels`; an experiment here picks data, trains or
replays networks, calls the kernels and writes JSON and figures.

- :func:`verify` (``jordanlab kernel verify``): the path-kernel decomposition checked on (S)GD runs of
  a plan of :class:`VerifyRun` (:func:`verify_plan`) -> ``verify.json``, ``verify.png``.
- :func:`run_thesis` (``kernel thesis``): kernel machines against trained networks on the point task,
  configured by a :class:`ThesisConfig` (:func:`load_thesis_config` reads TOML) -> ``thesis.json``.
- :func:`infinite_check` (``kernel infinite-check``): width convergence of the closed-form kernels and
  :func:`arora_check` -> ``infinite_check.json``.
- :func:`explain_replay` (``kernel explain``, Adam and Ranger runs): the run itself replayed exactly, one
  pixel split over all its training examples; :func:`explain_run` (``--method sgd-copy``): from an SGD
  copy started at the run's w₀ (:func:`explain_from_run`, :func:`plot_explanation`).
- :func:`explain_adam_run` (``kernel explain-adam``): a real Adam run replayed with the exact recorder,
  one :class:`Query` per pixel (:func:`query_from_spec`, :func:`plot_adam_explanation`, :func:`concentration`).
- :func:`compare_rankings` (``python -m jordanlab.experiments.explain_compare``): the exact a_i of a replayed run
  against TracInCP (:func:`jordanlab.kernels.tracin_cp`) and the SGD copy: Spearman and top-10 overlaps, figures.
- :func:`parse_image_spec`: the one parser of query images (``INDEX``, ``NAME:INDEX``, a PNG path).
- :func:`explain_parity_scan` and :func:`thick_families`: the README's parity-scan attribution and the
  thick-stroke families table (thin scripts in ``scripts/``).
- :func:`initial_model`: w₀ of a run, rebuilt from its config and seed.
"""

from ._runs import initial_model
from .explain import EXPLAIN_METHODS, explain_from_run, explain_method, explain_replay, explain_run, plot_explanation
from .explain_adam import (
    Query,
    concentration,
    explain_adam_run,
    plot_adam_explanation,
    queries_from_specs,
    query_from_spec,
)
from .explain_compare import compare_rankings, ranking_agreement
from .images import QueryImage, parse_image_spec
from .infinite_check import arora_check, infinite_check, infinite_check_plan
from .parity_scan import explain_parity_scan
from .thesis import PointReadout, ThesisConfig, load_thesis_config, run_thesis
from .thick import thick_families
from .verify import SmoothCNN, VerifyRun, kernel_motion, verify, verify_plan

__all__ = [
    "EXPLAIN_METHODS",
    "PointReadout",
    "Query",
    "QueryImage",
    "SmoothCNN",
    "ThesisConfig",
    "VerifyRun",
    "arora_check",
    "compare_rankings",
    "concentration",
    "explain_adam_run",
    "explain_from_run",
    "explain_method",
    "explain_parity_scan",
    "explain_replay",
    "explain_run",
    "infinite_check",
    "infinite_check_plan",
    "initial_model",
    "kernel_motion",
    "ranking_agreement",
    "load_thesis_config",
    "parse_image_spec",
    "plot_adam_explanation",
    "plot_explanation",
    "queries_from_specs",
    "query_from_spec",
    "run_thesis",
    "thick_families",
    "verify",
    "verify_plan",
]
