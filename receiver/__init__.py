"""The receiving side of a call: packets in, talking head out."""
