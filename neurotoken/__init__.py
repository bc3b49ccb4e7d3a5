"""Python side of the Neurotoken compute marketplace (shared by scripts, provider and oracle)."""
