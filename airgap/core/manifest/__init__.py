"""The archive manifest (format ``airgap/1``): build, serialize canonically, parse strictly.

Pure: takes and returns values. The manifest is the one document the signature covers; it
names every blob the archive holds (in archive order), every channel/subdir with the sha256
of its repodata blob and of each package file, and where each upstream repodata came from.
Parsing treats the input as hostile: every name is checked to be one safe path component,
every hash to be 64 lower-case hex digits, every size a non-negative integer, and every
reference to resolve to a listed blob.

A package: ``model`` (the values, canonical JSON, the safe-name checks) and ``parse`` (strict
parsing of hostile bytes). Every public name is importable from ``airgap.core.manifest``.
"""

from __future__ import annotations

from .model import (
    BLOB_KINDS,
    DELTA_FORMAT,
    FILENAME,
    FORMAT,
    MAX_MANIFEST_BYTES,
    PACKAGE_SUFFIXES,
    SBOM_FORMATS,
    SBOM_ZSTD,
    SUPPORTED_FORMATS,
    Base,
    BlobEntry,
    ChannelEntry,
    InstallerEntry,
    Manifest,
    PackageEntry,
    RepodataBlob,
    SbomRef,
    SubdirEntry,
    all_hex64,
    canonical_json,
    is_safe_channel_name,
    is_safe_installer_filename,
    is_safe_package_filename,
    is_safe_subdir,
)
from .parse import parse_manifest

__all__ = [
    "BLOB_KINDS",
    "DELTA_FORMAT",
    "FILENAME",
    "FORMAT",
    "MAX_MANIFEST_BYTES",
    "PACKAGE_SUFFIXES",
    "SBOM_FORMATS",
    "SBOM_ZSTD",
    "SUPPORTED_FORMATS",
    "Base",
    "BlobEntry",
    "ChannelEntry",
    "InstallerEntry",
    "Manifest",
    "PackageEntry",
    "RepodataBlob",
    "SbomRef",
    "SubdirEntry",
    "all_hex64",
    "canonical_json",
    "is_safe_channel_name",
    "is_safe_installer_filename",
    "is_safe_package_filename",
    "is_safe_subdir",
    "parse_manifest",
]
