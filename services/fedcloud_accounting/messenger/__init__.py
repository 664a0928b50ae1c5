"""Messenger: render records into messages, split them, and hand them to the outgoing dirq."""
