"""Throttle decisions and history invariants."""

from __future__ import annotations

import threading

from claude_magic.core.history import Conversation, ConversationStore
from claude_magic.core.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_first_frame_is_due_at_once_then_at_most_every_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock)
    assert throttle.due(1)
    clock.now = 0.05
    assert not throttle.due(2)
    clock.now = 0.11
    assert throttle.due(3)
    clock.now = 0.15
    assert not throttle.due(4)


def test_unchanged_revision_never_reads_the_clock() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock)
    throttle.due(1)
    reads = clock.reads
    for _ in range(100):
        assert not throttle.due(1)
    assert clock.reads == reads


def test_commit_appends_whole_exchanges_only() -> None:
    conversation = Conversation("c")
    assert not conversation.commit("q", [])  # an empty answer would break the API's rules
    assert conversation.messages == []
    assert conversation.commit("q1", [{"type": "text", "text": "a1"}])
    assert [m["role"] for m in conversation.request_messages("q2")] == ["user", "assistant", "user"]
    assert len(conversation) == 1


def test_messages_are_copies() -> None:
    conversation = Conversation("c")
    conversation.commit("q", [{"type": "text", "text": "a"}])
    conversation.messages[0]["content"] = "tampered"
    assert conversation.messages[0]["content"] == "q"


def test_concurrent_commits_keep_alternation() -> None:
    conversation = Conversation("c")

    def commit_many(tag: str) -> None:
        for i in range(200):
            conversation.commit(f"{tag}{i}", [{"type": "text", "text": "a"}])

    threads = [threading.Thread(target=commit_many, args=(tag,)) for tag in "xyz"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["user", "assistant"] * 600


def test_store_returns_the_same_conversation_by_name() -> None:
    store = ConversationStore()
    assert store.get("a") is store.get("a")
    assert store.get("a") is not store.get("b")
