"""Per-tile cost models: systolic array, SFU, roofline."""
