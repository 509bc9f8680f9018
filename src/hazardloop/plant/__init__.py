"""The plant model: enterprise → sites → areas (with site-plan polygons) → equipment → sensors."""
