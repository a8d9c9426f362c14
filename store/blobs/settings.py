"""The blob store's settings sections live in the kernel (``common.blob_settings``), which
may not import ``store``; re-exported here for the store's own modules."""

from common.blob_settings import BlobSettings, DatasetCacheSettings, UploadSettings

__all__ = ["BlobSettings", "DatasetCacheSettings", "UploadSettings"]
