"""Customers and their identities: who wrote an item, whatever channel they used.

On ingest, the author's identity on the channel (an email address, a phone number, a handle) is
normalized and looked up; an exact match attaches the item to that customer, otherwise a customer
record is created on first contact. Cross-channel matching, merge suggestions and privacy tools
build on these tables (see docs/architecture.md).
"""

from __future__ import annotations

from inbox.models import Author
from inbox.store import Store


def normalize_identity(kind: str, handle: str) -> str:
    """The form an identity is stored and matched in."""
    handle = handle.strip()
    if kind == "email":
        return handle.lower()
    return handle


def resolve_author(store: Store, author: Author, now: str) -> int:
    """The customer id for `author`, creating the customer on first contact. Call inside a write."""
    value = normalize_identity(author.identity_kind, author.handle)
    customer_id = store.customer_for_identity(author.identity_kind, value)
    if customer_id is None:
        customer_id = store.create_customer(author.name or author.handle, now)
        store.add_identity(customer_id, author.identity_kind, value, author.name, author.valid, now)
    elif author.name:
        store.fill_customer_name(customer_id, author.name, now)
    return customer_id
