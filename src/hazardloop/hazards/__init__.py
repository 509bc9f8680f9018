"""The hazard register (隐患台账) and the rectification closed loop (隐患排查治理)."""
