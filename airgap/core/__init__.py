"""The rules and models of a mirror: repodata, filters, licenses, manifests, receipts, deltas, shards. No I/O of its own: a fetcher or a destination is passed in where one is needed."""
