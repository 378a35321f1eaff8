"""Ethics: the rule DSL (predicates, ``compile_rule``), the rules engine
(``EthicsRule``, ``RuleSet``, ``EthicsEngine``) and the YAML loader, with the
two bundled rule files (``defaults.yaml``, ``safety_tag_rules.yaml`` under
``lukhas_fast/rules``).

Rules are parsed once (never ``eval``/``exec``); on the C tier they run as a
flat program in a Cython evaluator.  They fail loud at load (a bad rule is a
:class:`DSLError`) and fail closed at run time (an evaluation error makes the
rule fire as BLOCK with reason ``evaluation_error``).
"""

from __future__ import annotations

import os as _os

from lukhas_fast import _ethics_dsl as _dsl
from lukhas_fast._backend import load as _load

_impl = _load("ethics")

DSLError = _impl.DSLError
RuleEvaluationError = _impl.RuleEvaluationError
PREDICATES = _impl.PREDICATES
canonical_domain = _impl.canonical_domain
parse_bytes = _impl.parse_bytes
parse_seconds = _impl.parse_seconds
compile_rule = _impl.compile_rule
hash_rule = _impl.hash_rule
EthicsAction = _impl.EthicsAction
Priority = _impl.Priority
ReasonCode = _impl.ReasonCode
EthicsRule = _impl.EthicsRule
EthicsResult = _impl.EthicsResult
RuleSet = _impl.RuleSet
EthicsEngine = _impl.EthicsEngine
RuleLoadError = _impl.RuleLoadError
load_ethics_rules = _impl.load_ethics_rules
get_ethics_engine = _impl.get_ethics_engine

# the individual predicates and helpers, as in the reference's DSL module
contains = _dsl.contains
equals = _dsl.equals
greater_than = _dsl.greater_than
less_than = _dsl.less_than
matches = _dsl.matches
is_empty = _dsl.is_empty
is_present = _dsl.is_present
not_has_consent = _dsl.not_has_consent
domain_is = _dsl.domain_is
domain_etld1 = _dsl.domain_etld1
param_bytes_lte = _dsl.param_bytes_lte
param_seconds_lte = _dsl.param_seconds_lte
has_tag = _dsl.has_tag
has_category = _dsl.has_category
tag_confidence = _dsl.tag_confidence
requires_human_for_tags = _dsl.requires_human_for_tags
high_risk_tag_combination = _dsl.high_risk_tag_combination
and_op = _dsl.and_op
or_op = _dsl.or_op
not_op = _dsl.not_op
_resolve_path_in_dict = _dsl._resolve_path_in_dict

#: Deepest nesting of and/or/not a rule may have (deeper rules are a DSLError).
MAX_RULE_DEPTH = _dsl.MAX_RULE_DEPTH

#: The bundled rule files.
DEFAULT_RULES_PATH = _os.path.join(_os.path.dirname(__file__), "rules", "defaults.yaml")
SAFETY_TAG_RULES_PATH = _os.path.join(_os.path.dirname(__file__), "rules", "safety_tag_rules.yaml")

__all__ = [
    "DSLError", "RuleEvaluationError", "PREDICATES", "canonical_domain", "parse_bytes", "parse_seconds",
    "compile_rule", "hash_rule", "EthicsAction", "Priority", "ReasonCode", "EthicsRule", "EthicsResult",
    "RuleSet", "EthicsEngine", "RuleLoadError", "load_ethics_rules", "get_ethics_engine",
]
