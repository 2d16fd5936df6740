"""Reference model code copied verbatim (with listed modifications) from public repositories, used as test oracles."""
