"""ssm send: dirq outgoing queue -> S/MIME signed messages -> STOMP broker or AMS."""
