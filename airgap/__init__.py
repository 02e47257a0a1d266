"""airgap: move conda channels across an air gap."""

__version__ = "0.1.0"
