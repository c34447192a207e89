"""Common: the few pieces every layer uses and that depend on nothing of posepipe's (backoff, redaction)."""
