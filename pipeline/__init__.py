"""Ingest: open videos with PyAV, sample frames to the analysis rate, hand them to Redis by reference."""
