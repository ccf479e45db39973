"""The default learning rate of the search stage: the paper's 5e-5, whatever the budget.

The paper trains mask scores at lr 5e-5 over about 61,360 steps (5 epochs of full MNLI at batch
32). At CPU budgets of tens to hundreds of steps one might scale the rate up so that scores
still travel as far. The issue-10 studies tried the principled version of that — the paper's
random-walk movement, lr = 5e-5 · sqrt(61,360 / steps), 1.6e-3 at 63 steps — and it scrambled
the masks (7.5% of entries off magnitude pruning, dev 43.3 against 48.4 for one-shot magnitude
pruning, HANS entailed/non-entailed swinging ±27 points across seeds), while 5e-5 with
soft scores (|W|, the default init) moved 0.4% of the entries and kept every seed predicting
all classes (docs/results.md). So the default stays the paper's rate; every report still says
how far each mask moved (srcore.pruning.movement). Each pruning method names its default
(`PruningMethod.default_lr`, srcore.pipeline.methods); an explicit `training.learning_rate` wins.
"""

from __future__ import annotations

PAPER_SCORE_LR = 5e-5  # mask-training scores
WEIGHT_LR = 5e-5  # IMP survivors: the paper's fine-tuning rate
