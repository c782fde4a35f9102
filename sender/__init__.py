"""The sending side of a call: camera or video file in, packets out."""
