"""GMIC model library: configuration, network, preprocessing, imaging and inference. No Qt, no database."""
