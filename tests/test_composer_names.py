"""The composer names the customer, never a network's internal id (a page-scoped number, a DID)."""

from __future__ import annotations

from inbox.models import Author, FetchResult, InboundItem
from tests.test_composer import World, app_config, world  # noqa: F401  (fixtures: app_config, world)


def test_the_composer_names_the_customer_not_their_network_id(world: World):  # noqa: F811
    item = InboundItem(channel="chat", external_id="psid-2", text="Hallo", thread_key="chat:psid2",
                       author=Author(handle="6723400011100002", name="Noor El Amrani", identity_kind="facebook"))
    [cid] = world.ingestor.ingest("chat", FetchResult(items=[item], cursor="n1")).new_conversations
    page = world.client().get(f"/conversations/{cid}").get_data(as_text=True)
    assert 'placeholder="Reply to Noor El Amrani"' in page
    assert "6723400011100002&gt;" not in page
