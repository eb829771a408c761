"""jordanlab.evaluate: per-suite scores of a trained run, figures, and prediction on a PNG.

- :func:`per_image_scores` / :func:`aggregate_scores` / :func:`score_masks`: IoU of the figure,
  pixel accuracy and the perfect-image rate (NumPy or torch).
- :func:`evaluate_model`: the same scores for a model object (built-in or your own), no run directory.
- :func:`evaluate_run`: the run's test split and every OOD suite at its canvas -> ``RUN/eval.json``;
  :func:`format_table` prints it as markdown.
- :func:`suite_figure`, :func:`training_curves`: PNGs in ``RUN/figures/``.
- :func:`predict_masks`, :func:`predict_png`: masks of boundary images (label-free halting for
  recurrent models); :func:`model_certificate`: on which canvases a crossing-depth model is provably exact.
"""

from .figures import error_map, rank_images, suite_figure, training_curves
from .metrics import aggregate_scores, per_image_scores, score_masks
from .model_eval import evaluate_model, mask_sha256, suite_images
from .predict import default_max_iters, model_certificate, predict_masks, predict_png
from .suites import TEST_SUITE, default_suites, evaluate_run, format_table, run_canvas, stale_suites

__all__ = [
    "TEST_SUITE",
    "aggregate_scores",
    "default_max_iters",
    "default_suites",
    "error_map",
    "evaluate_model",
    "evaluate_run",
    "stale_suites",
    "format_table",
    "mask_sha256",
    "model_certificate",
    "per_image_scores",
    "predict_masks",
    "predict_png",
    "rank_images",
    "run_canvas",
    "score_masks",
    "suite_images",
    "suite_figure",
    "training_curves",
]
