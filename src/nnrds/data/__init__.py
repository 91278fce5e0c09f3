"""Raw-data layer: simulator ensembles (land model, stiff chemistry) and verified real datasets."""

from .tables import load_table_dataset, read_metadata, write_ensemble

__all__ = ["load_table_dataset", "read_metadata", "write_ensemble"]
