"""Post-hoc metrics of synthetic K-lines (EVALUATION.md): plain functions on arrays, result dataclasses.

features (§2) · stats (repeats, intervals, seeding) · discriminative (§3, §9) · tstr (§4) · calibration (§5)
· diversity (§6) · validity, drift, stylized, memorization (§7) · evaluate (the whole protocol in one call).
"""
