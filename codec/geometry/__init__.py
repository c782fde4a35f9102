"""Geometry from the tracker's mesh: the receiver rebuilds each frame's dense 3D face mesh
from the sent motion (:mod:`.dense_expression`, :mod:`.mesh`) and derives warps from it."""
