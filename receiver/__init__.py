"""The receiving side of a call: the call's receiving peer, the viewer page and the CLI tools; the codec
itself is :class:`codec.Decoder`."""
