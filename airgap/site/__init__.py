"""What serves a published channel inside the gap: the HTTP server, pages, the bootstrap installer."""
