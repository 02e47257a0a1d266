"""The connected side: channels, HTTP with its policies, downloads, the package cache, mirrors and credentials."""
