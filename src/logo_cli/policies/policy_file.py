"""The policy file's identity: its format name, version and the optional mixer key.

Every policy file (policies/torch_policy.py writes the feed-forward ones, policies/recurrent_policy.py
the recurrent ones) starts with `{"format": POLICY_FORMAT, "version": POLICY_VERSION, ...}`.
"""

from __future__ import annotations

POLICY_FORMAT = "logo-policy"
POLICY_VERSION = 1  # the checkpoint format version (also written as "format_version")
# Optional key of a MACQL policy file: its QMIX mixer, as MacqlNets.mixer_payload() writes it.
# Acting never reads it; `logo export` does.
MIXER_KEY = "mixer"
