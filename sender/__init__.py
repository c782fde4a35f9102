"""The sending side of a call: capture (camera, video file, microphone) and the call's sending peer; the
codec itself is :class:`codec.Encoder`."""
