from .audit import AuditEvent
from .consent import Channel, ConsentChange, ConsentState
from .ledger import PointsEntry, Purchase
from .messages import OutboundMessage
from .persona import EntrySource, FavoriteStoreSource, Persona, PersonaStatus
from .store import SignupForm, Store

__all__ = [
    "AuditEvent",
    "Channel",
    "ConsentChange",
    "ConsentState",
    "EntrySource",
    "FavoriteStoreSource",
    "OutboundMessage",
    "Persona",
    "PersonaStatus",
    "PointsEntry",
    "Purchase",
    "SignupForm",
    "Store",
]
