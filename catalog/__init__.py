"""Built-in catalog data (YAML), shipped in the wheel as package data."""
