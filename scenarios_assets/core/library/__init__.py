"""The scenario library: validation, slices and their chunk tasks, builds and their commit point, the
store (local or fsspec URL), file formats and loaders, metrics, the report, the footprint estimate."""
