"""Development tooling: datasets, training and export. Never shipped in the plugin zip."""
