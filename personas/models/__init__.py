from .audit import AuditEvent
from .consent import ADDRESS_CHANNELS, Channel, ConsentChange, ConsentState, ContactConsent
from .ledger import PointsEntry, Purchase
from .merge import MergeRecord, NotDuplicate, PossibleDuplicate
from .messages import InboundMessage, OutboundMessage
from .persona import EntrySource, FavoriteStoreSource, Persona, PersonaStatus, PhoneFragment
from .privacy import BlocklistEntry, BlocklistRecovery, ErasureRequest, VerificationChallenge
from .store import SignupForm, Store
from .team import TeamChange as TeamChange

__all__ = [
    "AuditEvent",
    "BlocklistEntry",
    "BlocklistRecovery",
    "ErasureRequest",
    "Channel",
    "ConsentChange",
    "ConsentState",
    "ContactConsent",
    "ADDRESS_CHANNELS",
    "EntrySource",
    "InboundMessage",
    "MergeRecord",
    "NotDuplicate",
    "PossibleDuplicate",
    "FavoriteStoreSource",
    "OutboundMessage",
    "Persona",
    "PersonaStatus",
    "PhoneFragment",
    "PointsEntry",
    "Purchase",
    "SignupForm",
    "Store",
    "VerificationChallenge",
]
