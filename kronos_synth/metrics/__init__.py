"""Post-hoc metrics of synthetic K-lines (docs/protocol.md): plain functions on arrays, result dataclasses.

Sections of docs/protocol.md: features (§2) · stats (repeats, intervals, seeding) · discriminative (§3)
· tstr (§4) · calibration (§5) · diversity, memorization (§6) · validity, drift, stylized (§7)
· peers, context_fid, signature (§7, the metrics other papers publish)
· evaluate (the whole protocol in one call) · roundtrip (the tokenizer round trip, docs/models.md).
"""
