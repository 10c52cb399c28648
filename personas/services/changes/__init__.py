"""The one mutation path: every change to a persona goes through ``apply`` (or ``apply_many``).

Invariants, whatever the caller (staff UI, import, flow, customer, merge, erasure):

* the changeset is validated first; an invalid changeset changes nothing;
* custom attribute operations run in the fixed order add → set → remove, whatever their
  order inside each list (add keeps an existing value, set writes, remove deletes);
* consent follows the rules: opt-outs are immediate (a forced one is recorded as hard), push
  opt-in only from the customer, a text opt-in by staff/import/flow becomes a pending double
  opt-in and queues a confirmation text;
* favorite store follows the precedence wallet > signup form > staff > import > purchase;
* one audit event (actor, before → after per key) is written in the same transaction, and
  nothing is written when nothing changed;
* the persona row is locked while it changes, and a caller that says what it saw
  (``Changeset.expected``) is refused when another change got there first.

The package: ``types`` (inputs, errors, results), ``validate``, ``rules`` (pure domain rules
every planner uses), ``plan`` (a changeset applied in memory), ``write`` (one change,
``create`` / ``apply``) and ``bulk`` (``apply_many`` / ``create_many``). Callers import from
here.
"""

from ..consent import ConsentAction
from .bulk import apply_many, create_many
from .plan import plan_changes, plan_create
from .rules import apply_attribute_ops, birthday_in_past, store_may_replace
from .types import (
    Actor,
    AttributeOp,
    BlockedIdentifierError,
    BulkOutcome,
    ChangeError,
    ChangeNotice,
    ChangeResult,
    Changeset,
    ConsentOp,
    CreateOutcome,
    DuplicatePersonaError,
    PointsOp,
    StaleEditError,
)
from .validate import validate, validate_attribute_key, validate_attribute_value, validate_field
from .write import apply, create, register_change_hook

__all__ = [
    "Actor",
    "AttributeOp",
    "BlockedIdentifierError",
    "BulkOutcome",
    "ChangeError",
    "ChangeNotice",
    "ChangeResult",
    "Changeset",
    "ConsentAction",
    "ConsentOp",
    "CreateOutcome",
    "DuplicatePersonaError",
    "PointsOp",
    "StaleEditError",
    "apply",
    "apply_attribute_ops",
    "apply_many",
    "birthday_in_past",
    "create",
    "create_many",
    "plan_changes",
    "plan_create",
    "register_change_hook",
    "store_may_replace",
    "validate",
    "validate_attribute_key",
    "validate_attribute_value",
    "validate_field",
]
